#include "server.h"
#include "util.h"

struct mcp_server *
mcp_server_new(const struct kiln_config *cfg, struct front *front)
{
  struct mcp_server *s = xzalloc(sizeof *s);
  s->cfg = cfg;
  s->front = front;
  return s;
}

void
mcp_server_free(struct mcp_server *s)
{
  free(s);
}
