/* list_sessions and close_session: the session table, answered at once.  */
#define _GNU_SOURCE
#include "tools.h"
#include "conn.h"
#include "owners.h"
#include "util.h"

#include <string.h>
#include <time.h>

static const char empty_input[]
    = "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}";

static const char session_id_input[] = "{"
                                       "\"type\":\"object\","
                                       "\"properties\":{\"session_id\":{\"type\":\"string\","
                                       "\"description\":\"The session to close.\"}},"
                                       "\"required\":[\"session_id\"],"
                                       "\"additionalProperties\":false"
                                       "}";

static json_t *
iso_time(time_t t)
{
  struct tm tm;
  char buf[32];
  gmtime_r(&t, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return json_string(buf);
}

json_t *
tools_sessions_result(const struct session_info *v, size_t n)
{
  json_t *arr = json_array();
  struct buf text = { 0 };
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:I, s:I, s:o, s:o}", "session_id", v[i].session_id, "state", v[i].state,
        "pid", v[i].pid ? json_integer(v[i].pid) : json_null(), "execution_count",
        (json_int_t)v[i].execution_count, "queued", (json_int_t)v[i].queued, "created_at",
        iso_time(v[i].created_at), "last_used_at", iso_time(v[i].last_used_at));
    json_array_append_new(arr, o);
    cleanup_free char *line = xasprintf("%s%s  %-8s  cells=%llu", i ? "\n" : "", v[i].session_id,
                                        v[i].state, (unsigned long long)v[i].execution_count);
    buf_append(&text, line, strlen(line));
  }
  if (n == 0)
    buf_append(&text, "(no sessions)", strlen("(no sessions)"));
  buf_append(&text, "", 1);
  json_t *r = json_pack("{s:[{s:s, s:s}], s:{s:o}}", "content", "type", "text", "text",
                        (const char *)text.data, "structuredContent", "sessions", arr);
  buf_free(&text);
  return r;
}

static int
list_sessions(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  size_t n;
  struct session_info *v = front_list_sessions(c->server->front, &n);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++)
    if (mcp_owner_may(c->conn, v[i].session_id))
      v[kept++] = v[i];
  n = kept;
  *result = tools_sessions_result(v, n);
  free(v);
  return MCP_ANSWERED;
}

static int
close_session(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  const char *sid;
  if (tools_arg_name(args, "session_id", &sid, err) < 0
      || mcp_owner_check(c->conn, sid, false, err) < 0
      || front_close_session(c->server->front, sid, err) < 0)
    return -1;
  mcp_owner_forget(c->server, sid);
  cleanup_free char *text = xasprintf("Session %s closed.", sid);
  *result = json_pack("{s:[{s:s, s:s}], s:{s:s, s:b}}", "content", "type", "text", "text", text,
                      "structuredContent", "session_id", sid, "closed", 1);
  return MCP_ANSWERED;
}

const struct mcp_tool tool_list_sessions = {
  "list_sessions",
  "List sessions",
  "List the open Python sessions with their state (idle, running, starting, lost, or hibernated: "
  "snapshotted with no process, restored by the next call), worker pid, number of cells run, and "
  "creation and last-use times.",
  empty_input,
  NULL,
  list_sessions,
  MCP_TOOL_READ_ONLY,
};

const struct mcp_tool tool_close_session = {
  "close_session",
  "Close session",
  "Close a Python session: its interpreter is stopped and its variables are discarded. Use when "
  "a session is no longer needed.",
  session_id_input,
  NULL,
  close_session,
  MCP_TOOL_DESTRUCTIVE,
};
