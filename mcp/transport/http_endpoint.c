/* The MCP endpoint: POST carries messages to the session's MCP
   connection and waits for their answers (as JSON, or as an SSE stream
   with the progress before them), GET opens or resumes a stream, DELETE
   ends the session.  */
#define _GNU_SOURCE
#include "http_internal.h"
#include "jsonrpc.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------ the MCP endpoint */

/* The session a request names, or NULL after answering it (400 without
   Mcp-Session-Id, 404 for one that is unknown, ended, or another
   client's: the same answer, so that an id reveals nothing).  */
static struct http_session *
session_of(struct mcp_http *h, struct MHD_Connection *c, const char *client, enum MHD_Result *rc)
{
  const char *id = http_header(c, "Mcp-Session-Id");
  if (id == NULL) {
    *rc = http_refuse(h, c, MHD_HTTP_BAD_REQUEST, NULL, JRPC_INVALID_REQUEST,
                      "Bad Request: the Mcp-Session-Id header is required (initialize first)");
    return NULL;
  }
  struct http_session *s = http_session_find(h, id);
  if (s == NULL || strcmp(s->client, client) != 0) {
    *rc = http_refuse(h, c, MHD_HTTP_NOT_FOUND, NULL, -32001, "Session not found");
    return NULL;
  }
  s->last_used = now_ns();
  return s;
}

bool
http_version_ok(const char *v)
{
  static const char *const known[] = { "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05" };
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(v, known[i]) == 0)
      return true;
  return false;
}

/* Collects the ids and progress tokens of the requests in MSG (one
   message or a batch).  Returns whether it holds an initialize.  */
static bool
scan_requests(json_t *msg, json_t *ids, json_t *tokens)
{
  bool init = false;
  size_t n = json_is_array(msg) ? json_array_size(msg) : 1;
  for (size_t i = 0; i < n; i++) {
    json_t *m = json_is_array(msg) ? json_array_get(msg, i) : msg;
    json_t *method = json_object_get(m, "method"), *id = json_object_get(m, "id");
    if (!json_is_string(method) || id == NULL)
      continue;
    json_array_append(ids, id);
    init |= strcmp(json_string_value(method), "initialize") == 0;
    json_t *token
        = json_object_get(json_object_get(json_object_get(m, "params"), "_meta"), "progressToken");
    if (token)
      json_array_append(tokens, token);
  }
  return init;
}

static enum MHD_Result
sse_response(struct mcp_http *h, struct MHD_Connection *c, struct http_stream *st, uint64_t from,
             const char *session_id)
{
  struct http_reader *r = http_reader_attach(st, c, from);
  struct MHD_Response *resp = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, 16384, http_reader_read, r, http_reader_free);
  if (resp == NULL) {
    st->reader = NULL;
    free(r);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-transform");
  if (session_id)
    MHD_add_response_header(resp, "Mcp-Session-Id", session_id);
  enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  http_count_status(h, MHD_HTTP_OK);
  return ok;
}

enum MHD_Result
http_answer_json(struct mcp_http *h, struct http_req *q)
{
  const char *sid = q->sess ? q->sess->id : NULL;
  return http_respond(h, q->conn, q->status ? q->status : MHD_HTTP_OK, "application/json",
                      q->answer, strlen(q->answer), "Mcp-Session-Id", sid, NULL);
}

