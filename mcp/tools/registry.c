/* kiln's tool table, and what is derived from a server's table (kiln's
   or another's): tools/list, the argument checks of tools/call, and the
   "unknown tool" message.  */
#define _GNU_SOURCE
#include "tools.h"
#include "server.h"
#include "tools/schema.h"
#include "util.h"

#include <math.h>
#include <string.h>

/* The longest tool name an error message quotes.  */
#define SHOWN_NAME 100

/* kiln's tools, in the order tools/list shows them.  Only
   install_packages reaches beyond the session's sandbox (to the package
   index), so only it is open-world.  */
static const struct mcp_tool *const kiln_tools[] = {
  &tool_run_python,  &tool_run_shell,  &tool_list_sessions, &tool_close_session,
  &tool_upload_file, &tool_list_files, &tool_read_file,     &tool_install_packages,
};

/* S's tools: its own table, or kiln's.  */
static const struct mcp_tool *const *
tools_of(const struct mcp_server *s, size_t *n)
{
  if (s->tools) {
    *n = s->ntools;
    return s->tools;
  }
  *n = sizeof kiln_tools / sizeof kiln_tools[0];
  return kiln_tools;
}

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
  /* Parsed on first use and kept: every tools/call checks against it.
     Tools are few (a table or two per process), so a list will do.  */
  static struct parsed {
    const struct mcp_tool *tool;
    json_t *schema;
    struct parsed *next;
  } * parsed;
  for (struct parsed *p = parsed; p; p = p->next)
    if (p->tool == t)
      return p->schema;
  struct parsed *p = xmalloc(sizeof *p);
  *p = (struct parsed){ t, parse_schema(t->input), parsed };
  parsed = p;
  return p->schema;
}

json_t *
tools_list(const struct mcp_server *s, const char *packages)
{
  json_t *list = json_array();
  /* run_python says what a cell can import: the venv as read at start-up.  */
  cleanup_free char *run_description
      = packages && packages[0] ? xasprintf(
            "%s\n\nInstalled packages (pip has no network here: install_packages adds others): %s",
            tool_run_python.description, packages)
                                : xstrdup(tool_run_python.description);
  size_t ntools;
  const struct mcp_tool *const *tools = tools_of(s, &ntools);
  for (size_t i = 0; i < ntools; i++) {
    const struct mcp_tool *t = tools[i];
    unsigned h = t->hints;
    const char *description = t == &tool_run_python  ? run_description
                              : t == &tool_run_shell ? tools_run_shell_description()
                                                     : t->description;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:O, s:{s:s, s:b, s:b, s:b, s:b}}", "name", t->name, "title", t->title,
        "description", description, "inputSchema", tools_input_schema(t), "annotations", "title",
        t->title, "readOnlyHint", (h & MCP_TOOL_READ_ONLY) != 0, "destructiveHint",
        (h & MCP_TOOL_DESTRUCTIVE) != 0, "idempotentHint", (h & MCP_TOOL_IDEMPOTENT) != 0,
        "openWorldHint", (h & MCP_TOOL_OPEN_WORLD) != 0);
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
  *result = tools_list(c->server, c->server->front ? front_packages(c->server->front) : NULL);
  return MCP_ANSWERED;
}

static const struct mcp_tool *
find_tool(const struct mcp_server *s, json_t *name)
{
  size_t ntools;
  const struct mcp_tool *const *tools = tools_of(s, &ntools);
  for (size_t i = 0; i < ntools; i++)
    if (strlen(tools[i]->name) == json_string_length(name)
        && memcmp(tools[i]->name, json_string_value(name), json_string_length(name)) == 0)
      return tools[i];
  return NULL;
}

static int
unknown_tool(const struct mcp_server *s, json_t *name, kiln_error_t *err)
{
  size_t ntools;
  const struct mcp_tool *const *tools = tools_of(s, &ntools);
  struct buf names = { 0 };
  for (size_t i = 0; i < ntools; i++) {
    if (i)
      buf_append(&names, ", ", 2);
    buf_append(&names, tools[i]->name, strlen(tools[i]->name));
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
  const struct mcp_tool *t = find_tool(c->server, name);
  if (t == NULL)
    return unknown_tool(c->server, name, err);
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
