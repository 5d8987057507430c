#define _GNU_SOURCE
#include "server.h"
#include "jsonrpc.h"
#include "tools.h"
#include "pngenc.h"
#include "paths.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <string.h>

/* Newest first; the first is offered to clients that ask for a version
   kiln does not know.  */
static const char *const protocol_versions[] = { "2025-06-18", "2025-03-26", "2024-11-05", NULL };

static const char instructions[] = "kiln runs Python in sandboxed, persistent sessions. Call "
                                   "run_python without session_id to start a session, "
                                   "then pass the returned session_id to keep variables between "
                                   "calls. numpy, pandas, matplotlib and PIL are "
                                   "preloaded.";

/* A tools/call waiting for its cell.  */
struct pending {
  struct pending *next;
  struct mcp_server *server;
  json_t *id; /* owned */
  int64_t handle;
};

struct mcp_server {
  const struct kiln_config *cfg;
  struct front *front;
  mcp_send_fn send;
  void *ctx;
  bool initialized;
  struct pending *pending;
};

struct mcp_server *
mcp_server_new(const struct kiln_config *cfg, struct front *front, mcp_send_fn send, void *ctx)
{
  struct mcp_server *s = xzalloc(sizeof *s);
  s->cfg = cfg;
  s->front = front;
  s->send = send;
  s->ctx = ctx;
  return s;
}

static void
reply(struct mcp_server *s, json_t *msg)
{
  s->send(s->ctx, msg);
  json_decref(msg);
}

static void
pending_remove(struct mcp_server *s, struct pending *p)
{
  for (struct pending **pp = &s->pending; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  json_decref(p->id);
  free(p);
}

static void
on_cell_reply(void *ctx, const struct cell_reply *r)
{
  struct pending *p = ctx;
  struct mcp_server *s = p->server;
  reply(s, jrpc_result(p->id, tools_cell_result(r)));
  pending_remove(s, p);
}

static json_t *
call_run_python(struct mcp_server *s, json_t *id, json_t *args, bool *deferred)
{
  const char *code, *session_id;
  size_t len;
  double timeout;
  kiln_error_t err = NULL;
  if (tools_run_python_args(args, &code, &len, &session_id, &timeout, &err) < 0)
    goto refuse;
  struct pending *p = xzalloc(sizeof *p);
  p->server = s;
  p->id = json_incref(id);
  p->next = s->pending;
  s->pending = p;
  int64_t h = front_run_cell(s->front, session_id, code, len, timeout, on_cell_reply, p, &err);
  if (h < 0) {
    pending_remove(s, p);
    goto refuse;
  }
  /* The callback may already have run (and freed P) if the cell failed
     at once; only record the handle while P is still pending.  */
  for (struct pending *q = s->pending; q; q = q->next)
    if (q == p)
      p->handle = h;
  *deferred = true;
  return NULL;

refuse:;
  json_t *res = tools_error_result(err->msg);
  kiln_error_release(&err);
  return res;
}

/* ---------------------------------------------------------------- file tools */

/* Bytes a read or an upload may move at once.  */
#define MAX_FILE_BYTES (8u << 20)

enum file_reply_kind { FR_UPLOAD, FR_LIST, FR_READ, FR_RESOURCE };

struct file_pending {
  struct pending base; /* first: the pending list holds these too */
  enum file_reply_kind kind;
  char *path;
  char *uri;
};

static const char *
sniff_image(const uint8_t *d, size_t n)
{
  if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
    return "image/png";
  if (n >= 3 && memcmp(d, "\xff\xd8\xff", 3) == 0)
    return "image/jpeg";
  if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
    return "image/gif";
  if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
    return "image/webp";
  return NULL;
}

/* Whether D is text worth showing as text: valid UTF-8 without NUL.  */
static bool
is_text(const uint8_t *d, size_t n)
{
  if (memchr(d, '\0', n))
    return false;
  size_t clean;
  cleanup_free char *s = utf8_sanitize((const char *)d, n, &clean);
  return clean == n && memcmp(s, d, n) == 0;
}

static json_t *
listing_json(const struct file_reply *r, json_t **text_out)
{
  json_t *files = json_array();
  struct buf text = { 0 };
  for (size_t i = 0; i < r->nentries; i++) {
    const struct file_entry *e = &r->entries[i];
    time_t secs = (time_t)(e->mtime_ns / 1000000000);
    struct tm tm;
    char when[32];
    gmtime_r(&secs, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *type = e->kind == 'f'   ? "file"
                       : e->kind == 'd' ? "directory"
                       : e->kind == 'l' ? "symlink"
                                        : "other";
    json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:s}", "path", e->path, "type", type,
                                           "size", (json_int_t)e->size, "modified", when));
    cleanup_free char *line
        = xasprintf("%s%s  %llu bytes  %s\n", e->path, e->kind == 'd' ? "/" : "",
                    (unsigned long long)e->size, when);
    buf_append(&text, line, strlen(line));
  }
  if (r->truncated) {
    static const char more[]
        = "(the listing stops here: it reached its limit of entries, bytes or depth)\n";
    buf_append(&text, more, strlen(more));
  }
  buf_append(&text, "", 1);
  *text_out = json_string(text.len > 1 ? (const char *)text.data : "(no files)\n");
  buf_free(&text);
  return files;
}