enum MHD_Result
http_mcp_post(struct mcp_http *h, struct http_req *q, const char *client)
{
  struct MHD_Connection *c = q->conn;
  if (q->too_big) {
    json_t *id = jrpc_scan_id(q->body.data ? (const char *)q->body.data : "", q->body.len);
    enum MHD_Result rc
        = http_refuse(h, c, MHD_HTTP_CONTENT_TOO_LARGE, id, JRPC_INVALID_REQUEST,
                      "the message is over %zu bytes (--max-message)", h->cfg->max_message);
    json_decref(id);
    return rc;
  }
  /* An empty body has no buffer at all.  */
  const char *body = q->body.data ? (const char *)q->body.data : "";
  json_t *msg = json_loadb(body, q->body.len, JSON_ALLOW_NUL, NULL);
  json_t *ids = json_array(), *tokens = json_array();
  bool init = msg && scan_requests(msg, ids, tokens);
  json_decref(msg);
  enum MHD_Result rc = MHD_YES;
  struct http_session *s;
  bool fresh = false;
  if (http_header(c, "Mcp-Session-Id") == NULL && init) {
    if (http_sessions_of(h, client) >= h->hc->max_client_sessions) {
      json_decref(ids);
      json_decref(tokens);
      return http_refuse(h, c, MHD_HTTP_TOO_MANY_REQUESTS, NULL, -32000,
                         "this client holds %zu MCP sessions already (--http-max-client-sessions); "
                         "end one with DELETE",
                         h->hc->max_client_sessions);
    }
    s = http_session_new(h, client);
    fresh = true;
  } else if ((s = session_of(h, c, client, &rc)) == NULL) {
    json_decref(ids);
    json_decref(tokens);
    return rc;
  }
  q->sess = s;
  struct http_route *route = NULL;
  if (json_array_size(ids) > 0) {
    route = http_route_new(s, ids, tokens);
    bool sse = !fresh && json_array_size(tokens) > 0
               && http_accepts(http_header(c, "Accept"), "text/event-stream");
    if (sse)
      route->stream = http_stream_new(s, false, s->conn->version >= MCP_2025_11_25);
    else {
      route->req = q;
      q->route = route;
    }
  } else {
    json_decref(ids);
    json_decref(tokens);
  }
  struct http_stream *stream = route ? route->stream : NULL;
  s->current = route;
  s->current_req = q;
  mcp_conn_handle(s->conn, body, q->body.len, 0);
  s->current = NULL;
  s->current_req = NULL;
  if (fresh && !s->conn->initialized) {
    /* A refused initialize makes no session.  */
    q->sess = NULL;
    http_session_end(s);
    return q->answered ? http_answer_json(h, q)
                       : http_refuse(h, c, MHD_HTTP_BAD_REQUEST, NULL, JRPC_INVALID_REQUEST,
                                     "initialize was refused");
  }
  if (fresh)
    log_msg(LOG_INFO, "http: MCP session %.8s… opened by %s", s->id,
            client[0] && strchr(client, '.') == NULL && strchr(client, ':') == NULL
                ? "a token holder"
                : client);
  if (stream)
    return sse_response(h, c, stream, 0, NULL);
  if (route == NULL) {
    /* Notifications and answers: accepted, nothing to say, unless the
       connection answered the body as malformed.  */
    if (q->answered) {
      q->status = MHD_HTTP_BAD_REQUEST;
      return http_answer_json(h, q);
    }
    return http_respond(h, c, MHD_HTTP_ACCEPTED, NULL, "", 0, NULL);
  }
  if (q->answered)
    return http_answer_json(h, q);
  /* The answer comes later, when the front is done: the connection sleeps
     until then (http_session.c wakes it).  */
  q->suspended = true;
  MHD_suspend_connection(c);
  return MHD_YES;
}

enum MHD_Result
http_mcp_get(struct mcp_http *h, struct MHD_Connection *c, const char *client)
{
  enum MHD_Result rc;
  if (!http_accepts(http_header(c, "Accept"), "text/event-stream"))
    return http_refuse(h, c, MHD_HTTP_NOT_ACCEPTABLE, NULL, JRPC_INVALID_REQUEST,
                       "Not Acceptable: GET opens an SSE stream; accept text/event-stream");
  struct http_session *s = session_of(h, c, client, &rc);
  if (s == NULL)
    return rc;
  const char *last = http_header(c, "Last-Event-ID");
  uint64_t sid, seq;
  int used = 0;
  if (last && sscanf(last, "%" SCNu64 "-%" SCNu64 "%n", &sid, &seq, &used) == 2
      && (size_t)used == strlen(last)) {
    struct http_stream *st = http_stream_find(s, sid);
    if (st)
      return sse_response(h, c, st, seq + 1, NULL);
    /* Forgotten (or never given): a plain GET stream, which is all there
       is to resume.  */
  }
  if (s->standalone && s->standalone->reader)
    return http_refuse(h, c, MHD_HTTP_CONFLICT, NULL, JRPC_INVALID_REQUEST,
                       "Conflict: this MCP session already has a GET stream open");
  if (s->standalone == NULL)
    s->standalone = http_stream_new(s, true, s->conn->version >= MCP_2025_11_25);
  uint64_t from = s->standalone->next_seq == 1 ? 0 : s->standalone->next_seq;
  return sse_response(h, c, s->standalone, from, NULL);
}

enum MHD_Result
http_mcp_delete(struct mcp_http *h, struct MHD_Connection *c, const char *client)
{
  enum MHD_Result rc;
  struct http_session *s = session_of(h, c, client, &rc);
  if (s == NULL)
    return rc;
  log_msg(LOG_INFO, "http: MCP session %.8s… ended by its client", s->id);
  http_session_end(s);
  return http_respond(h, c, MHD_HTTP_OK, NULL, "", 0, NULL);
}
