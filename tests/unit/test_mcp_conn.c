#define _GNU_SOURCE
/* An MCP connection without a front: everything it decides before any
   work starts (which method, which tool, which arguments, before or after
   initialize), and how deferred requests are kept and answered.  No test
   here reaches the front: a call that would is a bug in the test.  */
#include "check.h"
#include "conn.h"
#include "jsonrpc.h"
#include "methods.h"
#include "tools.h"
#include "util.h"

static json_t *sent; /* every message the connection sent, in order */

static void
capture(void *ctx, json_t *msg)
{
  json_array_append(sent, msg);
}

static struct kiln_config cfg = { .max_message = 1000 };
static struct mcp_server server = { .cfg = &cfg, .front = NULL };

static struct mcp_conn *
conn_new(bool initialize)
{
  json_decref(sent);
  sent = json_array();
  struct mcp_conn *c = mcp_conn_new(&server, capture, NULL);
  if (initialize) {
    const char *init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                       "\"protocolVersion\":\"2025-06-18\"}}";
    mcp_conn_handle(c, init, strlen(init), 0);
    json_array_clear(sent);
  }
  return c;
}

/* Handles TEXT (LEN bytes) and returns the one reply it got (borrowed
   from SENT), or NULL when there was none.  */
static json_t *
exchange(struct mcp_conn *c, const char *text, size_t len)
{
  size_t before = json_array_size(sent);
  mcp_conn_handle(c, text, len, 0);
  if (json_array_size(sent) != before + 1) {
    if (json_array_size(sent) > before + 1)
      fprintf(stderr, "  %.80s: %zu replies\n", text, json_array_size(sent) - before);
    return NULL;
  }
  return json_array_get(sent, before);
}

#define X(c, lit) exchange(c, lit, sizeof lit - 1)

static int
error_code(json_t *reply)
{
  return (int)json_integer_value(json_object_get(json_object_get(reply, "error"), "code"));
}

static const char *
error_message(json_t *reply)
{
  const char *m = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
  return m ? m : "";
}

/* The text of a tool result that has isError set, or NULL.  */
static const char *
tool_error(json_t *reply)
{
  json_t *result = json_object_get(reply, "result");
  if (!json_is_true(json_object_get(result, "isError")))
    return NULL;
  return json_string_value(
      json_object_get(json_array_get(json_object_get(result, "content"), 0), "text"));
}

static void
methods_are_looked_up_with_all_their_bytes(void)
{
  struct mcp_conn *c = conn_new(true);
  json_t *r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
  CHECK(r && json_is_object(json_object_get(r, "result")));
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\\u0000x\"}");
  CHECK(r && error_code(r) == JRPC_METHOD_NOT_FOUND);
  CHECK(r && json_integer_value(json_object_get(r, "id")) == 2);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\\u0000\"}");
  CHECK(r && error_code(r) == JRPC_METHOD_NOT_FOUND);
  /* Notifications are never answered, known or not.  */
  CHECK(X(c, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}") == NULL);
  CHECK(X(c, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/nope\\u0000\"}") == NULL);
  CHECK(json_array_size(sent) == 3);
  mcp_conn_free(c);
}

#define INIT(version)                                                                              \
  "{\"jsonrpc\":\"2.0\",\"id\":\"init\",\"method\":\"initialize\",\"params\":{"                    \
  "\"protocolVersion\":" version "}}"

/* The version initialize answered with, or NULL.  */
static const char *
negotiated(json_t *r)
{
  return json_string_value(json_object_get(json_object_get(r, "result"), "protocolVersion"));
}

static void
initialize_echoes_a_version_kiln_speaks_and_else_offers_the_newest(void)
{
  static const char *const known[] = { "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05" };
  for (size_t i = 0; i < 4; i++) {
    struct mcp_conn *c = conn_new(false);
    cleanup_free char *msg
        = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                    "\"protocolVersion\":\"%s\"}}",
                    known[i]);
    json_t *r = exchange(c, msg, strlen(msg));
    CHECK(negotiated(r) && strcmp(negotiated(r), known[i]) == 0);
    CHECK(c->initialized && strcmp(mcp_version_name(c->version), known[i]) == 0);
    mcp_conn_free(c);
  }
  static const char *const unknown[]
      = { "\"2099-01-01\"", "\"garbage\"", "\"2025-03-26\\u0000x\"", "\"\"" };
  for (size_t i = 0; i < 4; i++) {
    struct mcp_conn *c = conn_new(false);
    cleanup_free char *msg
        = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                    "\"protocolVersion\":%s}}",
                    unknown[i]);
    json_t *r = exchange(c, msg, strlen(msg));
    CHECK(negotiated(r) && strcmp(negotiated(r), "2025-11-25") == 0);
    mcp_conn_free(c);
  }
  /* No version, or one that is not a string: invalid params, and the
     connection is still waiting for a proper initialize.  */
  struct mcp_conn *c = conn_new(false);
  json_t *r = X(c, INIT("20250618"));
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS && strstr(error_message(r), "protocolVersion"));
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{}}");
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\"}");
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS);
  CHECK(!c->initialized);
  r = X(c, INIT("\"2025-06-18\""));
  CHECK(negotiated(r) && strcmp(negotiated(r), "2025-06-18") == 0);
  mcp_conn_free(c);
}