static void
on_file_reply(void *ctx, const struct file_reply *r)
{
  struct file_pending *p = ctx;
  struct mcp_server *s = p->base.server;
  json_t *res;
  if (r->status != 0) {
    cleanup_free char *msg = xasprintf("%s", r->message ? r->message : strerror(r->status));
    if (p->kind == FR_RESOURCE)
      res = NULL, reply(s, jrpc_error(p->base.id, -32002, msg, NULL));
    else
      res = tools_error_result(msg);
  } else if (p->kind == FR_UPLOAD) {
    cleanup_free char *uri = xasprintf("kiln://sessions/%s/files/%s", r->session_id, p->path);
    cleanup_free char *text = xasprintf("Wrote /work/%s.", p->path);
    res = json_pack("{s:[{s:s, s:s}], s:{s:s, s:s, s:s}}", "content", "type", "text", "text", text,
                    "structuredContent", "session_id", r->session_id, "path", p->path, "uri", uri);
  } else if (p->kind == FR_LIST) {
    json_t *text;
    json_t *files = listing_json(r, &text);
    res = json_pack("{s:[{s:s, s:o}], s:{s:s, s:s, s:o}}", "content", "type", "text", "text", text,
                    "structuredContent", "session_id", r->session_id, "path", p->path, "files",
                    files);
  } else {
    const char *image = sniff_image(r->data, r->len);
    uint32_t w, h;
    /* A PNG is sent as an image only when its header holds up.  */
    if (image && strcmp(image, "image/png") == 0 && !cap_png_check(r->data, r->len, &w, &h))
      image = NULL;
    cleanup_free char *uri = xasprintf("kiln://sessions/%s/files/%s", r->session_id, p->path);
    cleanup_free char *b64 = NULL;
    json_t *block;
    if (image || !is_text(r->data, r->len)) {
      b64 = base64_encode(r->data, r->len);
      if (p->kind == FR_RESOURCE)
        block = json_pack("{s:s, s:s, s:s}", "uri", uri, "mimeType",
                          image ? image : "application/octet-stream", "blob", b64);
      else if (image)
        block = json_pack("{s:s, s:s, s:s}", "type", "image", "data", b64, "mimeType", image);
      else
        block = json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "resource", "resource", "uri", uri,
                          "mimeType", "application/octet-stream", "blob", b64);
    } else if (p->kind == FR_RESOURCE)
      block = json_pack("{s:s, s:s, s:s%}", "uri", uri, "mimeType", "text/plain", "text",
                        (const char *)r->data, r->len);
    else
      block = json_pack("{s:s, s:s%}", "type", "text", "text", (const char *)r->data, r->len);
    if (p->kind == FR_RESOURCE)
      res = json_pack("{s:[o]}", "contents", block);
    else
      res = json_pack("{s:[o], s:{s:s, s:s, s:I, s:s}}", "content", block, "structuredContent",
                      "session_id", r->session_id, "path", p->path, "size", (json_int_t)r->len,
                      "mime",
                      image                      ? image
                      : is_text(r->data, r->len) ? "text/plain"
                                                 : "application/octet-stream");
  }
  if (res)
    reply(s, jrpc_result(p->base.id, res));
  free(p->path);
  free(p->uri);
  pending_remove(s, &p->base);
}

