/* The HTTP side of the transport: libmicrohttpd on kiln's loop, the
   checks every request passes (connection count, Host, Origin, token,
   size), the MCP endpoint's POST, GET and DELETE, and the operations
   endpoints.  */
#define _GNU_SOURCE
#include "http.h"
#include "http_internal.h"
#include "jsonrpc.h"
#include "log.h"
#include "origin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/* What a request is, decided from its method and path.  */
enum {
  K_MCP_POST = 1,
  K_WAITING,
  K_DONE, /* answered already; the body, if any, is discarded */
};

/* The first bytes of a body over --max-message, kept to find its id.  */
#define KEPT_PREFIX 65536

/* One open connection: when its current request began, so that one that
   trickles in its headers or body (slowloris) is cut off.  */
struct http_link {
  struct http_link *next, *prev;
  int fd;
  int64_t since;  /* the start of what it is receiving, or of its idleness */
  bool receiving; /* between the first byte of a request and its end */
  bool busy;      /* a request has been read and is being answered */
};

static void
count_status(struct mcp_http *h, unsigned code)
{
  mcp_http_count(&h->status, (int)code);
}

/* Queues a response of STATUS with BODY (copied) of type CTYPE; NAME and
   VALUE pairs (NULL-terminated) are extra headers.  */
static enum MHD_Result
respond(struct mcp_http *h, struct MHD_Connection *c, unsigned status, const char *ctype,
        const char *body, size_t len, ...)
{
  struct MHD_Response *r
      = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (r == NULL)
    return MHD_NO;
  if (ctype)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  va_list ap;
  va_start(ap, len);
  for (const char *name; (name = va_arg(ap, const char *)) != NULL;) {
    const char *value = va_arg(ap, const char *);
    if (value)
      MHD_add_response_header(r, name, value);
  }
  va_end(ap);
  enum MHD_Result ok = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  count_status(h, status);
  return ok;
}

/* A JSON-RPC error as the body of an HTTP error, so that an MCP client
   shows the reason; ID (borrowed) or null.  */
static enum MHD_Result refuse(struct mcp_http *h, struct MHD_Connection *c, unsigned status,
                              json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static enum MHD_Result
refuse(struct mcp_http *h, struct MHD_Connection *c, unsigned status, json_t *id, int code,
       const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *e = jrpc_error(id ? id : json_null(), code, msg, NULL);
  cleanup_free char *text = json_dumps(e, JSON_COMPACT);
  json_decref(e);
  return respond(h, c, status, "application/json", text, strlen(text), NULL);
}

static const char *
header(struct MHD_Connection *c, const char *name)
{
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Whether the Accept header ACCEPT names TYPE, its family's wildcard or
   everything; an absent header accepts everything.  */
static bool
accepts(const char *accept, const char *type)
{
  if (accept == NULL)
    return true;
  size_t family = strcspn(type, "/");
  for (const char *p = accept; *p;) {
    while (*p == ' ' || *p == ',')
      p++;
    size_t n = strcspn(p, ",;");
    while (n > 0 && p[n - 1] == ' ')
      n--;
    if ((n == strlen(type) && strncasecmp(p, type, n) == 0) || (n == 3 && memcmp(p, "*/*", 3) == 0)
        || (n == family + 2 && strncasecmp(p, type, family) == 0 && p[family] == '/'
            && p[family + 1] == '*'))
      return true;
    p += strcspn(p, ",");
  }
  return false;
}

static struct http_link *
link_of(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *i
      = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return i ? i->socket_context : NULL;
}

static void
peer_name(struct MHD_Connection *c, char *out, size_t n)
{
  const union MHD_ConnectionInfo *i
      = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  out[0] = '\0';
  if (i == NULL || i->client_addr == NULL)
    return;
  const struct sockaddr *sa = i->client_addr;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
              (socklen_t)n);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
              (socklen_t)n);
}

/* ------------------------------------------------------ the MCP endpoint */

/* The session a request names, or NULL after answering it (400 without
   Mcp-Session-Id, 404 for one that is unknown, ended, or another
   client's: the same answer, so that an id reveals nothing).  */
