#define _GNU_SOURCE
#include "server.h"
#include "jsonrpc.h"
#include "tools.h"
#include "paths.h"
#include "../kernel/util.h"

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
  } else {
    *code = JRPC_INVALID_PARAMS;
    *message = xasprintf("unknown tool '%s' (kiln offers run_python, list_sessions, close_session)",
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
/* resources/read refuses artifacts larger than this.  */
#define MAX_RESOURCE_BYTES (32u << 20)

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
resources_read(struct mcp_server *s, json_t *params, int *code, char **message)
{
  const char *uri = json_string_value(json_object_get(params, "uri"));
  *code = JRPC_INVALID_PARAMS;
  if (uri == NULL) {
    *message = xstrdup("resources/read needs a string \"uri\"");
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
  cleanup_free char *path = front_artifact_path(s->front, sid, name, &mime, &err);
  if (path == NULL) {
    *code = -32002;
    *message = xasprintf("resource not found: %s (%s)", uri, err->msg);
    kiln_error_release(&err);
    return NULL;
  }
  cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)
      || st.st_size > (off_t)MAX_RESOURCE_BYTES) {
    *code = JRPC_INTERNAL_ERROR;
    *message = xasprintf("cannot read %s", uri);
    return NULL;
  }
  cleanup_free uint8_t *data = xmalloc((size_t)st.st_size + 1);
  if (read_full(fd, data, (size_t)st.st_size) < 0) {
    *code = JRPC_INTERNAL_ERROR;
    *message = xasprintf("cannot read %s: %s", uri, strerror(errno));
    return NULL;
  }
  cleanup_free char *b64 = base64_encode(data, (size_t)st.st_size);
  return json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType", mime, "blob", b64);
}

static json_t *
resource_templates(void)
{
  return json_pack(
      "{s:[{s:s, s:s, s:s, s:s}]}", "resourceTemplates", "uriTemplate",
      ARTIFACT_URI_PREFIX "{session_id}/artifacts/{name}", "name", "artifact", "description",
      "An image a cell produced (a matplotlib figure, a PIL image or a display()ed object), "
      "full size",
      "mimeType", "image/png");
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
    char *message = NULL;
    json_t *empty = params ? NULL : json_object();
    json_t *res = m[10] == 'l' ? resources_list(s, params ? params : empty, &code, &message)
                               : resources_read(s, params ? params : empty, &code, &message);
    json_decref(empty);
    if (res)
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
