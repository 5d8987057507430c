/* The HTTP transport's MCP sessions: each holds one MCP connection, the
   POSTs waiting for their answers, and the SSE streams those answers
   and the progress before them travel on.  */
#define _GNU_SOURCE
#include "http_internal.h"
#include "log.h"
#include "owners.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- streams */

static void
wake(struct http_reader *r)
{
  if (r && r->suspended) {
    r->suspended = false;
    MHD_resume_connection(r->conn);
  }
}

/* Drops the oldest events past HTTP_STREAM_KEEP, never the last one (the
   answer) and never one a reader is part-way through.  */
static void
trim(struct http_stream *st)
{
  while (st->kept > HTTP_STREAM_KEEP && st->head && st->head != st->tail) {
    struct sse_event *e = st->head;
    if (st->reader && st->reader->off > 0 && st->reader->next_seq == e->seq)
      break;
    st->head = e->next;
    st->kept -= e->len;
    free(e);
  }
}

static void
push_text(struct http_stream *st, const char *data, const char *extra)
{
  uint64_t seq = st->next_seq++;
  cleanup_free char *text = xasprintf("id: %" PRIu64 "-%" PRIu64 "\n%sdata: %s\n\n", st->id, seq,
                                      extra ? extra : "", data);
  size_t len = strlen(text);
  struct sse_event *e = xmalloc(sizeof *e + len + 1);
  e->next = NULL;
  e->seq = seq;
  e->len = len;
  memcpy(e->text, text, len + 1);
  if (st->tail)
    st->tail->next = e;
  else
    st->head = e;
  st->tail = e;
  st->kept += len;
  trim(st);
  wake(st->reader);
}

/* Appends MSG (borrowed) to ST; FINAL ends the stream after it.  */
static void
push(struct http_stream *st, json_t *msg, bool final)
{
  if (st->ended)
    return;
  cleanup_free char *data = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
  if (data == NULL)
    return;
  push_text(st, data, NULL);
  if (final) {
    st->ended = true;
    wake(st->reader);
  }
}

static void
stream_free(struct http_stream *st)
{
  if (st->reader) {
    st->reader->stream = NULL;
    wake(st->reader);
  }
  while (st->head) {
    struct sse_event *e = st->head;
    st->head = e->next;
    free(e);
  }
  free(st);
}

/* Frees the oldest ended streams no one reads past HTTP_ENDED_KEPT.  */
static void
forget_ended(struct http_session *s)
{
  size_t ended = 0;
  for (struct http_stream **pp = &s->streams; *pp;) {
    struct http_stream *st = *pp;
    if (st->ended && st->reader == NULL && ++ended > HTTP_ENDED_KEPT) {
      *pp = st->next;
      stream_free(st);
    } else
      pp = &st->next;
  }
}

struct http_stream *
http_stream_new(struct http_session *s, bool standalone, bool prime)
{
  struct http_stream *st = xzalloc(sizeof *st);
  st->sess = s;
  st->id = ++s->next_stream;
  st->standalone = standalone;
  st->next = s->streams;
  s->streams = st;
  /* MCP 2025-11-25: an event with an id and no data first, so that a
     client cut off before the first real event can still resume.  */
  if (prime)
    push_text(st, "", "retry: 1000\n");
  return st;
}

struct http_stream *
http_stream_find(struct http_session *s, uint64_t id)
{
  for (struct http_stream *st = s->streams; st; st = st->next)
    if (st->id == id)
      return st;
  return NULL;
}

struct http_reader *
http_reader_attach(struct http_stream *st, struct MHD_Connection *c, uint64_t from_seq)
{
  /* A stream is read by one connection at a time: a reconnect takes it
     over, and the connection it replaces ends.  */
  if (st->reader) {
    st->reader->stream = NULL;
    wake(st->reader);
  }
  struct http_reader *r = xzalloc(sizeof *r);
  r->h = st->sess->h;
  r->stream = st;
  r->conn = c;
  r->next_seq = from_seq;
  st->reader = r;
  return r;
}