static void
only_ping_is_served_before_initialize_and_initialize_only_once(void)
{
  struct mcp_conn *c = conn_new(false);
  static const char *const early[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
    "\"run_python\",\"arguments\":{\"code\":\"1\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/list\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":{\"uri\":\"x\"}}",
    "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"logging/"
    "setLevel\",\"params\":{\"level\":\"info\"}}",
  };
  for (size_t i = 0; i < sizeof early / sizeof early[0]; i++) {
    json_t *r = exchange(c, early[i], strlen(early[i]));
    CHECK(r && error_code(r) == JRPC_INVALID_REQUEST
          && strstr(error_message(r), "before initialize"));
    CHECK(r && json_integer_value(json_object_get(r, "id")) == (json_int_t)i + 1);
  }
  json_t *r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}");
  CHECK(r && json_is_object(json_object_get(r, "result")));
  r = X(c, INIT("\"2025-03-26\""));
  CHECK(negotiated(r) && strcmp(negotiated(r), "2025-03-26") == 0);
  /* A second initialize is refused and changes nothing.  */
  r = X(c, INIT("\"2025-06-18\""));
  CHECK(r && error_code(r) == JRPC_INVALID_REQUEST && strstr(error_message(r), "already"));
  CHECK(c->version == MCP_2025_03_26);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/list\"}");
  CHECK(r && json_array_size(json_object_get(json_object_get(r, "result"), "tools")) == 8);
  mcp_conn_free(c);
}

/* The tools of a tools/list reply (borrowed), after initialize with
   VERSION.  */
static json_t *
tools_for(struct mcp_conn *c)
{
  json_t *r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
  return json_object_get(json_object_get(r, "result"), "tools");
}

static json_t *
tool_named(json_t *tools, const char *name)
{
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t)
  {
    if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0)
      return t;
  }
  return NULL;
}

static bool
hint(json_t *tool, const char *key)
{
  return json_is_true(json_object_get(json_object_get(tool, "annotations"), key));
}

static void
tools_are_described_as_the_version_allows(void)
{
  struct mcp_conn *c = conn_new(false);
  X(c, INIT("\"2025-11-25\""));
  json_t *tools = tools_for(c);
  CHECK(json_array_size(tools) == 8);
  json_t *run = tool_named(tools, "run_python");
  CHECK(json_is_string(json_object_get(run, "title")) && json_object_get(run, "outputSchema"));
  json_t *sh = tool_named(tools, "run_shell");
  CHECK(json_object_get(sh, "outputSchema") && !hint(sh, "readOnlyHint"));
  CHECK(hint(tool_named(tools, "list_files"), "readOnlyHint"));
  CHECK(hint(tool_named(tools, "read_file"), "readOnlyHint"));
  CHECK(hint(tool_named(tools, "list_sessions"), "readOnlyHint"));
  CHECK(!hint(run, "readOnlyHint"));
  CHECK(hint(tool_named(tools, "close_session"), "destructiveHint"));
  CHECK(!hint(tool_named(tools, "read_file"), "destructiveHint"));
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t)
  {
    /* Only install_packages reaches beyond the sandbox (the index).  */
    json_t *open = json_object_get(json_object_get(t, "annotations"), "openWorldHint");
    bool installs = strcmp(json_string_value(json_object_get(t, "name")), "install_packages") == 0;
    CHECK(installs ? json_is_true(open) : json_is_false(open));
  }
  /* An unknown cursor: tools/list has one page.  */
  json_t *r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{"
                   "\"cursor\":\"5\"}}");
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS && strstr(error_message(r), "cursor"));
  mcp_conn_free(c);

  c = conn_new(false);
  X(c, INIT("\"2025-03-26\""));
  tools = tools_for(c);
  json_array_foreach(tools, i, t)
  {
    CHECK(json_object_get(t, "title") == NULL && json_object_get(t, "outputSchema") == NULL);
    CHECK(json_object_get(t, "annotations") != NULL);
  }
  mcp_conn_free(c);

  c = conn_new(false);
  r = X(c, INIT("\"2024-11-05\""));
  CHECK(json_object_get(json_object_get(json_object_get(r, "result"), "serverInfo"), "title")
        == NULL);
  tools = tools_for(c);
  CHECK(json_array_size(tools) == 8);
  json_array_foreach(tools, i, t)
  {
    CHECK(json_object_get(t, "title") == NULL && json_object_get(t, "outputSchema") == NULL);
    CHECK(json_object_get(t, "annotations") == NULL);
  }
  mcp_conn_free(c);
}

