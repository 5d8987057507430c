#define _GNU_SOURCE
/* JSON-RPC handling: every malformed message gets the right error code,
   and tool arguments are checked before anything runs.  */
#include "check.h"
#include "jsonrpc.h"
#include "server.h"
#include "tools.h"
#include "util.h"

static int
error_code(const char *text)
{
  struct jrpc_msg m;
  json_t *reply = NULL;
  int r = jrpc_parse(text, strlen(text), &m, &reply);
  if (r == 0) {
    jrpc_msg_free(&m);
    return 0;
  }
  if (reply == NULL)
    return 1; /* refused silently (a notification) */
  int code = (int)json_integer_value(json_object_get(json_object_get(reply, "error"), "code"));
  json_decref(reply);
  return code;
}

static void
malformed_messages_get_their_json_rpc_codes(void)
{
  CHECK(error_code("{not json") == JRPC_PARSE_ERROR);
  CHECK(error_code("42") == JRPC_INVALID_REQUEST);
  /* An array is a batch: parsed here, judged by the connection, which
     knows the protocol version (test_mcp_conn).  */
  CHECK(error_code("[]") == 0);
  CHECK(error_code("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]") == 0);
  CHECK(error_code("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}") == JRPC_INVALID_REQUEST);
  CHECK(error_code("{\"jsonrpc\":\"2.0\",\"id\":1}") == JRPC_INVALID_REQUEST);
  CHECK(error_code("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}") == JRPC_INVALID_REQUEST);
  CHECK(error_code("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}") == JRPC_INVALID_REQUEST);
  CHECK(error_code("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":3}")
        == JRPC_INVALID_REQUEST);
  CHECK(error_code("{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}")
        == JRPC_PARSE_ERROR);
  CHECK(error_code("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}") == 0);
  CHECK(error_code("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}") == 0);
}

static void
an_error_keeps_the_request_id(void)
{
  const char *text = "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":7}";
  struct jrpc_msg m;
  json_t *reply = NULL;
  CHECK(jrpc_parse(text, strlen(text), &m, &reply) == -1);
  CHECK(reply && json_is_string(json_object_get(reply, "id")));
  CHECK(reply && strcmp(json_string_value(json_object_get(reply, "id")), "abc") == 0);
  json_decref(reply);
}

static void
messages_are_dumped_as_one_line(void)
{
  json_t *m = jrpc_result(NULL, json_pack("{s:s}", "text", "a\nb\u2028"));
  size_t len;
  char *line = jrpc_dump_line(m, &len);
  CHECK(len > 0 && line[len - 1] == '\n');
  CHECK(memchr(line, '\n', len - 1) == NULL);
  free(line);
  json_decref(m);
}

static int
run_args(const char *text, const char **why)
{
  json_t *args = json_loads(text, 0, NULL);
  const char *code, *sid;
  size_t len;
  double t;
  kiln_error_t err = NULL;
  int r = tools_run_python_args(args, &code, &len, &sid, &t, &err);
  static char msg[256];
  snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
  *why = msg;
  kiln_error_release(&err);
  json_decref(args);
  return r;
}

static void
run_python_arguments_are_checked(void)
{
  const char *why;
  CHECK(run_args("{\"code\":\"1+1\"}", &why) == 0);
  CHECK(run_args("{\"code\":\"1\",\"session_id\":\"ab\",\"timeout_s\":2.5}", &why) == 0);
  CHECK(run_args("{}", &why) == -1 && strstr(why, "'code'"));
  CHECK(run_args("{\"code\":42}", &why) == -1 && strstr(why, "'code'"));
  CHECK(run_args("{\"code\":\"1\",\"timeout_s\":-1}", &why) == -1 && strstr(why, "timeout_s"));
  CHECK(run_args("{\"code\":\"1\",\"timeout_s\":0}", &why) == -1 && strstr(why, "timeout_s"));
  CHECK(run_args("{\"code\":\"1\",\"timeout_s\":\"5\"}", &why) == -1 && strstr(why, "timeout_s"));
  CHECK(run_args("{\"code\":\"1\",\"session_id\":5}", &why) == -1 && strstr(why, "session_id"));
  CHECK(run_args("{\"code\":\"1\",\"bogus\":5}", &why) == -1 && strstr(why, "bogus"));
}

static void
the_tool_list_names_eight_tools_with_schemas(void)
{
  /* A server whose tables are left zeroed offers kiln's.  */
  struct mcp_server s = { 0 };
  json_t *l = tools_list(&s, NULL);
  json_t *tools = json_object_get(l, "tools");
  CHECK(json_array_size(tools) == 8);
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t)
  {
    CHECK(json_is_string(json_object_get(t, "name")));
    CHECK(json_is_object(json_object_get(t, "inputSchema")));
  }
  json_decref(l);
}

static const struct test_case cases[] = {
  { "malformed messages get their JSON-RPC codes", malformed_messages_get_their_json_rpc_codes },
  { "an error keeps the request id", an_error_keeps_the_request_id },
  { "messages are dumped as one line", messages_are_dumped_as_one_line },
  { "run_python arguments are checked", run_python_arguments_are_checked },
  { "the tool list names eight tools with schemas", the_tool_list_names_eight_tools_with_schemas },
};

int
main(void)
{
  return RUN(cases);
}
