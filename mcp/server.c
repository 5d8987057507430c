#include "server.h"
#include "conn.h"
#include "log.h"
#include "owners.h"
#include "util.h"

/* kiln's own log, also told to the clients that asked (logging/setLevel). */
static void
to_clients(void *ctx, enum log_level level, const char *msg)
{
  static const enum mcp_log_level as_mcp[] = { [LOG_ERROR] = MCP_LOG_ERROR,
                                               [LOG_WARN] = MCP_LOG_WARNING,
                                               [LOG_INFO] = MCP_LOG_INFO,
                                               [LOG_DEBUG] = MCP_LOG_DEBUG };
  mcp_conn_log(ctx, as_mcp[level], msg);
}

struct mcp_server *
mcp_server_new(const struct kiln_config *cfg, struct front *front)
{
  struct mcp_server *s = xzalloc(sizeof *s);
  s->cfg = cfg;
  s->front = front;
  log_set_sink(to_clients, s);
  return s;
}

void
mcp_server_free(struct mcp_server *s)
{
  if (s == NULL)
    return;
  log_set_sink(NULL, NULL);
  mcp_owner_free_all(s);
  free(s);
}