/* A tool result with everything a newer client may see.  */
static json_t *
rich_result(void)
{
  return json_pack("{s:[{s:s, s:s}, {s:s, s:s, s:s, s:s, s:i}, {s:s, s:s, s:s}], s:{s:s}, s:b}",
                   "content", "type", "text", "text", "[session a · cell 1]", "type",
                   "resource_link", "uri", "kiln://sessions/a/files/out.txt", "name", "out.txt",
                   "mimeType", "text/plain", "size", 2, "type", "image", "data", "AAAA", "mimeType",
                   "image/png", "structuredContent", "session_id", "a", "isError", 0);
}

static void
tool_results_are_shaped_for_the_version(void)
{
  static const char *const versions[] = { "\"2024-11-05\"", "\"2025-03-26\"", "\"2025-06-18\"" };
  for (size_t v = 0; v < 3; v++) {
    struct mcp_conn *c = conn_new(false);
    cleanup_free char *init
        = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                    "\"protocolVersion\":%s}}",
                    versions[v]);
    exchange(c, init, strlen(init));
    json_t *id = json_integer(7);
    struct mcp_call call = { .server = &server, .conn = c, .id = id };
    struct mcp_pending *p = mcp_defer(&call, sizeof *p, MCP_TOOL_ERROR);
    CHECK(mcp_started(p, 3) == MCP_DEFERRED);
    mcp_answer(p, rich_result());
    json_t *result = json_object_get(json_array_get(sent, json_array_size(sent) - 1), "result");
    json_t *content = json_object_get(result, "content");
    CHECK(json_array_size(content) == 3);
    json_t *link = json_array_get(content, 1);
    const char *type = json_string_value(json_object_get(link, "type"));
    if (v < 2) {
      CHECK(json_object_get(result, "structuredContent") == NULL);
      CHECK(type && strcmp(type, "text") == 0);
      const char *text = json_string_value(json_object_get(link, "text"));
      CHECK(text && strstr(text, "kiln://sessions/a/files/out.txt") && strstr(text, "out.txt"));
      CHECK(strcmp(json_string_value(json_object_get(json_array_get(content, 2), "type")), "image")
            == 0);
    } else {
      CHECK(json_object_get(result, "structuredContent") != NULL);
      CHECK(type && strcmp(type, "resource_link") == 0);
    }
    json_decref(id);
    mcp_conn_free(c);
  }
}

static void
batches_are_answered_as_one_array_in_2025_03_26_only(void)
{
  const char batch[] = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
                       "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
                       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"},"
                       "7,"
                       "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\"}]";
  struct mcp_conn *c = conn_new(false);
  json_t *r = X(c, batch);
  CHECK(r && error_code(r) == JRPC_INVALID_REQUEST && strstr(error_message(r), "batch"));
  X(c, INIT("\"2025-03-26\""));
  r = X(c, batch);
  CHECK(json_is_array(r) && json_array_size(r) == 4);
  CHECK(json_integer_value(json_object_get(json_array_get(r, 0), "id")) == 1);
  CHECK(error_code(json_array_get(r, 1)) == JRPC_METHOD_NOT_FOUND);
  CHECK(error_code(json_array_get(r, 2)) == JRPC_INVALID_REQUEST);
  CHECK(json_array_size(json_object_get(json_object_get(json_array_get(r, 3), "result"), "tools"))
        == 8);
  /* Only notifications: nothing comes back.  */
  CHECK(X(c, "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]") == NULL);
  r = X(c, "[]");
  CHECK(r && error_code(r) == JRPC_INVALID_REQUEST);
  /* initialize is never part of a batch.  */
  r = X(c, "[" INIT("\"2025-03-26\"") "]");
  CHECK(json_is_array(r) && error_code(json_array_get(r, 0)) == JRPC_INVALID_REQUEST);
  mcp_conn_free(c);

  c = conn_new(false);
  X(c, INIT("\"2025-06-18\""));
  r = X(c, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]");
  CHECK(r && json_is_object(r) && error_code(r) == JRPC_INVALID_REQUEST
        && strstr(error_message(r), "2025-06-18"));
  mcp_conn_free(c);
}