/* Starts a file operation answered later by on_file_reply; returns NULL
   with *DEFERRED set, or an error result.  */
static json_t *
start_file_op(struct mcp_server *s, json_t *id, enum file_reply_kind kind, enum front_file_op op,
              const char *sid, const char *path, size_t plen, const uint8_t *data, size_t len)
{
  struct file_pending *p = xzalloc(sizeof *p);
  p->base.server = s;
  p->base.id = json_incref(id);
  p->base.next = s->pending;
  s->pending = &p->base;
  p->kind = kind;
  p->path = xstrndup(path, plen);
  kiln_error_t err = NULL;
  int64_t h = front_file_op(s->front, sid, op, path, plen, data, len, MAX_FILE_BYTES, on_file_reply,
                            p, &err);
  if (h < 0) {
    json_t *res = kind == FR_RESOURCE ? NULL : tools_error_result(err->msg);
    if (kind == FR_RESOURCE)
      reply(s, jrpc_error(id, -32002, err->msg, NULL));
    kiln_error_release(&err);
    free(p->path);
    pending_remove(s, &p->base);
    return res;
  }
  for (struct pending *q = s->pending; q; q = q->next)
    if (q == &p->base)
      p->base.handle = h;
  return NULL;
}

static json_t *
call_file_tool(struct mcp_server *s, json_t *id, const char *name, json_t *args, bool *deferred)
{
  json_t *sid = json_object_get(args, "session_id"), *path = json_object_get(args, "path");
  if (!json_is_object(args) || !json_is_string(sid)
      || strlen(json_string_value(sid)) != json_string_length(sid))
    return tools_error_result(
        "argument 'session_id' must be a string: the session whose /work to use");
  if (path != NULL && !json_is_string(path))
    return tools_error_result("argument 'path' must be a string, relative to /work");
  const char *known[] = { "session_id", "path", "content", "encoding", NULL };
  const char *key;
  json_t *v;
  json_object_foreach(args, key, v)
  {
    bool ok = false;
    for (const char **k = known; *k; k++)
      ok |= strcmp(key, *k) == 0 && (strcmp(name, "upload_file") == 0 || k - known < 2);
    if (!ok) {
      cleanup_free char *msg = xasprintf("unknown argument '%s'", key);
      return tools_error_result(msg);
    }
  }
  const char *p = path ? json_string_value(path) : "";
  size_t plen = path ? json_string_length(path) : 0;
  json_t *res = NULL;
  if (strcmp(name, "list_files") == 0)
    res = start_file_op(s, id, FR_LIST, FRONT_FILE_LIST, json_string_value(sid), p, plen, NULL, 0);
  else if (path == NULL)
    return tools_error_result("missing required argument 'path'");
  else if (strcmp(name, "read_file") == 0)
    res = start_file_op(s, id, FR_READ, FRONT_FILE_READ, json_string_value(sid), p, plen, NULL, 0);
  else {
    json_t *content = json_object_get(args, "content"), *enc = json_object_get(args, "encoding");
    if (!json_is_string(content))
      return tools_error_result(
          "argument 'content' must be a string (text, or base64 with encoding base64)");
    if (enc
        && (!json_is_string(enc)
            || (strcmp(json_string_value(enc), "text")
                && strcmp(json_string_value(enc), "base64"))))
      return tools_error_result("argument 'encoding' must be \"text\" or \"base64\"");
    bool b64 = enc && strcmp(json_string_value(enc), "base64") == 0;
    size_t len = json_string_length(content);
    cleanup_free uint8_t *bytes = b64 ? base64_decode(json_string_value(content), len, &len) : NULL;
    if (b64 && bytes == NULL)
      return tools_error_result("argument 'content' is not valid base64");
    if (len > MAX_FILE_BYTES) {
      cleanup_free char *msg
          = xasprintf("the file is %zu bytes, over the %u-byte upload limit", len, MAX_FILE_BYTES);
      return tools_error_result(msg);
    }
    res = start_file_op(s, id, FR_UPLOAD, FRONT_FILE_WRITE, json_string_value(sid), p, plen,
                        b64 ? bytes : (const uint8_t *)json_string_value(content), len);
  }
  *deferred = res == NULL;
  return res;
}