static struct http_session *
session_of(struct mcp_http *h, struct MHD_Connection *c, const char *client, enum MHD_Result *rc)
{
  const char *id = header(c, "Mcp-Session-Id");
  if (id == NULL) {
    *rc = refuse(h, c, MHD_HTTP_BAD_REQUEST, NULL, JRPC_INVALID_REQUEST,
                 "Bad Request: the Mcp-Session-Id header is required (initialize first)");
    return NULL;
  }
  struct http_session *s = http_session_find(h, id);
  if (s == NULL || strcmp(s->client, client) != 0) {
    *rc = refuse(h, c, MHD_HTTP_NOT_FOUND, NULL, -32001, "Session not found");
    return NULL;
  }
  s->last_used = now_ns();
  return s;
}

static bool
version_ok(const char *v)
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
  count_status(h, MHD_HTTP_OK);
  return ok;
}

static enum MHD_Result
answer_json(struct mcp_http *h, struct http_req *q)
{
  const char *sid = q->sess ? q->sess->id : NULL;
  return respond(h, q->conn, q->status ? q->status : MHD_HTTP_OK, "application/json", q->answer,
                 strlen(q->answer), "Mcp-Session-Id", sid, NULL);
}

static enum MHD_Result
mcp_post(struct mcp_http *h, struct http_req *q, const char *client)
{
  struct MHD_Connection *c = q->conn;
  if (q->too_big) {
    json_t *id = jrpc_scan_id(q->body.data ? (const char *)q->body.data : "", q->body.len);
    enum MHD_Result rc
        = refuse(h, c, MHD_HTTP_CONTENT_TOO_LARGE, id, JRPC_INVALID_REQUEST,
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
  if (header(c, "Mcp-Session-Id") == NULL && init) {
    if (http_sessions_of(h, client) >= h->hc->max_client_sessions) {
      json_decref(ids);
      json_decref(tokens);
      return refuse(h, c, MHD_HTTP_TOO_MANY_REQUESTS, NULL, -32000,
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
               && accepts(header(c, "Accept"), "text/event-stream");
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
    return q->answered ? answer_json(h, q)
                       : refuse(h, c, MHD_HTTP_BAD_REQUEST, NULL, JRPC_INVALID_REQUEST,
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
      return answer_json(h, q);
    }
    return respond(h, c, MHD_HTTP_ACCEPTED, NULL, "", 0, NULL);
  }
  if (q->answered)
    return answer_json(h, q);
  /* The answer comes later, when the front is done: the connection sleeps
     until then (http_session.c wakes it).  */
  q->suspended = true;
  MHD_suspend_connection(c);
  return MHD_YES;
}

static enum MHD_Result
mcp_get(struct mcp_http *h, struct MHD_Connection *c, const char *client)
{
  enum MHD_Result rc;
  if (!accepts(header(c, "Accept"), "text/event-stream"))
    return refuse(h, c, MHD_HTTP_NOT_ACCEPTABLE, NULL, JRPC_INVALID_REQUEST,
                  "Not Acceptable: GET opens an SSE stream; accept text/event-stream");
  struct http_session *s = session_of(h, c, client, &rc);
  if (s == NULL)
    return rc;
  const char *last = header(c, "Last-Event-ID");
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
    return refuse(h, c, MHD_HTTP_CONFLICT, NULL, JRPC_INVALID_REQUEST,
                  "Conflict: this MCP session already has a GET stream open");
  if (s->standalone == NULL)
    s->standalone = http_stream_new(s, true, s->conn->version >= MCP_2025_11_25);
  uint64_t from = s->standalone->next_seq == 1 ? 0 : s->standalone->next_seq;
  return sse_response(h, c, s->standalone, from, NULL);
}

static enum MHD_Result
mcp_delete(struct mcp_http *h, struct MHD_Connection *c, const char *client)
{
  enum MHD_Result rc;
  struct http_session *s = session_of(h, c, client, &rc);
  if (s == NULL)
    return rc;
  log_msg(LOG_INFO, "http: MCP session %.8s… ended by its client", s->id);
  http_session_end(s);
  return respond(h, c, MHD_HTTP_OK, NULL, "", 0, NULL);
}

/* ----------------------------------------------------- the other paths */

static enum MHD_Result
unauthorized(struct mcp_http *h, struct MHD_Connection *c, bool presented)
{
  /* The document's URL as the client reached kiln (its Host passed the
     checks), so that it is one the client can fetch.  */
  const char *host = header(c, "Host");
  cleanup_free char *where = host ? xasprintf("%s://%s/.well-known/oauth-protected-resource%s",
                                              h->tls ? "https" : "http", host, h->hc->path)
                                  : xstrdup(h->metadata_url);
  cleanup_free char *challenge = xasprintf(
      "Bearer resource_metadata=\"%s\"%s", where,
      presented ? ", error=\"invalid_token\", error_description=\"unknown bearer token\"" : "");
  static const char body[]
      = "{\"error\":\"invalid_token\",\"error_description\":\"a bearer token from kiln's "
        "--token-file is required\"}";
  return respond(h, c, MHD_HTTP_UNAUTHORIZED, "application/json", body, sizeof body - 1,
                 MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge, NULL);
}

/* RFC 9728's document: what this resource is and who issues its tokens.  */
static enum MHD_Result
resource_metadata(struct mcp_http *h, struct MHD_Connection *c)
{
  const char *host = header(c, "Host");
  cleanup_free char *resource
      = xasprintf("%s://%s%s", h->tls ? "https" : "http", host ? host : "", h->hc->path);
  json_t *doc = json_pack("{s:s, s:[s], s:s}", "resource", resource, "bearer_methods_supported",
                          "header", "resource_name", "kiln");
  json_t *servers = json_array();
  if (h->hc->auth_server)
    json_array_append_new(servers, json_string(h->hc->auth_server));
  json_object_set_new(doc, "authorization_servers", servers);
  cleanup_free char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  return respond(h, c, MHD_HTTP_OK, "application/json", text, strlen(text), NULL);
}

static enum MHD_Result
metrics(struct mcp_http *h, struct MHD_Connection *c)
{
  struct front_metrics m;
  front_metrics(h->server->front, &m);
  /* This response is counted before it is rendered, so that it is in it.  */
  count_status(h, MHD_HTTP_OK);
  struct buf out = { 0 };
  mcp_metrics_render(&out, &m, &h->status);
  struct MHD_Response *r
      = MHD_create_response_from_buffer(out.len, out.data, MHD_RESPMEM_MUST_COPY);
  buf_free(&out);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, MCP_METRICS_CONTENT_TYPE);
  enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ok;
}

/* ------------------------------------------------------------- dispatch */

static bool
path_is(const char *url, const char *path)
{
  return strcmp(url, path) == 0;
}

/* The checks of a request's first call (its headers are in), and the
   answers that need no body.  Returns MHD_YES with Q->kind set to go on
   reading the body, or the result of the response it queued.  */
static enum MHD_Result
first_call(struct mcp_http *h, struct http_req *q, const char *url, const char *method,
           char client[64])
{
  struct MHD_Connection *c = q->conn;
  q->kind = K_DONE;
  if (h->nconnections > h->hc->max_connections)
    return respond(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
                   "too many connections (--http-max-connections)\n",
                   strlen("too many connections (--http-max-connections)\n"), "Connection", "close",
                   NULL);
  if (!http_host_ok(header(c, "Host"), h->hc->allow_host))
    return refuse(h, c, MHD_HTTP_FORBIDDEN, NULL, JRPC_INVALID_REQUEST,
                  "Forbidden: Host not allowed (--allow-host)");
  if (!http_origin_ok(header(c, "Origin"), h->hc->allow_origin, h->loopback))
    return refuse(h, c, MHD_HTTP_FORBIDDEN, NULL, JRPC_INVALID_REQUEST,
                  "Forbidden: Origin not allowed (--allow-origin)");
  bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  if (path_is(url, "/healthz") && get)
    return respond(h, c, MHD_HTTP_OK, "text/plain", "ok\n", 3, NULL);
  if (path_is(url, "/readyz") && get)
    return h->ready
               ? respond(h, c, MHD_HTTP_OK, "text/plain", "ready\n", 6, NULL)
               : respond(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "starting\n", 9, NULL);
  if (strncmp(url, "/.well-known/oauth-protected-resource", 37) == 0
      && (url[37] == '\0' || path_is(url + 37, h->hc->path)) && get)
    return resource_metadata(h, c);
  bool is_mcp = path_is(url, h->hc->path);
  bool is_metrics = path_is(url, "/metrics") && get;
  if (!is_mcp && !is_metrics)
    return respond(h, c, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n", 10, NULL);
  const char *authz = header(c, MHD_HTTP_HEADER_AUTHORIZATION);
  char token_name[HTTP_CLIENT_NAME];
  bool authorized = http_auth_check(h->auth, authz, token_name);
  if (is_metrics) {
    if (!authorized && !h->hc->metrics_public)
      return unauthorized(h, c, authz != NULL);
    return metrics(h, c);
  }
  if (!authorized)
    return unauthorized(h, c, authz != NULL);
  /* Who the client is: its token, or without tokens its address.  */
  if (token_name[0])
    snprintf(client, 64, "%s", token_name);
  else
    peer_name(c, client, 64);
  const char *version = header(c, "MCP-Protocol-Version");
  if (version && !version_ok(version))
    return refuse(h, c, MHD_HTTP_BAD_REQUEST, NULL, JRPC_INVALID_REQUEST,
                  "Bad Request: unsupported MCP-Protocol-Version (kiln speaks 2025-11-25, "
                  "2025-06-18, 2025-03-26 and 2024-11-05)");
  if (strcmp(method, "GET") == 0)
    return mcp_get(h, c, client);
  if (strcmp(method, "DELETE") == 0)
    return mcp_delete(h, c, client);
  if (strcmp(method, "POST") != 0)
    return respond(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                   "the MCP endpoint takes POST, GET and DELETE\n",
                   strlen("the MCP endpoint takes POST, GET and DELETE\n"), MHD_HTTP_HEADER_ALLOW,
                   "GET, POST, DELETE", NULL);
  const char *ctype = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0
      || (ctype[16] != '\0' && ctype[16] != ';' && ctype[16] != ' '))
    return refuse(h, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL, JRPC_INVALID_REQUEST,
                  "Unsupported Media Type: a POST carries application/json");
  const char *accept = header(c, "Accept");
  if (!accepts(accept, "application/json") && !accepts(accept, "text/event-stream"))
    return refuse(h, c, MHD_HTTP_NOT_ACCEPTABLE, NULL, JRPC_INVALID_REQUEST,
                  "Not Acceptable: accept application/json and text/event-stream");
  const char *length = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (length && strtoull(length, NULL, 10) > h->cfg->max_message)
    return refuse(h, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, JRPC_INVALID_REQUEST,
                  "the message is over %zu bytes (--max-message)", h->cfg->max_message);
  q->kind = K_MCP_POST;
  return MHD_YES;
}

struct req_state {
  struct http_req q;
  char client[64];
};

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_len, void **con_cls)
{
  struct mcp_http *h = cls;
  struct req_state *st = *con_cls;
  if (st == NULL) {
    st = xzalloc(sizeof *st);
    st->q.h = h;
    st->q.conn = c;
    *con_cls = st;
    struct http_link *l = link_of(c);
    if (l) {
      l->receiving = true;
      l->since = now_ns();
    }
    enum MHD_Result rc = first_call(h, &st->q, url, method, st->client);
    if (st->q.kind == K_DONE && l) {
      l->receiving = false;
      l->busy = true;
    }
    return rc;
  }
  struct http_req *q = &st->q;
  if (q->kind == K_DONE) {
    /* The answer is queued; what is left of the body is dropped.  */
    *upload_len = 0;
    return MHD_YES;
  }
  if (*upload_len > 0) {
    q->body_seen += *upload_len;
    if (q->body_seen > h->cfg->max_message) {
      q->too_big = true;
      if (q->body.len < KEPT_PREFIX) {
        size_t keep = KEPT_PREFIX - q->body.len;
        buf_append(&q->body, upload, *upload_len < keep ? *upload_len : keep);
      }
    } else
      buf_append(&q->body, upload, *upload_len);
    *upload_len = 0;
    return MHD_YES;
  }
  if (q->suspended)
    return MHD_YES;
  if (q->answered)
    return answer_json(h, q);
  if (q->kind == K_MCP_POST) {
    struct http_link *l = link_of(c);
    if (l) {
      l->receiving = false;
      l->busy = true;
    }
    q->kind = K_WAITING;
    return mcp_post(h, q, st->client);
  }
  /* Resumed for a session that ended before its answer: said in
     http_session_end.  */
  return MHD_NO;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
  struct req_state *st = *con_cls;
  struct http_link *l = link_of(c);
  if (l) {
    l->busy = false;
    l->receiving = false;
    l->since = now_ns();
  }
  if (st == NULL)
    return;
  /* A client that went away while its answer was computed: the work goes
     on, the answer is dropped.  */
  if (st->q.route)
    st->q.route->req = NULL;
  buf_free(&st->q.body);
  free(st->q.answer);
  free(st);
  *con_cls = NULL;
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
  struct mcp_http *h = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    struct http_link *l = xzalloc(sizeof *l);
    const union MHD_ConnectionInfo *i
        = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    l->fd = i ? i->connect_fd : -1;
    l->since = now_ns();
    l->next = h->links;
    if (h->links)
      h->links->prev = l;
    h->links = l;
    h->nconnections++;
    *socket_context = l;
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
    struct http_link *l = *socket_context;
    if (l->prev)
      l->prev->next = l->next;
    else
      h->links = l->next;
    if (l->next)
      l->next->prev = l->prev;
    h->nconnections--;
    free(l);
    *socket_context = NULL;
  }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  msg[strcspn(msg, "\n")] = '\0';
  log_msg(LOG_DEBUG, "http: %s", msg);
}

/* ------------------------------------------------------ loop and timers */

static void
on_ready_fd(struct loop *loop, int fd, uint32_t events, void *data)
{
  struct mcp_http *h = data;
  MHD_run(h->d);
}

static int64_t
next_deadline(void *data)
{
  struct mcp_http *h = data;
  int64_t now = now_ns();
  int64_t d = h->next_keepalive;
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(h->d, &ms) == MHD_YES) {
    int64_t t = now + (int64_t)(ms > 86400000 ? 86400000 : ms) * 1000000;
    if (t < d)
      d = t;
  }
  int64_t limit = (int64_t)(h->hc->timeout_s * 1e9);
  for (struct http_link *l = h->links; l; l = l->next)
    if (!l->busy && l->since + limit < d)
      d = l->since + limit;
  /* Idle MCP sessions are looked for once a minute at most.  */
  if (h->nsessions && now + 60 * 1000000000LL < d)
    d = now + 60 * 1000000000LL;
  return d;
}

