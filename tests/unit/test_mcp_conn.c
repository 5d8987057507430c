#define _GNU_SOURCE
/* An MCP connection without a front: everything it decides before any
   work starts (which method, which tool, which arguments, before or after
   initialize), and how deferred requests are kept and answered.  No test
   here reaches the front: a call that would is a bug in the test.  */
#include "check.h"
#include "conn.h"
#include "jsonrpc.h"
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

static void
initialize_negotiates_a_version_and_nothing_waits_for_it(void)
{
  struct mcp_conn *c = conn_new(false);
  CHECK(!c->initialized && c->protocol_version == NULL);
  /* No method needs what initialize negotiates: each is served first.  */
  json_t *r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
  CHECK(r && json_array_size(json_object_get(json_object_get(r, "result"), "tools")) == 6);
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"run_python\",\"arguments\":{}}}");
  CHECK(r && tool_error(r) && strstr(tool_error(r), "'code'"));
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
  CHECK(r && json_object_get(r, "result"));
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"initialize\",\"params\":{"
           "\"protocolVersion\":\"2025-03-26\"}}");
  const char *v
      = json_string_value(json_object_get(json_object_get(r, "result"), "protocolVersion"));
  CHECK(v && strcmp(v, "2025-03-26") == 0);
  CHECK(c->initialized && c->protocol_version && strcmp(c->protocol_version, "2025-03-26") == 0);
  /* A version kiln does not know is answered with the newest.  */
  r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"initialize\",\"params\":{"
           "\"protocolVersion\":\"1999-01-01\"}}");
  CHECK(r && c->protocol_version && strcmp(c->protocol_version, "2025-06-18") == 0);
  mcp_conn_free(c);
}

static void
a_protocol_version_is_matched_with_all_its_bytes(void)
{
  struct mcp_conn *c = conn_new(false);
  json_t *r = X(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                   "\"protocolVersion\":\"2025-03-26\\u0000junk\"}}");
  CHECK(r && c->protocol_version && strcmp(c->protocol_version, "2025-06-18") == 0);
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

static const struct test_case cases[] = {
  { "methods are looked up with all their bytes", methods_are_looked_up_with_all_their_bytes },
  { "initialize negotiates a version, and nothing waits for it",
    initialize_negotiates_a_version_and_nothing_waits_for_it },
  { "a protocol version is matched with all its bytes",
    a_protocol_version_is_matched_with_all_its_bytes },
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
};

int
main(void)
{
  int r = RUN(cases);
  json_decref(sent);
  return r;
}