static json_t *
call_tool(struct mcp_server *s, json_t *id, json_t *params, bool *deferred, int *code,
          char **message)
{
  const char *name = json_string_value(json_object_get(params, "name"));
  json_t *args = json_object_get(params, "arguments");
  kiln_error_t err = NULL;
  if (name == NULL) {
    *code = JRPC_INVALID_PARAMS;
    *message = xstrdup("tools/call needs a string \"name\"");
    return NULL;
  }
  if (args == NULL)
    args = json_object();
  else
    json_incref(args);
  json_t *res = NULL;
  if (strcmp(name, "run_python") == 0)
    res = call_run_python(s, id, args, deferred);
  else if (strcmp(name, "list_sessions") == 0) {
    if (!json_is_object(args) || json_object_size(args) != 0)
      res = tools_error_result("list_sessions takes no arguments");
    else {
      size_t n;
      struct session_info *v = front_list_sessions(s->front, &n);
      res = tools_sessions_result(v, n);
      free(v);
    }
  } else if (strcmp(name, "close_session") == 0) {
    const char *sid;
    if (tools_session_id_arg(args, &sid, &err) < 0 || front_close_session(s->front, sid, &err) < 0)
      res = tools_error_result(err->msg);
    else {
      cleanup_free char *text = xasprintf("Session %s closed.", sid);
      res = json_pack("{s:[{s:s, s:s}], s:{s:s, s:b}}", "content", "type", "text", "text", text,
                      "structuredContent", "session_id", sid, "closed", 1);
    }
    kiln_error_release(&err);
  } else if (strcmp(name, "upload_file") == 0 || strcmp(name, "list_files") == 0
             || strcmp(name, "read_file") == 0)
    res = call_file_tool(s, id, name, args, deferred);
  else {
    *code = JRPC_INVALID_PARAMS;
    *message = xasprintf("unknown tool '%s' (kiln offers run_python, list_sessions, close_session, "
                         "upload_file, list_files, read_file)",
                         name);
  }
  json_decref(args);
  return res;
}

static json_t *
initialize(struct mcp_server *s, json_t *params)
{
  const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
  const char *version = protocol_versions[0];
  for (const char *const *v = protocol_versions; asked && *v; v++)
    if (strcmp(asked, *v) == 0)
      version = *v;
  s->initialized = true;
  return json_pack("{s:s, s:{s:{s:b}, s:{s:b, s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion",
                   version, "capabilities", "tools", "listChanged", 0, "resources", "subscribe", 0,
                   "listChanged", 0, "serverInfo", "name", "kiln", "title", "kiln Python sandbox",
                   "version", KILN_VERSION, "instructions", instructions);
}

/* ---------------------------------------------------------------- resources */

#define ARTIFACT_URI_PREFIX "kiln://sessions/"
/* resources/list pages.  */
#define RESOURCES_PER_PAGE 100

struct listing {
  json_t *items;
  size_t skip, seen;
  bool more;
};

static void
list_one(void *ctx, const char *sid, const char *name, const char *mime, size_t size, uint32_t w,
         uint32_t h)
{
  struct listing *l = ctx;
  size_t i = l->seen++;
  if (i < l->skip)
    return;
  if (json_array_size(l->items) == RESOURCES_PER_PAGE) {
    l->more = true;
    return;
  }
  cleanup_free char *uri = xasprintf(ARTIFACT_URI_PREFIX "%s/artifacts/%s", sid, name);
  cleanup_free char *desc = xasprintf("%ux%u image from session %s", w, h, sid);
  json_array_append_new(l->items,
                        json_pack("{s:s, s:s, s:s, s:s, s:I}", "uri", uri, "name", name,
                                  "description", desc, "mimeType", mime, "size", (json_int_t)size));
}