static void
tick(int64_t now, void *data)
{
  struct mcp_http *h = data;
  int64_t limit = (int64_t)(h->hc->timeout_s * 1e9);
  /* A connection that takes longer than --http-timeout to deliver a
     request, or sits idle that long, is cut: shutdown wakes
     libmicrohttpd, which closes it.  */
  for (struct http_link *l = h->links; l; l = l->next)
    if (!l->busy && l->fd >= 0 && now - l->since > limit) {
      shutdown(l->fd, SHUT_RDWR);
      l->fd = -1;
    }
  if (now >= h->next_keepalive) {
    http_keepalive(h);
    h->next_keepalive = now + HTTP_KEEPALIVE_NS;
  }
  http_sessions_expire(h, now);
  MHD_run(h->d);
}

/* ----------------------------------------------------------- lifecycle */

/* Parses "[ADDR:]PORT" into SA.  */
static int
parse_listen(const char *spec, struct sockaddr_storage *sa, socklen_t *len, char *host,
             size_t host_len, kiln_error_t *err)
{
  const char *colon = strrchr(spec, ':');
  char addr[128] = "127.0.0.1";
  const char *port = spec;
  if (colon) {
    size_t n = (size_t)(colon - spec);
    if (n >= sizeof addr)
      return kiln_error_make(err, 0, "--http %s: the address is too long", spec);
    memcpy(addr, spec, n);
    addr[n] = '\0';
    if (addr[0] == '[' && n >= 2 && addr[n - 1] == ']') {
      memmove(addr, addr + 1, n - 2);
      addr[n - 2] = '\0';
    }
    if (strcasecmp(addr, "localhost") == 0)
      strcpy(addr, "127.0.0.1");
    port = colon + 1;
  }
  char *end;
  unsigned long p = strtoul(port, &end, 10);
  if (*port == '\0' || *end || p > 65535)
    return kiln_error_make(err, 0, "--http %s: not [ADDR:]PORT", spec);
  struct addrinfo hints
      = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
  struct addrinfo *res;
  if (getaddrinfo(addr, port, &hints, &res) != 0)
    return kiln_error_make(err, 0, "--http %s: '%s' is not an IP address", spec, addr);
  memcpy(sa, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  snprintf(host, host_len, "%s", addr);
  return 0;
}

static char *
read_all(const char *path, kiln_error_t *err)
{
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    kiln_error_make(err, errno, "%s", path);
    return NULL;
  }
  struct buf b = { 0 };
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (1 << 20))
    buf_append(&b, chunk, n);
  fclose(f);
  buf_append(&b, "", 1);
  return (char *)b.data;
}

