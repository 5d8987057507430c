/* resources/list, resources/read and resources/templates/list.  A URI a
   client sends is parsed and decoded by uri.h, and every URI sent back
   is rebuilt from its decoded parts, so it is always the canonical,
   encoded spelling.  */
#define _GNU_SOURCE
#include "resources.h"
#include "conn.h"
#include "tools/files.h"
#include "uri.h"
#include "owners.h"
#include "util.h"

#include <errno.h>
#include <string.h>

/* resources/list pages.  */
#define RESOURCES_PER_PAGE 100
/* The longest URI an error message quotes.  */
#define SHOWN_URI 200

/* Makes ERR say "resource not found: URI", with WHY (ERR's message, if
   any) in parentheses when it tells the client something about the
   resource rather than about the URI's shape.  URI is what the client
   asked for, cut for display.  */
static void
not_found(kiln_error_t *err, const char *uri, size_t len, bool why)
{
  cleanup_free char *shown = utf8_excerpt(uri, len, SHOWN_URI);
  cleanup_free char *msg = why && err && *err
                               ? xasprintf("resource not found: %s (%s)", shown, (*err)->msg)
                               : xasprintf("resource not found: %s", shown);
  kiln_error_make(err, 0, "%s", msg);
}

/* Whether NAME is spelled as the front names artifacts; any other name
   is not looked up at all.  */
static bool
artifact_name_ok(const char *name, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-", name[i])
        || name[i] == '\0')
      return false;
  return len > 0 && strspn(name, ".") != len;
}

struct listing {
  const struct mcp_conn *conn;
  json_t *items;
  size_t skip, seen;
  bool more;
};

static void
list_one(void *ctx, const char *sid, const char *name, const char *mime, size_t size, uint32_t w,
         uint32_t h)
{
  struct listing *l = ctx;
  if (!mcp_owner_may(l->conn, sid))
    return;
  size_t i = l->seen++;
  if (i < l->skip)
    return;
  if (json_array_size(l->items) == RESOURCES_PER_PAGE) {
    l->more = true;
    return;
  }
  cleanup_free char *uri = uri_artifact(sid, name);
  cleanup_free char *desc = xasprintf("%ux%u image from session %s", w, h, sid);
  json_array_append_new(l->items,
                        json_pack("{s:s, s:s, s:s, s:s, s:I}", "uri", uri, "name", name,
                                  "description", desc, "mimeType", mime, "size", (json_int_t)size));
}

int
resources_list_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  json_t *cursor = json_object_get(params, "cursor");
  struct listing l = { .conn = c->conn };
  if (cursor) {
    const char *s = json_string_value(cursor);
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (s == NULL || end == s || *end || errno || s[0] == '-'
        || (size_t)(end - s) != json_string_length(cursor)) {
      kiln_error_make(err, 0, "invalid cursor");
      return JRPC_INVALID_PARAMS;
    }
    l.skip = (size_t)v;
  }
  l.items = json_array();
  front_each_artifact(c->server->front, list_one, &l);
  *result = json_pack("{s:o}", "resources", l.items);
  if (*result && l.more) {
    char next[32];
    snprintf(next, sizeof next, "%zu", l.skip + RESOURCES_PER_PAGE);
    json_object_set_new(*result, "nextCursor", json_string(next));
  }
  return MCP_ANSWERED;
}

/* Reads an artifact: both parts of its name are looked up in the
   front's tables, never used as a path as given.  */
static int
read_artifact(struct mcp_call *c, const struct kiln_uri *u, json_t **result, kiln_error_t *err)
{
  const char *mime = NULL;
  size_t len = 0;
  cleanup_free uint8_t *data
      = front_artifact_read(c->server->front, u->session_id, u->name, &mime, &len, err);
  if (data == NULL)
    return MCP_RESOURCE_NOT_FOUND;
  cleanup_free char *b64 = base64_encode(data, len);
  cleanup_free char *uri = uri_artifact(u->session_id, u->name);
  *result
      = json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType", mime, "blob", b64);
  return MCP_ANSWERED;
}

/* Reads a cell's kept output, as text.  */
static int
read_cell_output(struct mcp_call *c, const struct kiln_uri *u, json_t **result, kiln_error_t *err)
{
  uint64_t cell;
  int stream;
  if (uri_cell_parts(u, &cell, &stream) < 0)
    return MCP_RESOURCE_NOT_FOUND;
  size_t len;
  cleanup_free char *text
      = front_cell_output_read(c->server->front, u->session_id, cell, stream, &len, err);
  if (text == NULL)
    return MCP_RESOURCE_NOT_FOUND;
  cleanup_free char *uri = uri_cell_output(u->session_id, cell, stream);
  size_t clean_len;
  cleanup_free char *clean = utf8_sanitize(text, len, &clean_len);
  *result = json_pack("{s:[{s:s, s:s, s:s%}]}", "contents", "uri", uri, "mimeType", "text/plain",
                      "text", clean, clean_len);
  return MCP_ANSWERED;
}

/* A page of history: at most this many cells, and no more code than
   this in all (a cell past it starts the next page; the first is always
   shown, whole).  */
#define HISTORY_PER_PAGE   20
#define HISTORY_PAGE_BYTES (1u << 20)

struct history_page {
  json_t *cells;
  size_t bytes;
  int64_t last_id; /* of the last cell shown */
  bool full;
};

