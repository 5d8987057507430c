/* A client's connection: its messages in, its replies out, and the
   requests it waits for.  Also the one place a kiln error becomes what a
   client reads (mcp_failure).  */
#define _GNU_SOURCE
#include "conn.h"
#include "jsonrpc.h"
#include "methods.h"
#include "shape.h"
#include "tools.h"
#include "utf8.h"
#include "util.h"

#include <string.h>

/* The longest method name an error message quotes.  */
#define SHOWN_NAME 100
/* The longest error text a tool result carries.  */
#define MAX_TOOL_ERROR 4096

/* The replies to a JSON-RPC batch, sent together as one array once the
   last request of the batch is answered.  */
struct mcp_batch {
  json_t *replies;
  size_t waiting; /* deferred requests not yet answered */
  bool sealed;    /* every message of the batch has been handled */
};

/* A request sent to the client, waiting for its answer.  */
struct mcp_outgoing {
  struct mcp_outgoing *next;
  int64_t id;
  mcp_reply_fn on_reply;
  void *ctx;
};

struct mcp_conn *
mcp_conn_new(struct mcp_server *s, mcp_send_fn send, void *ctx)
{
  struct mcp_conn *c = xzalloc(sizeof *c);
  c->server = s;
  c->send = send;
  c->ctx = ctx;
  c->version = MCP_LATEST;
  c->log_level = MCP_LOG_WARNING;
  c->next_in_server = s->conns;
  s->conns = c;
  return c;
}

/* Sends MSG (stolen).  */
static void
send_msg(struct mcp_conn *c, json_t *msg)
{
  if (!c->closing)
    c->send(c->ctx, msg);
  json_decref(msg);
}

/* Sends B's replies if the batch is done, and frees it.  */
static void
batch_check(struct mcp_conn *c, struct mcp_batch *b)
{
  if (!b->sealed || b->waiting > 0)
    return;
  /* A batch of notifications only is answered with nothing at all.  */
  if (json_array_size(b->replies) > 0)
    send_msg(c, b->replies);
  else
    json_decref(b->replies);
  free(b);
}

/* Sends MSG (stolen), the answer to a request of batch B (NULL: none).  */
static void
reply(struct mcp_conn *c, struct mcp_batch *b, json_t *msg)
{
  if (b)
    json_array_append_new(b->replies, msg);
  else
    send_msg(c, msg);
}

void
mcp_notify(struct mcp_conn *c, const char *method, json_t *params)
{
  json_t *msg = json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params", params);
  if (msg)
    send_msg(c, msg);
}

int64_t
mcp_request(struct mcp_conn *c, const char *method, json_t *params, mcp_reply_fn on_reply,
            void *ctx)
{
  struct mcp_outgoing *o = xzalloc(sizeof *o);
  o->id = ++c->last_request_id;
  o->on_reply = on_reply;
  o->ctx = ctx;
  o->next = c->outgoing;
  c->outgoing = o;
  json_t *msg = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)o->id,
                          "method", method, "params", params);
  if (msg)
    send_msg(c, msg);
  return o->id;
}

/* Unlinks and returns C's outgoing request ID, or NULL.  */
static struct mcp_outgoing *
take_outgoing(struct mcp_conn *c, int64_t id)
{
  for (struct mcp_outgoing **pp = &c->outgoing; *pp; pp = &(*pp)->next)
    if ((*pp)->id == id) {
      struct mcp_outgoing *o = *pp;
      *pp = o->next;
      return o;
    }
  return NULL;
}

void
mcp_request_drop(struct mcp_conn *c, int64_t id)
{
  free(take_outgoing(c, id));
}

/* A client's response: the answer to one of C's requests, if its id is
   one; anything else (an id kiln never sent, an answer sent twice) is
   ignored, as there is no one to tell.  */
