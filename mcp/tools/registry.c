/* The tool table, and what is derived from it: tools/list, the argument
   checks of tools/call, and the "unknown tool" message.  */
#define _GNU_SOURCE
#include "tools.h"
#include "server.h"
#include "tools/schema.h"
#include "util.h"

#include <math.h>
#include <string.h>

/* The longest tool name an error message quotes.  */
#define SHOWN_NAME 100

/* What a client may assume of a tool (MCP's tool annotations): none
   reaches beyond the session's sandbox, so none is open-world.  */
enum {
  READ_ONLY = 1,   /* changes nothing */
  DESTRUCTIVE = 2, /* may delete or overwrite what is there */
  IDEMPOTENT = 4,  /* a repeat with the same arguments does nothing more */
};

/* The tools, in the order tools/list shows them.  */
static const struct {
  const struct mcp_tool *tool;
  unsigned hints;
} table[] = {
  { &tool_run_python, DESTRUCTIVE },    { &tool_list_sessions, READ_ONLY },
  { &tool_close_session, DESTRUCTIVE }, { &tool_upload_file, DESTRUCTIVE | IDEMPOTENT },
  { &tool_list_files, READ_ONLY },      { &tool_read_file, READ_ONLY },
};
#define NTOOLS (sizeof table / sizeof table[0])

static json_t *
parse_schema(const char *text)
{
  json_error_t e;
  json_t *j = json_loads(text, 0, &e);
  if (j == NULL) {
    /* The schemas are constants: a typo is a bug caught by any test.  */
    fprintf(stderr, "kiln: bad built-in schema: %s\n", e.text);
    abort();
  }
  return j;
}

json_t *
tools_input_schema(const struct mcp_tool *t)
{
  /* Parsed on first use and kept: every tools/call checks against it.  */
  static json_t *parsed[NTOOLS];
  for (size_t i = 0; i < NTOOLS; i++)
    if (table[i].tool == t) {
      if (parsed[i] == NULL)
        parsed[i] = parse_schema(t->input);
      return parsed[i];
    }
  abort();
}

json_t *
tools_list(const char *packages)
{
  json_t *list = json_array();
  /* run_python says what a cell can import: the venv as read at start-up.  */
  cleanup_free char *run_description
      = packages && packages[0]
            ? xasprintf("%s\n\nInstalled packages (there is no network: pip cannot add others): %s",
                        tool_run_python.description, packages)
            : xstrdup(tool_run_python.description);
  for (size_t i = 0; i < NTOOLS; i++) {
    const struct mcp_tool *t = table[i].tool;
    unsigned h = table[i].hints;
    const char *description = t == &tool_run_python ? run_description : t->description;
    json_t *o = json_pack("{s:s, s:s, s:s, s:O, s:{s:s, s:b, s:b, s:b, s:b}}", "name", t->name,
                          "title", t->title, "description", description, "inputSchema",
                          tools_input_schema(t), "annotations", "title", t->title, "readOnlyHint",
                          (h & READ_ONLY) != 0, "destructiveHint", (h & DESTRUCTIVE) != 0,
                          "idempotentHint", (h & IDEMPOTENT) != 0, "openWorldHint", 0);
    if (o && t->output)
      json_object_set_new(o, "outputSchema", parse_schema(t->output));
    if (o == NULL || json_array_append_new(list, o) < 0) {
      json_decref(list);
      return NULL;
    }
  }
  return json_pack("{s:o}", "tools", list);
}

int
tools_list_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  /* Every tool fits on one page: no cursor kiln gave out exists.  */
  if (json_object_get(params, "cursor")) {
    kiln_error_make(err, 0, "invalid cursor: tools/list has a single page");
    return JRPC_INVALID_PARAMS;
  }
  *result = tools_list(c->server->front ? front_packages(c->server->front) : NULL);
  return MCP_ANSWERED;
}

static const struct mcp_tool *
find_tool(json_t *name)
{
  for (size_t i = 0; i < NTOOLS; i++)
    if (strlen(table[i].tool->name) == json_string_length(name)
        && memcmp(table[i].tool->name, json_string_value(name), json_string_length(name)) == 0)
      return table[i].tool;
  return NULL;
}

static int
unknown_tool(json_t *name, kiln_error_t *err)
{
  struct buf names = { 0 };
  for (size_t i = 0; i < NTOOLS; i++) {
    if (i)
      buf_append(&names, ", ", 2);
    buf_append(&names, table[i].tool->name, strlen(table[i].tool->name));
  }
  buf_append(&names, "", 1);
  cleanup_free char *shown
      = utf8_excerpt(json_string_value(name), json_string_length(name), SHOWN_NAME);
  kiln_error_make(err, 0, "unknown tool '%s' (kiln offers %s)", shown, (const char *)names.data);
  buf_free(&names);
  return JRPC_INVALID_PARAMS;
}

int
tools_call_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  json_t *name = json_object_get(params, "name");
  if (!json_is_string(name)) {
    kiln_error_make(err, 0, "tools/call needs a string \"name\": the tool to call");
    return JRPC_INVALID_PARAMS;
  }
  const struct mcp_tool *t = find_tool(name);
  if (t == NULL)
    return unknown_tool(name, err);
  json_t *args = json_object_get(params, "arguments");
  if (args == NULL)
    args = json_object();
  else
    json_incref(args);
  int r = schema_check_args(tools_input_schema(t), t->name, args, err);
  if (r == 0)
    r = t->fn(c, args, result, err);
  json_decref(args);
  return r < 0 ? MCP_TOOL_ERROR : r;
}

json_t *
tools_arg(json_t *args, const char *key)
{
  json_t *v = json_object_get(args, key);
  return json_is_null(v) ? NULL : v;
}

int
tools_arg_name(json_t *args, const char *key, const char **out, kiln_error_t *err)
{
  json_t *v = tools_arg(args, key);
  *out = NULL;
  if (v == NULL)
    return 0;
  if (!json_is_string(v))
    return kiln_error_make(err, 0, "argument '%s' must be a string", key);
  if (strlen(json_string_value(v)) != json_string_length(v))
    return kiln_error_make(err, 0, "argument '%s' must not contain a NUL character", key);
  *out = json_string_value(v);
  return 0;
}

int
tools_run_python_args(json_t *args, const char **code, size_t *code_len, const char **session_id,
                      double *timeout, kiln_error_t *err)
{
  if (schema_check_args(tools_input_schema(&tool_run_python), tool_run_python.name, args, err) < 0
      || tools_arg_name(args, "session_id", session_id, err) < 0)
    return -1;
  json_t *c = json_object_get(args, "code");
  *code = json_string_value(c);
  *code_len = json_string_length(c);
  json_t *t = tools_arg(args, "timeout_s");
  *timeout = t ? json_number_value(t) : 0;
  /* The schema cannot say "finite"; a JSON number always is, but a
     caller building ARGS in C could pass anything.  */
  if (t && !isfinite(*timeout))
    return kiln_error_make(err, 0, "argument 'timeout_s' must be a finite number of seconds");
  return 0;
}