ssize_t
http_reader_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  struct http_reader *r = cls;
  struct http_stream *st = r->stream;
  if (st == NULL)
    return MHD_CONTENT_READER_END_OF_STREAM;
  size_t out = 0;
  static const char ping[] = ": keepalive\n\n";
  if (r->ping && r->off == 0 && max >= sizeof ping - 1) {
    memcpy(buf, ping, sizeof ping - 1);
    out = sizeof ping - 1;
    r->ping = false;
  }
  for (struct sse_event *e = st->head; e && out < max; e = e->next) {
    if (e->seq < r->next_seq)
      continue;
    if (e->seq > r->next_seq) {
      /* Dropped while the client was not reading: it gets what is kept.  */
      r->next_seq = e->seq;
      r->off = 0;
    }
    size_t n = e->len - r->off < max - out ? e->len - r->off : max - out;
    memcpy(buf + out, e->text + r->off, n);
    out += n;
    r->off += n;
    if (r->off < e->len)
      break;
    r->next_seq++;
    r->off = 0;
  }
  if (out > 0)
    return (ssize_t)out;
  if (st->ended && r->next_seq >= st->next_seq)
    return MHD_CONTENT_READER_END_OF_STREAM;
  r->suspended = true;
  MHD_suspend_connection(r->conn);
  return 0;
}

void
http_reader_free(void *cls)
{
  struct http_reader *r = cls;
  if (r->stream) {
    r->stream->reader = NULL;
    if (r->stream->ended)
      forget_ended(r->stream->sess);
  }
  free(r);
}

void
http_keepalive(struct mcp_http *h)
{
  for (struct http_session *s = h->sessions; s; s = s->next)
    for (struct http_stream *st = s->streams; st; st = st->next)
      if (st->reader && st->reader->suspended) {
        st->reader->ping = true;
        wake(st->reader);
      }
}

/* ----------------------------------------------------------------- routes */

struct http_route *
http_route_new(struct http_session *s, json_t *ids, json_t *tokens)
{
  struct http_route *r = xzalloc(sizeof *r);
  r->ids = ids;
  r->tokens = tokens;
  r->next = s->routes;
  s->routes = r;
  return r;
}