static void
a_batch_waits_for_its_deferred_answers(void)
{
  struct mcp_conn *c = conn_new(false);
  X(c, INIT("\"2025-03-26\""));
  json_array_clear(sent);
  json_t *id = json_integer(4);
  struct mcp_call call = { .server = &server, .conn = c, .id = id };
  struct mcp_batch *b = mcp_batch_begin(c);
  const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
  mcp_conn_handle(c, ping, sizeof ping - 1, 0);
  struct mcp_pending *p = mcp_defer(&call, sizeof *p, MCP_TOOL_ERROR);
  mcp_batch_end(c, b);
  /* The ping is answered, but only within the batch, which waits.  */
  CHECK(json_array_size(sent) == 0);
  CHECK(mcp_started(p, 9) == MCP_DEFERRED);
  CHECK(json_array_size(sent) == 0);
  mcp_answer(p, json_pack("{s:[]}", "content"));
  json_t *r = json_array_get(sent, 0);
  CHECK(json_array_size(sent) == 1 && json_is_array(r) && json_array_size(r) == 2);
  CHECK(json_integer_value(json_object_get(json_array_get(r, 0), "id")) == 1);
  CHECK(json_integer_value(json_object_get(json_array_get(r, 1), "id")) == 4);
  /* Outside a batch, a deferred answer goes alone.  */
  p = mcp_defer(&call, sizeof *p, MCP_TOOL_ERROR);
  CHECK(mcp_started(p, 10) == MCP_DEFERRED);
  mcp_answer(p, json_pack("{s:[]}", "content"));
  CHECK(json_array_size(sent) == 2 && json_is_object(json_array_get(sent, 1)));
  /* A connection closed while a batch waits frees it unsent.  */
  b = mcp_batch_begin(c);
  p = mcp_defer(&call, sizeof *p, MCP_TOOL_ERROR);
  mcp_batch_end(c, b);
  json_decref(id);
  mcp_conn_free(c);
  CHECK(json_array_size(sent) == 2);
}

static void
log_levels_are_set_and_kept(void)
{
  struct mcp_conn *c = conn_new(false);
  mcp_conn_log(&server, MCP_LOG_ERROR, "before");
  CHECK(json_array_size(sent) == 0);
  X(c, INIT("\"2025-06-18\""));
  json_array_clear(sent);
  mcp_conn_log(&server, MCP_LOG_INFO, "quiet");
  CHECK(json_array_size(sent) == 0);
  mcp_conn_log(&server, MCP_LOG_WARNING, "loud");
  json_t *n = json_array_get(sent, 0);
  CHECK(n && strcmp(json_string_value(json_object_get(n, "method")), "notifications/message") == 0);
  json_t *params = json_object_get(n, "params");
  CHECK(strcmp(json_string_value(json_object_get(params, "level")), "warning") == 0);
  CHECK(strcmp(json_string_value(json_object_get(params, "data")), "loud") == 0);
  json_t *r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"logging/setLevel\",\"params\":{"
                   "\"level\":\"debug\"}}");
  CHECK(r && json_is_object(json_object_get(r, "result")));
  json_array_clear(sent);
  mcp_conn_log(&server, MCP_LOG_DEBUG, "now heard");
  CHECK(json_array_size(sent) == 1);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"logging/setLevel\",\"params\":{"
           "\"level\":\"loud\"}}");
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS);
  CHECK(c->log_level == MCP_LOG_DEBUG);
  mcp_conn_free(c);
}

static void
tool_names_are_looked_up_with_all_their_bytes(void)
{
  struct mcp_conn *c = conn_new(true);
  json_t *r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
                   "\"run_python\\u0000\",\"arguments\":{\"code\":\"1\"}}}");
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS);
  /* The message names the tool as sent and every tool the table has.  */
  const char *m = error_message(r);
  CHECK(strstr(m, "unknown tool 'run_python?'"));
  const char *names[] = { "run_python",  "list_sessions", "close_session",
                          "upload_file", "list_files",    "read_file" };
  for (size_t i = 0; i < 6; i++)
    CHECK(strstr(m, names[i]) != NULL);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":7}}");
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\"}");
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":[1]}");
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS);
  mcp_conn_free(c);
}

/* Calls TOOL with ARGS (JSON text) and returns the tool error's text, or
   NULL when the reply is anything else.  */
static const char *
refused(struct mcp_conn *c, const char *tool, const char *args)
{
  static char text[4096];
  cleanup_free char *msg
      = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":"
                  "\"%s\",\"arguments\":%s}}",
                  tool, args);
  const char *t = tool_error(exchange(c, msg, strlen(msg)));
  if (t == NULL) {
    fprintf(stderr, "  %s %s: not refused\n", tool, args);
    return NULL;
  }
  snprintf(text, sizeof text, "%s", t);
  return text;
}

#define REFUSED(tool, args, why)                                                                   \
  do {                                                                                             \
    const char *t_ = refused(c, tool, args);                                                       \
    CHECK(t_ &&strstr(t_, why));                                                                   \
    if (t_ && !strstr(t_, why))                                                                    \
      fprintf(stderr, "  %s %s: '%s' lacks '%s'\n", tool, args, t_, why);                          \
  } while (0)