static void
handle_response(struct mcp_conn *c, struct jrpc_msg *msg)
{
  if (!json_is_integer(msg->id))
    return;
  struct mcp_outgoing *o = take_outgoing(c, json_integer_value(msg->id));
  if (o == NULL)
    return;
  json_t *result = json_object_get(msg->root, "result");
  json_t *error = result ? NULL : json_object_get(msg->root, "error");
  if (result == NULL && error == NULL)
    error = json_pack("{s:i, s:s}", "code", JRPC_INVALID_REQUEST, "message",
                      "a response with neither result nor error");
  else
    json_incref(error);
  o->on_reply(o->ctx, result, error);
  json_decref(error);
  free(o);
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
  struct mcp_batch *b = p->batch;
  struct mcp_conn *c = p->conn;
  free(p);
  if (b) {
    b->waiting--;
    batch_check(c, b);
  }
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
  p->tool = fail_code == MCP_TOOL_ERROR;
  p->version = call->conn->version;
  p->batch = call->conn->batch;
  if (p->batch)
    p->batch->waiting++;
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
  if (p->tool)
    result = shape_tool_result(p->version, result);
  reply(p->conn, p->batch, jrpc_result(p->id, result));
  finish(p);
}

void
mcp_fail(struct mcp_pending *p, kiln_error_t err)
{
  reply(p->conn, p->batch, mcp_failure(p->id, p->fail_code, err));
  finish(p);
}

