/* install_packages: wheels installed for a session by the front's
   installer (kernel/front/install.c), outside the session's jail; its
   cells never get the network.  */
#define _GNU_SOURCE
#include "tools.h"
#include "conn.h"
#include "owners.h"
#include "utf8.h"
#include "util.h"

#include <string.h>

/* Of pip's output, what a failed install's reply shows: its end.  */
#define LOG_SHOWN 4000

static const char install_description[]
    = "Install Python packages (wheels) into a session, for its next cells to import; no restart "
      "is needed and the session keeps its variables. Give exact pins, e.g. "
      "[\"requests==2.32.3\"] (name==version; a name alone or other version specifiers also "
      "work, but only pinned installs are cached for reuse by other sessions). Dependencies come "
      "along. The session itself has no network: kiln downloads wheels from its package index "
      "outside the sandbox. Only wheels are installed, never source distributions (no package "
      "code runs at install time), and the preinstalled packages keep their versions: a "
      "package that needs other versions of them fails with the reason. A session keeps one "
      "version of each package. pip does not work from a cell or run_shell: use this tool.";

static const char install_input[]
    = "{"
      "\"type\":\"object\","
      "\"properties\":{"
      "\"session_id\":{\"type\":\"string\",\"description\":\"The session to install into (from "
      "an earlier reply).\"},"
      "\"packages\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1,"
      "\"maxItems\":32,\"description\":\"Requirements, e.g. [\\\"tabulate==0.9.0\\\"].\"}"
      "},"
      "\"required\":[\"session_id\",\"packages\"],"
      "\"additionalProperties\":false"
      "}";

static const char install_output[]
    = "{"
      "\"type\":\"object\","
      "\"properties\":{"
      "\"session_id\":{\"type\":\"string\"},"
      "\"installed\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"description\":"
      "\"\\\"name version\\\" of each distribution installed, dependencies included.\"},"
      "\"cached\":{\"type\":\"boolean\",\"description\":\"Linked from an earlier install of the "
      "same pins, without running pip.\"},"
      "\"duration_ms\":{\"type\":\"number\"}"
      "},"
      "\"required\":[\"session_id\",\"installed\",\"cached\",\"duration_ms\"]"
      "}";

struct install_pending {
  struct mcp_pending base;
};

static json_t *
failure(const struct install_reply *r)
{
  struct buf b = { 0 };
  cleanup_free char *head = xasprintf("install_packages failed: %s", r->message);
  buf_append(&b, head, strlen(head));
  if (r->log && r->log[0]) {
    size_t len = strlen(r->log);
    size_t start = len > LOG_SHOWN ? len - LOG_SHOWN : 0;
    while (start < len && ((unsigned char)r->log[start] & 0xC0) == 0x80)
      start++;
    static const char mid[] = "\n\npip's output (its end):\n";
    buf_append(&b, mid, sizeof mid - 1);
    buf_append(&b, r->log + start, len - start);
  }
  size_t n;
  cleanup_free char *text = utf8_sanitize((const char *)b.data, b.len, &n);
  buf_free(&b);
  json_t *result = json_pack("{s:[{s:s, s:s%}], s:b}", "content", "type", "text", "text", text, n,
                             "isError", 1);
  return result;
}

static json_t *
success(const struct install_reply *r)
{
  json_t *list = json_array();
  for (const char *p = r->installed; *p;) {
    const char *comma = strstr(p, ", ");
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    json_array_append_new(list, json_stringn(p, n));
    p += n + (comma ? 2 : 0);
  }
  cleanup_free char *text = xasprintf(
      "Installed into session %s%s: %s. Import them in the next cell.", r->session_id,
      r->cached ? " (from the cache)" : "", r->installed[0] ? r->installed : "nothing new");
  return json_pack("{s:[{s:s, s:s}], s:{s:s, s:o, s:b, s:f}, s:b}", "content", "type", "text",
                   "text", text, "structuredContent", "session_id", r->session_id, "installed",
                   list, "cached", r->cached, "duration_ms", r->duration_ms, "isError", 0);
}

static void
on_installed(void *ctx, const struct install_reply *r)
{
  struct install_pending *p = ctx;
  mcp_answer(&p->base, r->ok ? success(r) : failure(r));
}

static int
install_packages(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  (void)result;
  const char *sid;
  if (tools_arg_name(args, "session_id", &sid, err) < 0
      || mcp_owner_check(c->conn, sid, false, err) < 0)
    return -1;
  json_t *list = json_object_get(args, "packages");
  size_t n = json_array_size(list);
  if (n == 0 || n > 32)
    return kiln_error_make(err, 0, "argument 'packages' must list 1 to 32 requirements");
  const char **specs = xzalloc(n * sizeof *specs);
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(list, i);
    /* A NUL inside would cut the requirement short.  */
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
      free(specs);
      return kiln_error_make(err, 0, "argument 'packages' must be a list of strings");
    }
    specs[i] = json_string_value(v);
  }
  struct install_pending *p = mcp_defer(c, sizeof *p, MCP_TOOL_ERROR);
  int64_t h = front_install_packages(c->server->front, sid, specs, n, on_installed, p, err);
  free(specs);
  return mcp_started(&p->base, h);
}

const struct mcp_tool tool_install_packages = {
  "install_packages", "Install Python packages", install_description, install_input,
  install_output,     install_packages,          MCP_TOOL_OPEN_WORLD,
};