static void
arguments_are_checked_against_the_input_schema(void)
{
  struct mcp_conn *c = conn_new(true);
  REFUSED("run_python", "{}", "missing required argument 'code'");
  REFUSED("run_python", "{\"code\":1}", "argument 'code' must be a string");
  REFUSED("run_python", "{\"code\":\"1\",\"bogus\":1}",
          "unknown argument 'bogus' (run_python takes code, session_id, timeout_s)");
  REFUSED("run_python", "{\"code\":\"1\",\"timeout_s\":0}", "greater than 0");
  REFUSED("run_python", "{\"code\":\"1\",\"timeout_s\":\"5\"}", "'timeout_s' must be a number");
  REFUSED("run_python", "[1]", "must be an object");
  REFUSED("list_sessions", "{\"x\":1}", "list_sessions takes no arguments");
  REFUSED("close_session", "{}", "missing required argument 'session_id'");
  REFUSED("read_file", "{\"session_id\":\"a\"}", "missing required argument 'path'");
  REFUSED("read_file", "{\"session_id\":\"a\",\"path\":[]}", "'path' must be a string");
  REFUSED("list_files", "{\"session_id\":\"a\",\"content\":\"x\"}", "unknown argument 'content'");
  REFUSED("upload_file", "{\"session_id\":\"a\",\"path\":\"p\"}", "'content'");
  REFUSED("upload_file",
          "{\"session_id\":\"a\",\"path\":\"p\",\"content\":\"x\",\"encoding\":\"hex\"}",
          "one of \"text\", \"base64\"");
  mcp_conn_free(c);
}

static void
string_arguments_are_compared_with_all_their_bytes(void)
{
  struct mcp_conn *c = conn_new(true);
  /* A session id with a NUL would name the session before the NUL.  */
  REFUSED("run_python", "{\"code\":\"1\",\"session_id\":\"abc\\u0000def\"}",
          "'session_id' must not contain a NUL");
  REFUSED("close_session", "{\"session_id\":\"abc\\u0000\"}", "NUL");
  REFUSED("read_file", "{\"session_id\":\"abc\\u0000\",\"path\":\"x\"}", "NUL");
  REFUSED("list_files", "{\"session_id\":\"abc\\u0000\"}", "NUL");
  REFUSED("upload_file", "{\"session_id\":\"abc\\u0000\",\"path\":\"x\",\"content\":\"y\"}", "NUL");
  REFUSED("upload_file",
          "{\"session_id\":\"a\",\"path\":\"p\",\"content\":\"x\",\"encoding\":\"base64\\u0000\"}",
          "must be one of");
  mcp_conn_free(c);
}

static void
a_message_over_the_limit_is_refused_with_its_id(void)
{
  struct mcp_conn *c = conn_new(true);
  const char start[]
      = "{\"jsonrpc\":\"2.0\",\"id\":\"big-1\",\"method\":\"tools/call\",\"params\":{";
  mcp_conn_handle(c, start, sizeof start - 1, 5000);
  json_t *r = json_array_get(sent, 0);
  CHECK(json_array_size(sent) == 1);
  const char *id = json_string_value(json_object_get(r, "id"));
  CHECK(id && strcmp(id, "big-1") == 0);
  CHECK(r && error_code(r) == JRPC_INVALID_REQUEST && strstr(error_message(r), "1000-byte limit"));
  mcp_conn_free(c);
}

/* ---------------------------------------------------------------- deferral */

static int idle_calls;
static void
on_idle(void *ctx)
{
  idle_calls++;
}

static int
echo(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  *result = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", "echo");
  return MCP_ANSWERED;
}

static int
no_prompts(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  *result = json_pack("{s:[]}", "prompts");
  return MCP_ANSWERED;
}

static const struct mcp_tool echo_tool = {
  "echo", "Echo", "Says echo", "{\"type\": \"object\", \"properties\": {}}", NULL, echo, 0,
};
static const struct mcp_tool *const own_tools[] = { &echo_tool };
static const struct mcp_method own_methods[] = { { "prompts/list", no_prompts, false } };

/* The capabilities a fresh connection to SERVER is initialized with
   (a new reference).  */
static json_t *
capabilities(void)
{
  struct mcp_conn *c = conn_new(false);
  json_t *r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                   "\"protocolVersion\":\"2025-06-18\"}}");
  json_t *caps = json_incref(json_object_get(json_object_get(r, "result"), "capabilities"));
  mcp_conn_free(c);
  return caps;
}