static void
history_one(void *ctx, const struct history_entry *e)
{
  struct history_page *p = ctx;
  if (p->full || (json_array_size(p->cells) > 0 && p->bytes + e->code_len > HISTORY_PAGE_BYTES)) {
    p->full = true;
    return;
  }
  p->bytes += e->code_len;
  p->last_id = e->id;
  size_t clean_len;
  cleanup_free char *code = utf8_sanitize(e->code, e->code_len, &clean_len);
  json_t *artifacts = json_array();
  for (const char *a = e->artifacts; *a;) {
    size_t n = strcspn(a, ",");
    json_array_append_new(artifacts, json_stringn(a, n));
    a += n + (a[n] == ',');
  }
  json_array_append_new(
      p->cells,
      json_pack("{s:I, s:s, s:s%, s:I, s:f, s:s, s:o, s:I, s:I, s:o}", "execution_count",
                (json_int_t)e->execution_count, "kind", e->kind, "code", code, clean_len,
                "started_ms", (json_int_t)e->started_ms, "duration_ms", e->duration_ms, "status",
                e->status, "error_type", e->error_type ? json_string(e->error_type) : json_null(),
                "stdout_bytes", (json_int_t)e->stdout_bytes, "stderr_bytes",
                (json_int_t)e->stderr_bytes, "artifacts", artifacts));
}

/* Reads a page of a session's history, newest first, as JSON; "next"
   is the URI of the page after it, or null.  */
static int
read_history(struct mcp_call *c, const struct kiln_uri *u, json_t **result, kiln_error_t *err)
{
  int64_t before = 0;
  if (u->name_len) {
    char *end;
    errno = 0;
    long long v = strtoll(u->name, &end, 10);
    if (*end || errno || v <= 0 || u->name[0] == '+' || u->name[0] == '0')
      return MCP_RESOURCE_NOT_FOUND;
    before = v;
  }
  struct history_page p = { .cells = json_array() };
  int64_t next = front_history(c->server->front, u->session_id, before, HISTORY_PER_PAGE,
                               history_one, &p, err);
  if (next < 0) {
    json_decref(p.cells);
    return MCP_RESOURCE_NOT_FOUND;
  }
  if (p.full)
    next = p.last_id;
  cleanup_free char *uri = uri_history(u->session_id, before);
  cleanup_free char *next_uri = next > 0 ? uri_history(u->session_id, next) : NULL;
  json_t *page = json_pack("{s:s, s:o, s:o}", "session_id", u->session_id, "cells", p.cells, "next",
                           next_uri ? json_string(next_uri) : json_null());
  cleanup_free char *text = json_dumps(page, JSON_COMPACT);
  json_decref(page);
  *result = json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType",
                      "application/json", "text", text);
  return MCP_ANSWERED;
}

int
resources_read_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  json_t *uri = json_object_get(params, "uri");
  if (!json_is_string(uri)) {
    kiln_error_make(err, 0, "resources/read needs a string \"uri\"");
    return JRPC_INVALID_PARAMS;
  }
  const char *s = json_string_value(uri);
  size_t n = json_string_length(uri);
  struct kiln_uri u;
  if (uri_parse(s, n, &u, err) < 0) {
    /* A badly encoded name is worth explaining; a URI of another shape
       simply names nothing kiln has.  */
    not_found(err, s, n, (*err)->status == EILSEQ);
    return MCP_RESOURCE_NOT_FOUND;
  }
  /* Another client's session is as absent as one that never was.  */
  if (mcp_owner_check(c->conn, u.session_id, false, err) < 0) {
    if (u.kind != URI_FILE)
      not_found(err, s, n, true);
    return MCP_RESOURCE_NOT_FOUND;
  }
  int r;
  if (u.kind == URI_FILE)
    /* The front's and the worker's refusals say what is wrong with the
       path as they are.  */
    r = files_read_resource(c, u.session_id, u.name, u.name_len, err);
  else if (u.kind == URI_CELL) {
    r = read_cell_output(c, &u, result, err);
    if (r < 0)
      not_found(err, s, n, err && *err);
  } else if (u.kind == URI_HISTORY) {
    r = read_history(c, &u, result, err);
    if (r < 0)
      not_found(err, s, n, err && *err);
  } else if (!artifact_name_ok(u.name, u.name_len)) {
    not_found(err, s, n, false);
    r = MCP_RESOURCE_NOT_FOUND;
  } else {
    r = read_artifact(c, &u, result, err);
    if (r < 0)
      not_found(err, s, n, true);
  }
  uri_clear(&u);
  return r;
}

int
resources_templates_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  *result = json_pack(
      "{s:[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]}",
      "resourceTemplates", "uriTemplate", URI_PREFIX "{session_id}/artifacts/{name}", "name",
      "artifact", "description",
      "An image a cell produced (a matplotlib figure, a PIL image or a display()ed object), "
      "full size",
      "mimeType", "image/png", "uriTemplate", URI_PREFIX "{session_id}/files/{path}", "name",
      "file", "description",
      "A file in the session's working directory (/work); the path percent-encoded", "uriTemplate",
      URI_PREFIX "{session_id}/cells/{cell}/{stream}", "name", "cell output", "description",
      "The whole stdout or stderr (stream) of a cell, as kept within --max-output, when a reply "
      "showed only part of it (the last 32 cells of a session)",
      "mimeType", "text/plain", "uriTemplate", URI_PREFIX "{session_id}/history", "name", "history",
      "description",
      "Every cell and shell command the session ran, newest first, with its code, status, error "
      "type, duration and output sizes, as JSON; \"next\" is the URI of the next page",
      "mimeType", "application/json");
  return MCP_ANSWERED;
}
