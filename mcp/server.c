#define _GNU_SOURCE
#include "server.h"
#include "jsonrpc.h"
#include "tools.h"
#include "paths.h"
#include "../kernel/util.h"

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
  return json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion", version,
                   "capabilities", "tools", "listChanged", 0, "serverInfo", "name", "kiln", "title",
                   "kiln Python sandbox", "version", KILN_VERSION, "instructions", instructions);
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