static void
a_server_with_tables_of_its_own_offers_them_and_announces_its_prompts(void)
{
  server.tools = own_tools;
  server.ntools = 1;
  server.methods = own_methods;
  server.nmethods = 1;
  json_t *caps = capabilities();
  CHECK(json_object_get(caps, "prompts") != NULL);
  CHECK(json_is_false(json_object_get(json_object_get(caps, "resources"), "subscribe")));
  json_decref(caps);
  struct mcp_conn *c = conn_new(true);
  json_t *r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
  json_t *tools = json_object_get(json_object_get(r, "result"), "tools");
  CHECK(json_array_size(tools) == 1
        && strcmp(json_string_value(json_object_get(json_array_get(tools, 0), "name")), "echo")
               == 0);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"run_python\",\"arguments\":{\"code\":\"1\"}}}");
  CHECK(error_code(r) == JRPC_INVALID_PARAMS);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"echo\"}}");
  CHECK(json_is_array(json_object_get(json_object_get(r, "result"), "content")));
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"prompts/list\"}");
  CHECK(json_is_array(json_object_get(json_object_get(r, "result"), "prompts")));
  /* kiln's own methods are still there behind the server's.  */
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}");
  CHECK(json_is_object(json_object_get(r, "result")));
  mcp_conn_free(c);

  server.tools = NULL;
  server.ntools = 0;
  server.methods = NULL;
  server.nmethods = 0;
  caps = capabilities();
  CHECK(json_object_get(caps, "prompts") == NULL);
  json_decref(caps);
  c = conn_new(true);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"prompts/list\"}");
  CHECK(error_code(r) == JRPC_METHOD_NOT_FOUND);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\"}");
  CHECK(json_array_size(json_object_get(json_object_get(r, "result"), "tools")) == 8);
  mcp_conn_free(c);
}

static int replies;
static json_t *last_result, *last_error;

static void
on_reply(void *ctx, json_t *result, json_t *error)
{
  replies++;
  json_decref(last_result);
  json_decref(last_error);
  last_result = json_incref(result);
  last_error = json_incref(error);
}

/* Feeds C the response {"id": ID, BODY}.  */
static void
respond(struct mcp_conn *c, int64_t id, const char *body)
{
  cleanup_free char *text = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":%lld,%s}", (long long)id, body);
  mcp_conn_handle(c, text, strlen(text), 0);
}

static void
requests_to_the_client_are_answered_once_by_id_and_dropped_ones_never(void)
{
  struct mcp_conn *c = conn_new(true);
  replies = 0;
  int64_t id = mcp_request(c, "sampling/createMessage", json_object(), on_reply, NULL);
  json_t *req = json_array_get(sent, 0);
  CHECK(id > 0 && json_integer_value(json_object_get(req, "id")) == id);
  CHECK(strcmp(json_string_value(json_object_get(req, "method")), "sampling/createMessage") == 0);
  respond(c, id, "\"result\":{\"x\":1}");
  CHECK(replies == 1 && json_integer_value(json_object_get(last_result, "x")) == 1
        && last_error == NULL);
  /* An answer sent twice, or to an id never sent, reaches no one.  */
  respond(c, id, "\"result\":{}");
  respond(c, id + 100, "\"result\":{}");
  CHECK(replies == 1 && json_array_size(sent) == 1);

  id = mcp_request(c, "elicitation/create", json_object(), on_reply, NULL);
  respond(c, id, "\"error\":{\"code\":-32601,\"message\":\"no\"}");
  CHECK(replies == 2 && last_result == NULL
        && json_integer_value(json_object_get(last_error, "code")) == -32601);

  id = mcp_request(c, "elicitation/create", json_object(), on_reply, NULL);
  mcp_request_drop(c, id);
  respond(c, id, "\"result\":{}");
  CHECK(replies == 2);
  /* One still waiting when the connection goes is forgotten with it.  */
  mcp_request(c, "sampling/createMessage", json_object(), on_reply, NULL);
  mcp_conn_free(c);
  CHECK(replies == 2);
  json_decref(last_result);
  json_decref(last_error);
  last_result = last_error = NULL;
}

static void
a_refused_start_drops_the_request_and_returns_its_code(void)
{
  struct mcp_conn *c = conn_new(true);
  json_t *id = json_integer(5);
  struct mcp_call call = { .server = &server, .conn = c, .id = id };
  struct mcp_pending *p = mcp_defer(&call, sizeof *p, MCP_RESOURCE_NOT_FOUND);
  CHECK(c->pending == p);
  CHECK(mcp_started(p, -1) == MCP_RESOURCE_NOT_FOUND);
  CHECK(c->pending == NULL && json_array_size(sent) == 0);
  json_decref(id);
  mcp_conn_free(c);
}

static void
an_answer_during_the_start_is_sent_once_and_freed_after(void)
{
  struct mcp_conn *c = conn_new(true);
  json_t *id = json_integer(6);
  struct mcp_call call = { .server = &server, .conn = c, .id = id };
  struct mcp_pending *p = mcp_defer(&call, sizeof *p, MCP_TOOL_ERROR);
  /* The front may answer from inside the call that starts the work.  */
  mcp_answer(p, json_pack("{s:s}", "k", "v"));
  CHECK(json_array_size(sent) == 1 && c->pending == p);
  CHECK(mcp_started(p, 42) == MCP_DEFERRED);
  CHECK(c->pending == NULL && json_array_size(sent) == 1);
  json_decref(id);
  mcp_conn_free(c);
}