struct mcp_http *
mcp_http_new(struct loop *loop, struct mcp_server *s, const struct kiln_config *cfg,
             kiln_error_t *err)
{
  const struct kiln_http_config *hc = &cfg->http;
  struct sockaddr_storage sa;
  socklen_t salen;
  char host[128];
  if (parse_listen(hc->listen, &sa, &salen, host, sizeof host, err) < 0)
    return NULL;
  if (hc->path == NULL || hc->path[0] != '/')
    return kiln_error_make(err, 0, "--http-path must start with /"), NULL;
  bool loopback = http_addr_is_loopback(host);
  if (!loopback && hc->token_file == NULL && !hc->insecure_no_token)
    return kiln_error_make(err, 0,
                           "--http %s is not a loopback address: give --token-file (or, to let "
                           "anyone who reaches it run code, --insecure-http-no-token)",
                           hc->listen),
           NULL;
  if (hc->node_name
      && (hc->node_name[0] == '\0' || strlen(hc->node_name) > 63
          || strspn(hc->node_name,
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
                 != strlen(hc->node_name)))
    return kiln_error_make(err, 0, "--node-name: 1 to 63 letters, digits and -"), NULL;
  if ((hc->tls_cert == NULL) != (hc->tls_key == NULL))
    return kiln_error_make(err, 0, "--tls-cert and --tls-key go together"), NULL;
  struct mcp_http *h = xzalloc(sizeof *h);
  h->loop = loop;
  h->server = s;
  h->cfg = cfg;
  h->hc = hc;
  h->epfd = -1;
  h->loopback = loopback;
  h->next_keepalive = now_ns() + HTTP_KEEPALIVE_NS;
  h->auth = http_auth_new(hc->token_file, err);
  if (h->auth == NULL) {
    free(h);
    return NULL;
  }
  cleanup_free char *cert = NULL, *key = NULL;
  if (hc->tls_cert) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      kiln_error_make(err, 0, "this libmicrohttpd has no TLS: terminate TLS at a proxy");
      goto fail;
    }
    if ((cert = read_all(hc->tls_cert, err)) == NULL || (key = read_all(hc->tls_key, err)) == NULL)
      goto fail;
    h->tls = true;
  }
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG
                   | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) | (h->tls ? MHD_USE_TLS : 0);
  /* libmicrohttpd's own limit is set above kiln's so that a connection
     past --http-max-connections is told why (503) rather than dropped.  */
  struct MHD_OptionItem tls_opts[] = {
    { h->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert },
    { MHD_OPTION_HTTPS_MEM_KEY, 0, key },
    { MHD_OPTION_END, 0, NULL },
  };
  h->d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)(hc->max_connections + 16),
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(hc->timeout_s + 0.999),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 << 10), MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_EXTERNAL_LOGGER,
      mhd_log, h, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
  if (h->d == NULL) {
    kiln_error_make(err, 0, "--http %s: cannot listen (in use, or not an address of this host)",
                    hc->listen);
    goto fail;
  }
  const union MHD_DaemonInfo *ep = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
  const union MHD_DaemonInfo *bp = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  h->epfd = ep ? ep->epoll_fd : -1;
  if (h->epfd < 0 || loop_add(loop, h->epfd, EPOLLIN, on_ready_fd, h, err) < 0)
    goto fail;
  loop_set_timers(loop, next_deadline, tick, h);
  bool v6 = sa.ss_family == AF_INET6;
  h->url = xasprintf("%s://%s%s%s:%u%s", h->tls ? "https" : "http", v6 ? "[" : "", host,
                     v6 ? "]" : "", bp ? bp->port : 0, hc->path);
  h->metadata_url = xasprintf("%s://%s%s%s:%u/.well-known/oauth-protected-resource%s",
                              h->tls ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "",
                              bp ? bp->port : 0, hc->path);
  return h;
fail:
  if (h->d)
    MHD_stop_daemon(h->d);
  http_auth_free(h->auth);
  free(h);
  return NULL;
}

const char *
mcp_http_url(const struct mcp_http *h)
{
  return h->url;
}

void
mcp_http_set_ready(struct mcp_http *h, bool ready)
{
  h->ready = ready;
}

int
mcp_http_reload(struct mcp_http *h, kiln_error_t *err)
{
  if (http_auth_reload(h->auth, err) < 0)
    return -1;
  log_msg(LOG_INFO, "http: %zu tokens loaded from %s", http_auth_count(h->auth),
          h->hc->token_file ? h->hc->token_file : "(none)");
  return 0;
}

void
mcp_http_free(struct mcp_http *h)
{
  if (h == NULL)
    return;
  while (h->sessions)
    http_session_end(h->sessions);
  loop_set_timers(h->loop, NULL, NULL, h);
  loop_del(h->loop, h->epfd);
  MHD_stop_daemon(h->d);
  http_auth_free(h->auth);
  free(h->url);
  free(h->metadata_url);
  free(h);
}