void
mcp_conn_cancel(struct mcp_conn *c, json_t *request_id)
{
  for (struct mcp_pending *p = c->pending; p; p = p->next)
    if (!p->starting && json_equal(p->id, request_id)) {
      /* Handle 0: work that is not the front's (kept by mcp_started (P,
         0)), stopped by P's release function alone.  */
      if (p->handle > 0)
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

/* The progress token of a request's params._meta (borrowed), or NULL.  */
static json_t *
progress_token(json_t *params)
{
  json_t *t = json_object_get(json_object_get(params, "_meta"), "progressToken");
  return json_is_string(t) || json_is_integer(t) ? t : NULL;
}

static void
handle_request(struct mcp_conn *c, struct jrpc_msg *msg)
{
  struct mcp_batch *b = c->batch;
  const struct mcp_method *m = mcp_method_find(c->server, msg->method, msg->method_len);
  if (m == NULL) {
    cleanup_free char *name = utf8_excerpt(msg->method, msg->method_len, SHOWN_NAME);
    cleanup_free char *text = xasprintf("method not found: %s", name);
    reply(c, b, jrpc_error(msg->id, JRPC_METHOD_NOT_FOUND, text, NULL));
    return;
  }
  if (!c->initialized && !m->before_initialize) {
    cleanup_free char *text = xasprintf(
        "%s before initialize: the client must send initialize (and wait for its answer) first",
        m->name);
    reply(c, b, jrpc_error(msg->id, JRPC_INVALID_REQUEST, text, NULL));
    return;
  }
  if (msg->params && !json_is_object(msg->params)) {
    reply(c, b, jrpc_error(msg->id, JRPC_INVALID_PARAMS, "params must be an object", NULL));
    return;
  }
  json_t *params = msg->params ? json_incref(msg->params) : json_object();
  struct mcp_call call
      = { .server = c->server, .conn = c, .id = msg->id, .progress_token = progress_token(params) };
  json_t *result = NULL;
  kiln_error_t err = NULL;
  int r = m->fn(&call, params, &result, &err);
  if (r == MCP_ANSWERED) {
    if (m->fn == tools_call_method)
      result = shape_tool_result(c->version, result);
    else if (m->fn == tools_list_method)
      result = shape_tools_list(c->version, result);
    reply(c, b, jrpc_result(msg->id, result));
  } else if (r != MCP_DEFERRED)
    reply(c, b, mcp_failure(msg->id, r, err));
  kiln_error_release(&err);
  json_decref(params);
}

/* Handles one parsed message.  */
static void
handle_msg(struct mcp_conn *c, struct jrpc_msg *msg)
{
  if (msg->kind == JRPC_REQUEST)
    handle_request(c, msg);
  else if (msg->kind == JRPC_NOTIFICATION) {
    /* Unknown notifications are ignored: they are never answered.  */
    const struct mcp_notification *n = mcp_notification_find(msg->method, msg->method_len);
    struct mcp_call call = { .server = c->server, .conn = c };
    if (n)
      n->fn(&call, json_is_object(msg->params) ? msg->params : NULL);
  } else if (msg->kind == JRPC_RESPONSE)
    handle_response(c, msg);
}

/* A batch: allowed by 2025-03-26 alone (earlier revisions never used
   them, later ones removed them).  Each message is handled as if it came
   alone; the answers go back together, as one array.  */
static void
handle_batch(struct mcp_conn *c, json_t *items)
{
  if (!c->initialized || c->version != MCP_2025_03_26) {
    cleanup_free char *m = c->initialized
                               ? xasprintf("JSON-RPC batches are not part of protocol version %s "
                                           "(only of 2025-03-26)",
                                           mcp_version_name(c->version))
                               : xstrdup("a JSON-RPC batch before initialize: initialize must "
                                         "come alone, and only 2025-03-26 allows batches");
    send_msg(c, jrpc_error(NULL, JRPC_INVALID_REQUEST, m, NULL));
    return;
  }
  if (json_array_size(items) == 0) {
    send_msg(c, jrpc_error(NULL, JRPC_INVALID_REQUEST, "an empty JSON-RPC batch", NULL));
    return;
  }
  struct mcp_batch *b = mcp_batch_begin(c);
  size_t i;
  json_t *item;
  json_array_foreach(items, i, item)
  {
    struct jrpc_msg msg;
    json_t *err_reply = NULL;
    if (jrpc_classify(json_incref(item), &msg, &err_reply) < 0) {
      if (err_reply)
        reply(c, b, err_reply);
      continue;
    }
    handle_msg(c, &msg);
    jrpc_msg_free(&msg);
  }
  mcp_batch_end(c, b);
}

struct mcp_batch *
mcp_batch_begin(struct mcp_conn *c)
{
  struct mcp_batch *b = xzalloc(sizeof *b);
  b->replies = json_array();
  c->batch = b;
  return b;
}

void
mcp_batch_end(struct mcp_conn *c, struct mcp_batch *b)
{
  c->batch = NULL;
  b->sealed = true;
  batch_check(c, b);
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
  if (msg.kind == JRPC_BATCH)
    handle_batch(c, msg.root);
  else
    handle_msg(c, &msg);
  jrpc_msg_free(&msg);
}

void
mcp_conn_log(struct mcp_server *s, enum mcp_log_level level, const char *text)
{
  for (struct mcp_conn *c = s->conns; c; c = c->next_in_server) {
    if (!c->initialized || level < c->log_level)
      continue;
    cleanup_free char *clean = utf8_excerpt(text, strlen(text), MAX_TOOL_ERROR);
    mcp_notify(c, "notifications/message",
               json_pack("{s:s, s:s, s:s}", "level", mcp_log_level_name(level), "logger", "kiln",
                         "data", clean));
  }
}

void
mcp_conn_free(struct mcp_conn *c)
{
  if (c == NULL)
    return;
  for (struct mcp_conn **pp = &c->server->conns; *pp; pp = &(*pp)->next_in_server)
    if (*pp == c) {
      *pp = c->next_in_server;
      break;
    }
  /* Batches still waiting are freed unsent as their requests go.  */
  c->closing = true;
  while (c->pending) {
    struct mcp_pending *p = c->pending;
    c->pending = p->next;
    if (p->handle > 0)
      front_cancel(c->server->front, p->handle);
    free_pending(p);
  }
  while (c->outgoing)
    mcp_request_drop(c, c->outgoing->id);
  free(c);
}