static void
deferred_answers_and_failures_reach_the_client_and_then_idle(void)
{
  struct mcp_conn *c = conn_new(true);
  json_t *id1 = json_string("one"), *id2 = json_string("two");
  struct mcp_call c1 = { .server = &server, .conn = c, .id = id1 };
  struct mcp_call c2 = { .server = &server, .conn = c, .id = id2 };
  struct mcp_pending *p1 = mcp_defer(&c1, sizeof *p1, MCP_TOOL_ERROR);
  struct mcp_pending *p2 = mcp_defer(&c2, sizeof *p2, MCP_RESOURCE_NOT_FOUND);
  CHECK(mcp_started(p1, 1) == MCP_DEFERRED && mcp_started(p2, 2) == MCP_DEFERRED);
  idle_calls = 0;
  mcp_conn_when_idle(c, on_idle, NULL);
  CHECK(idle_calls == 0);
  /* A reply that could not be built is an answered internal error.  */
  mcp_answer(p1, NULL);
  json_t *r = json_array_get(sent, 0);
  const char *id = json_string_value(json_object_get(r, "id"));
  CHECK(id && strcmp(id, "one") == 0 && error_code(r) == JRPC_INTERNAL_ERROR);
  CHECK(idle_calls == 0);
  kiln_error_t err = NULL;
  kiln_error_make(&err, 0, "gone \xc3");
  mcp_fail(p2, err);
  kiln_error_release(&err);
  r = json_array_get(sent, 1);
  CHECK(r && error_code(r) == MCP_RESOURCE_NOT_FOUND
        && strcmp(error_message(r), "gone \xef\xbf\xbd") == 0);
  CHECK(idle_calls == 1 && c->pending == NULL);
  json_decref(id1);
  json_decref(id2);
  mcp_conn_free(c);
}

static void
failures_become_json_rpc_errors_or_tool_results_in_one_place(void)
{
  json_t *id = json_integer(1);
  kiln_error_t err = NULL;
  kiln_error_make(&err, 0, "it broke");
  json_t *r = mcp_failure(id, MCP_TOOL_ERROR, err);
  CHECK(r && tool_error(r) && strcmp(tool_error(r), "it broke") == 0);
  json_decref(r);
  r = mcp_failure(id, JRPC_INVALID_PARAMS, err);
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS && strcmp(error_message(r), "it broke") == 0);
  json_decref(r);
  /* A message cut through a character, as a front once wrote them, is
     still a reply.  */
  kiln_error_make(&err, 0, "'../aaa\xc3' is not a path");
  r = mcp_failure(id, MCP_TOOL_ERROR, err);
  CHECK(r && tool_error(r) && strcmp(tool_error(r), "'../aaa\xef\xbf\xbd' is not a path") == 0);
  json_decref(r);
  r = mcp_failure(id, MCP_RESOURCE_NOT_FOUND, err);
  CHECK(r && strcmp(error_message(r), "'../aaa\xef\xbf\xbd' is not a path") == 0);
  json_decref(r);
  /* A code that is not JSON-RPC's, and no error at all.  */
  r = mcp_failure(id, 7, err);
  CHECK(r && error_code(r) == JRPC_INTERNAL_ERROR);
  json_decref(r);
  r = mcp_failure(id, JRPC_INVALID_PARAMS, NULL);
  CHECK(r && error_code(r) == JRPC_INVALID_PARAMS
        && strcmp(error_message(r), "internal error") == 0);
  json_decref(r);
  kiln_error_release(&err);
  json_decref(id);
}

/* ---------------------------------------------------------------- cell replies */

static void
a_cell_with_an_empty_stdout_shows_its_image_and_display_text_in_order(void)
{
  static const uint8_t png[] = { 0x89, 'P', 'N', 'G' };
  const struct cell_output outs[] = {
    { .mime = "image/png",
      .name = "cell1-1.png",
      .uri = "kiln://sessions/s/artifacts/cell1-1.png",
      .data = png,
      .len = sizeof png,
      .width = 1,
      .height = 1,
      .out_pos = 0 },
    { .mime = "text/plain",
      .name = "",
      .data = (const uint8_t *)"shown",
      .len = 5,
      .out_pos = SIZE_MAX },
  };
  /* No stdout at all: nothing of it is copied, not even from nowhere.  */
  const struct cell_reply r = { .session_id = "s",
                                .execution_count = 1,
                                .out = "",
                                .err = "",
                                .err_lineno = -1,
                                .err_offset = -1,
                                .outputs = outs,
                                .noutputs = 2 };
  json_t *result = tools_cell_result(&r, 4096);
  json_t *content = json_object_get(result, "content");
  CHECK(json_array_size(content) == 3);
  const char *head = json_string_value(json_object_get(json_array_get(content, 0), "text"));
  CHECK(head && strncmp(head, "[session s ", 11) == 0 && strchr(head, '\n') == NULL);
  CHECK(strcmp(json_string_value(json_object_get(json_array_get(content, 1), "type")), "image")
        == 0);
  const char *last = json_string_value(json_object_get(json_array_get(content, 2), "text"));
  CHECK(last && strcmp(last, "shown") == 0);
  json_decref(result);
}

