/* The method and notification tables, and the lifecycle methods
   (initialize, ping, cancellation) that belong to no other file.  */
#define _GNU_SOURCE
#include "methods.h"
#include "conn.h"
#include "resources.h"
#include "tools.h"
#include "paths.h"

#include <string.h>

/* Newest first; the first is offered to clients that ask for a version
   kiln does not know.  */
static const char *const protocol_versions[] = { "2025-06-18", "2025-03-26", "2024-11-05", NULL };

static const char instructions[] = "kiln runs Python in sandboxed, persistent sessions. Call "
                                   "run_python without session_id to start a session, "
                                   "then pass the returned session_id to keep variables between "
                                   "calls. numpy, pandas, matplotlib and PIL are "
                                   "preloaded.";

static bool
same(const char *name, const char *s, size_t len)
{
  return strlen(name) == len && memcmp(name, s, len) == 0;
}

static int
initialize(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  json_t *asked = json_object_get(params, "protocolVersion");
  const char *version = protocol_versions[0];
  for (const char *const *v = protocol_versions; json_is_string(asked) && *v; v++)
    if (same(*v, json_string_value(asked), json_string_length(asked)))
      version = *v;
  c->conn->initialized = true;
  c->conn->protocol_version = version;
  *result = json_pack("{s:s, s:{s:{s:b}, s:{s:b, s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion",
                      version, "capabilities", "tools", "listChanged", 0, "resources", "subscribe",
                      0, "listChanged", 0, "serverInfo", "name", "kiln", "title",
                      "kiln Python sandbox", "version", KILN_VERSION, "instructions", instructions);
  return MCP_ANSWERED;
}

static int
ping(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  *result = json_object();
  return MCP_ANSWERED;
}

static void
cancelled(struct mcp_call *c, json_t *params)
{
  json_t *rid = json_object_get(params, "requestId");
  if (rid)
    mcp_conn_cancel(c->conn, rid);
}

static void
nothing(struct mcp_call *c, json_t *params)
{
}

/* None of kiln's methods depends on anything initialize negotiates, so
   each may come first: a script piping requests into `kiln serve` need
   not shake hands, and the integration suite pins that tools/call before
   initialize runs.  A method that needs the handshake says false.  */
static const struct mcp_method methods[] = {
  { "initialize", initialize, true },
  { "ping", ping, true },
  { "tools/list", tools_list_method, true },
  { "tools/call", tools_call_method, true },
  { "resources/list", resources_list_method, true },
  { "resources/read", resources_read_method, true },
  { "resources/templates/list", resources_templates_method, true },
};

static const struct mcp_notification notifications[] = {
  { "notifications/initialized", nothing },
  { "notifications/cancelled", cancelled },
};

const struct mcp_method *
mcp_method_find(const char *name, size_t len)
{
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (same(methods[i].name, name, len))
      return &methods[i];
  return NULL;
}

const struct mcp_notification *
mcp_notification_find(const char *name, size_t len)
{
  for (size_t i = 0; i < sizeof notifications / sizeof notifications[0]; i++)
    if (same(notifications[i].name, name, len))
      return &notifications[i];
  return NULL;
}