void
http_route_drop(struct http_session *s, struct http_route *r)
{
  for (struct http_route **pp = &s->routes; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  if (r->req)
    r->req->route = NULL;
  if (s->current == r)
    s->current = NULL;
  json_decref(r->ids);
  json_decref(r->tokens);
  free(r);
}

static bool
holds(json_t *list, json_t *v)
{
  size_t i;
  json_t *x;
  json_array_foreach(list, i, x) if (json_equal(x, v)) return true;
  return false;
}

static struct http_route *
route_for_answer(struct http_session *s, json_t *msg)
{
  for (struct http_route *r = s->routes; r; r = r->next) {
    if (json_is_array(msg)) {
      size_t i;
      json_t *m;
      json_array_foreach(msg, i, m) if (holds(r->ids, json_object_get(m, "id"))) return r;
    } else if (holds(r->ids, json_object_get(msg, "id")))
      return r;
  }
  return NULL;
}

static void
answer(struct http_session *s, struct http_route *r, json_t *msg)
{
  if (r->stream) {
    push(r->stream, msg, true);
    if (r->stream->reader == NULL)
      forget_ended(s);
  } else if (r->req) {
    struct http_req *q = r->req;
    q->answer = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    q->status = MHD_HTTP_OK;
    q->answered = true;
    if (q->suspended) {
      q->suspended = false;
      MHD_resume_connection(q->conn);
    }
  }
  /* A JSON answer whose client went away is dropped: the work it asked
     for was done all the same.  */
  http_route_drop(s, r);
}

static bool
is_answer(json_t *msg)
{
  json_t *m = json_is_array(msg) ? json_array_get(msg, 0) : msg;
  return json_object_get(m, "method") == NULL
         && (json_object_get(m, "result") || json_object_get(m, "error"));
}

/* The MCP connection's way out: an answer goes to the POST that asked
   (its stream or its waiting request), a progress notification to the
   stream of the request it reports on, anything else to the GET
   stream.  */
static void
on_send(void *ctx, json_t *msg)
{
  struct http_session *s = ctx;
  if (is_answer(msg)) {
    struct http_route *r = route_for_answer(s, msg);
    /* An answer with no id the POST's scan found (a parse error: id
       null) answers the POST being handled.  */
    if (r == NULL)
      r = s->current;
    if (r)
      answer(s, r, msg);
    else if (s->current_req && !s->current_req->answered) {
      s->current_req->answer = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
      s->current_req->answered = true;
    } else
      log_msg(LOG_DEBUG, "http: an answer for no waiting request dropped");
    return;
  }
  json_t *token = json_object_get(json_object_get(msg, "params"), "progressToken");
  if (token) {
    for (struct http_route *r = s->routes; r; r = r->next)
      if (holds(r->tokens, token)) {
        if (r->stream)
          push(r->stream, msg, false);
        return;
      }
  }
  if (s->standalone)
    push(s->standalone, msg, false);
}

/* --------------------------------------------------------------- sessions */

struct http_session *
http_session_new(struct mcp_http *h, const char *client)
{
  struct http_session *s = xzalloc(sizeof *s);
  s->h = h;
  /* A node's name first, so that a router can send every request of the
     session to the node that holds it (docker/nginx).  */
  const char *node = h->hc->node_name;
  size_t at = node ? (size_t)snprintf(s->id, sizeof s->id, "%s.", node) : 0;
  unsigned char raw[16];
  random_bytes(raw, sizeof raw);
  for (size_t i = 0; i < sizeof raw; i++)
    snprintf(s->id + at + 2 * i, 3, "%02x", raw[i]);
  snprintf(s->client, sizeof s->client, "%s", client);
  s->conn = mcp_conn_new(h->server, on_send, s);
  s->conn->owner = s->id;
  s->last_used = now_ns();
  s->next = h->sessions;
  h->sessions = s;
  h->nsessions++;
  return s;
}

struct http_session *
http_session_find(struct mcp_http *h, const char *id)
{
  for (struct http_session *s = h->sessions; s; s = s->next)
    if (strcmp(s->id, id) == 0)
      return s;
  return NULL;
}

size_t
http_sessions_of(struct mcp_http *h, const char *client)
{
  size_t n = 0;
  for (struct http_session *s = h->sessions; s; s = s->next)
    n += strcmp(s->client, client) == 0;
  return n;
}

void
http_session_end(struct http_session *s)
{
  struct mcp_http *h = s->h;
  for (struct http_session **pp = &h->sessions; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      h->nsessions--;
      break;
    }
  /* Requests still waiting are told, not left hanging.  */
  while (s->routes) {
    struct http_route *r = s->routes;
    if (r->req) {
      struct http_req *q = r->req;
      q->answer = xstrdup("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,"
                          "\"message\":\"the MCP session ended\"}}");
      q->status = MHD_HTTP_NOT_FOUND;
      q->answered = true;
      if (q->suspended) {
        q->suspended = false;
        MHD_resume_connection(q->conn);
      }
    }
    http_route_drop(s, r);
  }
  while (s->streams) {
    struct http_stream *st = s->streams;
    s->streams = st->next;
    stream_free(st);
  }
  mcp_conn_free(s->conn);
  mcp_owner_close_all(h->server, s->id);
  free(s);
}

void
http_sessions_expire(struct mcp_http *h, int64_t now)
{
  int64_t idle = (int64_t)(h->hc->session_idle_s * 1e9);
  for (struct http_session *s = h->sessions, *next; s; s = next) {
    next = s->next;
    if (s->routes || s->conn->pending || now - s->last_used < idle)
      continue;
    bool read = false;
    for (struct http_stream *st = s->streams; st && !read; st = st->next)
      read = st->reader != NULL;
    if (!read) {
      log_msg(LOG_INFO, "http: MCP session %.8s… ended after %.0f s unused", s->id,
              h->hc->session_idle_s);
      http_session_end(s);
    }
  }
}