static void
a_shell_command_s_reply_names_the_command_and_ends_with_its_exit_status(void)
{
  struct cell_reply r = { .session_id = "s",
                          .status = REPLY_ERROR,
                          .execution_count = 4,
                          .out = "x\n",
                          .out_len = 2,
                          .err = "",
                          .err_lineno = -1,
                          .err_offset = -1,
                          .shell = true,
                          .exit_code = 3 };
  json_t *result = tools_cell_result(&r, 4096);
  const char *text = json_string_value(
      json_object_get(json_array_get(json_object_get(result, "content"), 0), "text"));
  CHECK(text && strncmp(text, "[session s \xc2\xb7 command 4 \xc2\xb7 ", 25) == 0);
  CHECK(text && strstr(text, " \xc2\xb7 error]\nx\n[exit status 3]") != NULL);
  json_t *sc = json_object_get(result, "structuredContent");
  CHECK(json_integer_value(json_object_get(sc, "exit_code")) == 3);
  CHECK(json_is_null(json_object_get(sc, "signal")));
  CHECK(json_is_true(json_object_get(result, "isError")));
  json_decref(result);

  r.status = REPLY_KILLED;
  r.exit_code = -1;
  r.signal = 9;
  result = tools_cell_result(&r, 4096);
  text = json_string_value(
      json_object_get(json_array_get(json_object_get(result, "content"), 0), "text"));
  CHECK(text && strstr(text, "x\n[killed by SIGKILL (signal 9)]") != NULL);
  sc = json_object_get(result, "structuredContent");
  CHECK(json_is_null(json_object_get(sc, "exit_code")));
  CHECK(strcmp(json_string_value(json_object_get(sc, "signal")), "SIGKILL") == 0);
  json_decref(result);

  /* A cell says nothing of either.  */
  r.shell = false;
  result = tools_cell_result(&r, 4096);
  sc = json_object_get(result, "structuredContent");
  CHECK(json_object_get(sc, "exit_code") == NULL && json_object_get(sc, "signal") == NULL);
  json_decref(result);
}

static const struct test_case cases[] = {
  { "methods are looked up with all their bytes", methods_are_looked_up_with_all_their_bytes },
  { "initialize echoes a version kiln speaks, and else offers the newest",
    initialize_echoes_a_version_kiln_speaks_and_else_offers_the_newest },
  { "only ping is served before initialize, and initialize only once",
    only_ping_is_served_before_initialize_and_initialize_only_once },
  { "tools are described as the version allows", tools_are_described_as_the_version_allows },
  { "tool results are shaped for the version", tool_results_are_shaped_for_the_version },
  { "batches are answered as one array, in 2025-03-26 only",
    batches_are_answered_as_one_array_in_2025_03_26_only },
  { "a batch waits for its deferred answers", a_batch_waits_for_its_deferred_answers },
  { "log levels are set and kept", log_levels_are_set_and_kept },
  { "tool names are looked up with all their bytes",
    tool_names_are_looked_up_with_all_their_bytes },
  { "arguments are checked against the input schema",
    arguments_are_checked_against_the_input_schema },
  { "string arguments are compared with all their bytes",
    string_arguments_are_compared_with_all_their_bytes },
  { "a message over the limit is refused with its id",
    a_message_over_the_limit_is_refused_with_its_id },
  { "a refused start drops the request and returns its code",
    a_refused_start_drops_the_request_and_returns_its_code },
  { "an answer during the start is sent once and freed after",
    an_answer_during_the_start_is_sent_once_and_freed_after },
  { "deferred answers and failures reach the client, and then idle",
    deferred_answers_and_failures_reach_the_client_and_then_idle },
  { "failures become JSON-RPC errors or tool results in one place",
    failures_become_json_rpc_errors_or_tool_results_in_one_place },
  { "a cell with an empty stdout shows its image and display text in order",
    a_cell_with_an_empty_stdout_shows_its_image_and_display_text_in_order },
  { "a shell command's reply names the command and ends with its exit status",
    a_shell_command_s_reply_names_the_command_and_ends_with_its_exit_status },
  { "a server with tables of its own offers them and announces its prompts",
    a_server_with_tables_of_its_own_offers_them_and_announces_its_prompts },
  { "requests to the client are answered once by id, and dropped ones never",
    requests_to_the_client_are_answered_once_by_id_and_dropped_ones_never },
};

int
main(void)
{
  int r = RUN(cases);
  json_decref(sent);
  return r;
}
