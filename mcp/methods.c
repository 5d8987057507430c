/* The method and notification tables, and the lifecycle methods
   (initialize, ping, cancellation) that belong to no other file.  */
#define _GNU_SOURCE
#include "methods.h"
#include "conn.h"
#include "completions.h"
#include "resources.h"
#include "tools.h"
#include "paths.h"

#include <string.h>

static const char *const version_names[] = {
  [MCP_2024_11_05] = "2024-11-05",
  [MCP_2025_03_26] = "2025-03-26",
  [MCP_2025_06_18] = "2025-06-18",
  [MCP_2025_11_25] = "2025-11-25",
};

const char *
mcp_version_name(enum mcp_version v)
{
  return version_names[v];
}

static const char instructions[]
    = "kiln runs Python in sandboxed, persistent sessions. Call run_python without session_id to "
      "start a session, then pass the session id from the reply's first line to keep variables "
      "between calls. numpy, pandas, matplotlib and PIL are preloaded. Files, images and long "
      "output are kept as kiln:// resources named in the replies.";

static bool
same(const char *name, const char *s, size_t len)
{
  return strlen(name) == len && memcmp(name, s, len) == 0;
}

/* Negotiates as the specification says: the version the client asked
   for when kiln speaks it, otherwise the newest kiln speaks (the client
   then decides whether to go on).  */
static int
initialize(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  if (c->conn->initialized) {
    kiln_error_make(err, 0, "initialize was already answered: a connection is initialized once");
    return JRPC_INVALID_REQUEST;
  }
  if (c->conn->batch) {
    kiln_error_make(err, 0, "initialize must not be part of a JSON-RPC batch");
    return JRPC_INVALID_REQUEST;
  }
  json_t *asked = json_object_get(params, "protocolVersion");
  if (!json_is_string(asked)) {
    kiln_error_make(err, 0, "initialize needs \"protocolVersion\", a string such as \"%s\"",
                    version_names[MCP_LATEST]);
    return JRPC_INVALID_PARAMS;
  }
  enum mcp_version version = MCP_LATEST;
  for (int v = MCP_2024_11_05; v <= MCP_LATEST; v++)
    if (same(version_names[v], json_string_value(asked), json_string_length(asked)))
      version = (enum mcp_version)v;
  c->conn->initialized = true;
  c->conn->version = version;
  json_t *info = json_pack("{s:s, s:s}", "name", "kiln", "version", KILN_VERSION);
  if (version >= MCP_2025_06_18)
    json_object_set_new(info, "title", json_string("kiln Python sandbox"));
  /* What a server's tables hold is what it announces.  */
  const struct mcp_server *s = c->server;
  bool subscribe = mcp_method_find(s, "resources/subscribe", strlen("resources/subscribe"));
  json_t *caps = json_pack("{s:{s:b}, s:{s:b, s:b}, s:{}}", "tools", "listChanged", 0, "resources",
                           "subscribe", subscribe, "listChanged", 0, "logging");
  if (version >= MCP_2025_03_26)
    json_object_set_new(caps, "completions", json_object());
  if (mcp_method_find(s, "prompts/list", strlen("prompts/list")))
    json_object_set_new(caps, "prompts", json_pack("{s:b}", "listChanged", 0));
  *result = json_pack("{s:s, s:o, s:o, s:s}", "protocolVersion", version_names[version],
                      "capabilities", caps, "serverInfo", info, "instructions", instructions);
  return MCP_ANSWERED;
}

static const char *const level_names[] = {
  [MCP_LOG_DEBUG] = "debug",     [MCP_LOG_INFO] = "info",           [MCP_LOG_NOTICE] = "notice",
  [MCP_LOG_WARNING] = "warning", [MCP_LOG_ERROR] = "error",         [MCP_LOG_CRITICAL] = "critical",
  [MCP_LOG_ALERT] = "alert",     [MCP_LOG_EMERGENCY] = "emergency",
};

const char *
mcp_log_level_name(enum mcp_log_level l)
{
  return level_names[l];
}

static int
set_level(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  json_t *level = json_object_get(params, "level");
  for (int l = MCP_LOG_DEBUG; json_is_string(level) && l <= MCP_LOG_EMERGENCY; l++)
    if (same(level_names[l], json_string_value(level), json_string_length(level))) {
      c->conn->log_level = (enum mcp_log_level)l;
      *result = json_object();
      return MCP_ANSWERED;
    }
  kiln_error_make(err, 0,
                  "logging/setLevel needs \"level\": one of debug, info, notice, warning, error, "
                  "critical, alert, emergency");
  return JRPC_INVALID_PARAMS;
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

/* Before initialize is answered a client may only ping (MCP's
   lifecycle); everything else is refused with a message saying so.  */
static const struct mcp_method methods[] = {
  { "initialize", initialize, true },
  { "ping", ping, true },
  { "tools/list", tools_list_method, false },
  { "tools/call", tools_call_method, false },
  { "resources/list", resources_list_method, false },
  { "resources/read", resources_read_method, false },
  { "resources/templates/list", resources_templates_method, false },
  { "logging/setLevel", set_level, false },
  { "completion/complete", completion_method, false },
};

static const struct mcp_notification notifications[] = {
  { "notifications/initialized", nothing },
  { "notifications/cancelled", cancelled },
};

const struct mcp_method *
mcp_method_find(const struct mcp_server *s, const char *name, size_t len)
{
  for (size_t i = 0; s->methods && i < s->nmethods; i++)
    if (same(s->methods[i].name, name, len))
      return &s->methods[i];
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