static json_t *
resources_list(struct mcp_server *s, json_t *params, int *code, char **message)
{
  const char *cursor = json_string_value(json_object_get(params, "cursor"));
  struct listing l = { .items = json_array() };
  if (cursor) {
    char *end;
    unsigned long v = strtoul(cursor, &end, 10);
    if (*end || end == cursor) {
      json_decref(l.items);
      *code = JRPC_INVALID_PARAMS;
      *message = xstrdup("invalid cursor");
      return NULL;
    }
    l.skip = v;
  }
  front_each_artifact(s->front, list_one, &l);
  json_t *res = json_pack("{s:o}", "resources", l.items);
  if (l.more) {
    char next[32];
    snprintf(next, sizeof next, "%zu", l.skip + RESOURCES_PER_PAGE);
    json_object_set_new(res, "nextCursor", json_string(next));
  }
  return res;
}

static json_t *
resources_read(struct mcp_server *s, json_t *params, int *code, char **message, json_t **req_id,
               bool *deferred)
{
  const char *uri = json_string_value(json_object_get(params, "uri"));
  *code = JRPC_INVALID_PARAMS;
  if (uri == NULL) {
    *message = xstrdup("resources/read needs a string \"uri\"");
    return NULL;
  }
  /* kiln://sessions/<id>/files/<path>: read through the session's worker.  */
  char fsid[64];
  int fn = 0;
  if (strncmp(uri, ARTIFACT_URI_PREFIX, strlen(ARTIFACT_URI_PREFIX)) == 0
      && sscanf(uri + strlen(ARTIFACT_URI_PREFIX), "%63[0-9a-f]/files/%n", fsid, &fn) == 1
      && fn > 0) {
    const char *path = uri + strlen(ARTIFACT_URI_PREFIX) + fn;
    *deferred = true;
    json_t *id = *req_id;
    json_t *res
        = start_file_op(s, id, FR_RESOURCE, FRONT_FILE_READ, fsid, path, strlen(path), NULL, 0);
    (void)res;
    return NULL;
  }
  /* kiln://sessions/<id>/artifacts/<name>: both parts are looked up in
     the front's tables, never used as paths as given.  */
  char sid[64], name[64];
  int n = 0;
  if (strncmp(uri, ARTIFACT_URI_PREFIX, strlen(ARTIFACT_URI_PREFIX)) != 0
      || sscanf(uri + strlen(ARTIFACT_URI_PREFIX), "%63[0-9a-f]/artifacts/%63[A-Za-z0-9.-]%n", sid,
                name, &n)
             != 2
      || uri[strlen(ARTIFACT_URI_PREFIX) + (size_t)n] != '\0') {
    *code = -32002;
    *message = xasprintf("resource not found: %s", uri);
    return NULL;
  }
  kiln_error_t err = NULL;
  const char *mime = NULL;
  size_t len = 0;
  cleanup_free uint8_t *data = front_artifact_read(s->front, sid, name, &mime, &len, &err);
  if (data == NULL) {
    *code = -32002;
    *message = xasprintf("resource not found: %s (%s)", uri, err->msg);
    kiln_error_release(&err);
    return NULL;
  }
  cleanup_free char *b64 = base64_encode(data, len);
  return json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType", mime, "blob", b64);
}

static json_t *
resource_templates(void)
{
  return json_pack(
      "{s:[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s}]}", "resourceTemplates", "uriTemplate",
      ARTIFACT_URI_PREFIX "{session_id}/artifacts/{name}", "name", "artifact", "description",
      "An image a cell produced (a matplotlib figure, a PIL image or a display()ed object), "
      "full size",
      "mimeType", "image/png", "uriTemplate", ARTIFACT_URI_PREFIX "{session_id}/files/{path}",
      "name", "file", "description", "A file in the session's working directory (/work)");
}

