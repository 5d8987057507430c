/* A client's connection: its messages in, its replies out, and the
   requests it waits for.  Also the one place a kiln error becomes what a
   client reads (mcp_failure).  */
#define _GNU_SOURCE
#include "conn.h"
#include "jsonrpc.h"
#include "methods.h"
#include "utf8.h"
#include "util.h"

#include <string.h>

/* The longest method name an error message quotes.  */
#define SHOWN_NAME 100
/* The longest error text a tool result carries.  */
#define MAX_TOOL_ERROR 4096

struct mcp_conn *
mcp_conn_new(struct mcp_server *s, mcp_send_fn send, void *ctx)
{
  struct mcp_conn *c = xzalloc(sizeof *c);
  c->server = s;
  c->send = send;
  c->ctx = ctx;
  return c;
}

/* Sends MSG (stolen).  */
static void
send_msg(struct mcp_conn *c, json_t *msg)
{
  c->send(c->ctx, msg);
  json_decref(msg);
}

json_t *
mcp_tool_error(const char *message)
{
  cleanup_free char *text = utf8_excerpt(message, strlen(message), MAX_TOOL_ERROR);
  json_t *block = json_object();
  json_object_set_new(block, "type", json_string("text"));
  json_object_set_new(block, "text", json_string(text));
  json_t *content = json_array();
  json_array_append_new(content, block);
  json_t *r = json_object();
  json_object_set_new(r, "content", content);
  json_object_set_new(r, "isError", json_true());
  return r;
}

json_t *
mcp_failure(json_t *id, int code, kiln_error_t err)
{
  const char *message = err && err->msg ? err->msg : "internal error";
  if (code == MCP_TOOL_ERROR)
    return jrpc_result(id, mcp_tool_error(message));
  return jrpc_error(id, jrpc_is_code(code) ? code : JRPC_INTERNAL_ERROR, message, NULL);
}

/* ---------------------------------------------------------------- pending */

static void
check_idle(struct mcp_conn *c)
{
  if (c->idle && c->pending == NULL) {
    void (*fn)(void *) = c->idle;
    c->idle = NULL;
    fn(c->idle_ctx);
  }
}

static void
unlink_pending(struct mcp_pending *p)
{
  for (struct mcp_pending **pp = &p->conn->pending; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
}

static void
free_pending(struct mcp_pending *p)
{
  if (p->release)
    p->release(p);
  json_decref(p->id);
  free(p);
}

/* P has been answered: forget it, unless its handler is still starting
   it and holds the pointer (mcp_started frees it then).  */
static void
finish(struct mcp_pending *p)
{
  if (p->starting) {
    p->answered = true;
    return;
  }
  struct mcp_conn *c = p->conn;
  unlink_pending(p);
  free_pending(p);
  check_idle(c);
}

void *
mcp_defer(struct mcp_call *call, size_t size, int fail_code)
{
  struct mcp_pending *p = xzalloc(size < sizeof *p ? sizeof *p : size);
  p->conn = call->conn;
  p->id = json_incref(call->id);
  p->fail_code = fail_code;
  p->starting = true;
  p->next = call->conn->pending;
  call->conn->pending = p;
  return p;
}

int
mcp_started(struct mcp_pending *p, int64_t handle)
{
  struct mcp_conn *c = p->conn;
  p->starting = false;
  if (handle < 0) {
    int code = p->fail_code;
    unlink_pending(p);
    free_pending(p);
    check_idle(c);
    return code;
  }
  p->handle = handle;
  if (p->answered) {
    unlink_pending(p);
    free_pending(p);
    check_idle(c);
  }
  return MCP_DEFERRED;
}

void
mcp_answer(struct mcp_pending *p, json_t *result)
{
  send_msg(p->conn, jrpc_result(p->id, result));
  finish(p);
}

void
mcp_fail(struct mcp_pending *p, kiln_error_t err)
{
  send_msg(p->conn, mcp_failure(p->id, p->fail_code, err));
  finish(p);
}

void
mcp_conn_cancel(struct mcp_conn *c, json_t *request_id)
{
  for (struct mcp_pending *p = c->pending; p; p = p->next)
    if (!p->starting && json_equal(p->id, request_id)) {
      front_cancel(c->server->front, p->handle);
      unlink_pending(p);
      free_pending(p);
      check_idle(c);
      return;
    }
}

void
mcp_conn_when_idle(struct mcp_conn *c, void (*fn)(void *ctx), void *ctx)
{
  c->idle = fn;
  c->idle_ctx = ctx;
  check_idle(c);
}

/* ---------------------------------------------------------------- messages */

static void
handle_request(struct mcp_conn *c, struct jrpc_msg *msg)
{
  const struct mcp_method *m = mcp_method_find(msg->method, msg->method_len);
  if (m == NULL) {
    cleanup_free char *name = utf8_excerpt(msg->method, msg->method_len, SHOWN_NAME);
    cleanup_free char *text = xasprintf("method not found: %s", name);
    send_msg(c, jrpc_error(msg->id, JRPC_METHOD_NOT_FOUND, text, NULL));
    return;
  }
  if (!c->initialized && !m->before_initialize) {
    cleanup_free char *text
        = xasprintf("%s before initialize: the client must send initialize first", m->name);
    send_msg(c, jrpc_error(msg->id, JRPC_INVALID_REQUEST, text, NULL));
    return;
  }
  if (msg->params && !json_is_object(msg->params)) {
    send_msg(c, jrpc_error(msg->id, JRPC_INVALID_PARAMS, "params must be an object", NULL));
    return;
  }
  struct mcp_call call = { .server = c->server, .conn = c, .id = msg->id };
  json_t *params = msg->params ? json_incref(msg->params) : json_object();
  json_t *result = NULL;
  kiln_error_t err = NULL;
  int r = m->fn(&call, params, &result, &err);
  if (r == MCP_ANSWERED)
    send_msg(c, jrpc_result(msg->id, result));
  else if (r != MCP_DEFERRED)
    send_msg(c, mcp_failure(msg->id, r, err));
  kiln_error_release(&err);
  json_decref(params);
}

void
mcp_conn_handle(struct mcp_conn *c, const char *text, size_t len, size_t too_long)
{
  if (too_long) {
    cleanup_free char *m
        = xasprintf("message of %zu bytes is over the %zu-byte limit (--max-message)", too_long,
                    c->server->cfg->max_message);
    json_t *id = jrpc_scan_id(text, len);
    send_msg(c, jrpc_error(id, JRPC_INVALID_REQUEST, m, NULL));
    json_decref(id);
    return;
  }
  struct jrpc_msg msg;
  json_t *err_reply = NULL;
  if (jrpc_parse(text, len, &msg, &err_reply) < 0) {
    if (err_reply)
      send_msg(c, err_reply);
    return;
  }
  if (msg.kind == JRPC_REQUEST)
    handle_request(c, &msg);
  else if (msg.kind == JRPC_NOTIFICATION) {
    /* Unknown notifications are ignored: they are never answered.  */
    const struct mcp_notification *n = mcp_notification_find(msg.method, msg.method_len);
    struct mcp_call call = { .server = c->server, .conn = c };
    if (n)
      n->fn(&call, json_is_object(msg.params) ? msg.params : NULL);
  }
  /* A response: kiln sends no requests, so there is nothing to match.  */
  jrpc_msg_free(&msg);
}

void
mcp_conn_free(struct mcp_conn *c)
{
  if (c == NULL)
    return;
  while (c->pending) {
    struct mcp_pending *p = c->pending;
    c->pending = p->next;
    if (p->handle > 0)
      front_cancel(c->server->front, p->handle);
    free_pending(p);
  }
  free(c);
}