static void
cancelled(struct mcp_server *s, json_t *params)
{
  json_t *rid = json_object_get(params, "requestId");
  if (rid == NULL)
    return;
  for (struct pending *p = s->pending; p; p = p->next)
    if (json_equal(p->id, rid)) {
      /* The spec says a cancelled request gets no response.  */
      front_cancel(s->front, p->handle);
      pending_remove(s, p);
      return;
    }
}

void
mcp_server_handle(struct mcp_server *s, const char *text, size_t len, size_t too_long)
{
  if (too_long) {
    cleanup_free char *m
        = xasprintf("message of %zu bytes is over the %zu-byte limit (--max-message)", too_long,
                    s->cfg->max_message);
    reply(s, jrpc_error(NULL, JRPC_INVALID_REQUEST, m, NULL));
    return;
  }
  struct jrpc_msg msg;
  json_t *err_reply = NULL;
  if (jrpc_parse(text, len, &msg, &err_reply) < 0) {
    if (err_reply)
      reply(s, err_reply);
    return;
  }
  const char *m = msg.method;
  json_t *params = msg.params && json_is_object(msg.params) ? msg.params : NULL;
  if (msg.kind == JRPC_RESPONSE)
    ; /* kiln sends no requests, so there is nothing to match */
  else if (msg.kind == JRPC_NOTIFICATION) {
    if (strcmp(m, "notifications/cancelled") == 0 && params)
      cancelled(s, params);
    /* initialized and anything unknown: nothing to do, never a reply.  */
  } else if (msg.params && !params)
    reply(s, jrpc_error(msg.id, JRPC_INVALID_PARAMS, "params must be an object", NULL));
  else if (strcmp(m, "initialize") == 0)
    reply(s, jrpc_result(msg.id, initialize(s, params)));
  else if (strcmp(m, "ping") == 0)
    reply(s, jrpc_result(msg.id, json_object()));
  else if (strcmp(m, "tools/list") == 0)
    reply(s, jrpc_result(msg.id, tools_list()));
  else if (strcmp(m, "resources/list") == 0 || strcmp(m, "resources/read") == 0) {
    int code = 0;
    bool deferred = false;
    char *message = NULL;
    json_t *empty = params ? NULL : json_object();
    json_t *res = m[10] == 'l' ? resources_list(s, params ? params : empty, &code, &message)
                               : resources_read(s, params ? params : empty, &code, &message,
                                                &msg.id, &deferred);
    json_decref(empty);
    if (deferred)
      ;
    else if (res)
      reply(s, jrpc_result(msg.id, res));
    else
      reply(s, jrpc_error(msg.id, code, message, NULL));
    free(message);
  } else if (strcmp(m, "resources/templates/list") == 0)
    reply(s, jrpc_result(msg.id, resource_templates()));
  else if (strcmp(m, "tools/call") == 0) {
    bool deferred = false;
    int code = 0;
    char *message = NULL;
    json_t *res = params ? call_tool(s, msg.id, params, &deferred, &code, &message) : NULL;
    if (params == NULL)
      reply(s, jrpc_error(msg.id, JRPC_INVALID_PARAMS, "tools/call needs params with a tool name",
                          NULL));
    else if (message)
      reply(s, jrpc_error(msg.id, code, message, NULL));
    else if (!deferred)
      reply(s, jrpc_result(msg.id, res));
    free(message);
  } else {
    cleanup_free char *text2 = xasprintf("method not found: %s", m);
    reply(s, jrpc_error(msg.id, JRPC_METHOD_NOT_FOUND, text2, NULL));
  }
  jrpc_msg_free(&msg);
}

void
mcp_server_free(struct mcp_server *s)
{
  if (s == NULL)
    return;
  while (s->pending) {
    struct pending *p = s->pending;
    s->pending = p->next;
    json_decref(p->id);
    free(p);
  }
  free(s);
}
