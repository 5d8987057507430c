/* The HTTP server: libmicrohttpd on kiln's loop, the checks every
   request passes before it reaches an endpoint (connection count, Host,
   Origin, token, size), the receive deadline that cuts off a client
   trickling its request in, and the transport's start and end.  */
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

static struct http_link *
link_of(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *i
      = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return i ? i->socket_context : NULL;
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
    return http_respond(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
                        "too many connections (--http-max-connections)\n",
                        strlen("too many connections (--http-max-connections)\n"), "Connection",
                        "close", NULL);
  if (!http_host_ok(http_header(c, "Host"), h->hc->allow_host))
    return http_refuse(h, c, MHD_HTTP_FORBIDDEN, NULL, JRPC_INVALID_REQUEST,
                       "Forbidden: Host not allowed (--allow-host)");
  if (!http_origin_ok(http_header(c, "Origin"), h->hc->allow_origin, h->loopback))
    return http_refuse(h, c, MHD_HTTP_FORBIDDEN, NULL, JRPC_INVALID_REQUEST,
                       "Forbidden: Origin not allowed (--allow-origin)");
  bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  if (path_is(url, "/healthz") && get)
    return http_respond(h, c, MHD_HTTP_OK, "text/plain", "ok\n", 3, NULL);
  if (path_is(url, "/readyz") && get)
    return h->ready ? http_respond(h, c, MHD_HTTP_OK, "text/plain", "ready\n", 6, NULL)
                    : http_respond(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "starting\n",
                                   9, NULL);
  if (strncmp(url, "/.well-known/oauth-protected-resource", 37) == 0
      && (url[37] == '\0' || path_is(url + 37, h->hc->path)) && get)
    return http_resource_metadata(h, c);
  bool is_mcp = path_is(url, h->hc->path);
  bool is_metrics = path_is(url, "/metrics") && get;
  if (!is_mcp && !is_metrics)
    return http_respond(h, c, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n", 10, NULL);
  const char *authz = http_header(c, MHD_HTTP_HEADER_AUTHORIZATION);
  char token_name[HTTP_CLIENT_NAME];
  bool authorized = http_auth_check(h->auth, authz, token_name);
  if (is_metrics) {
    if (!authorized && !h->hc->metrics_public)
      return http_unauthorized(h, c, authz != NULL);
    return http_metrics(h, c);
  }
  if (!authorized)
    return http_unauthorized(h, c, authz != NULL);
  /* Who the client is: its token, or without tokens its address.  */
  if (token_name[0])
    snprintf(client, 64, "%s", token_name);
  else
    http_peer_name(c, client, 64);
  const char *version = http_header(c, "MCP-Protocol-Version");
  if (version && !http_version_ok(version))
    return http_refuse(h, c, MHD_HTTP_BAD_REQUEST, NULL, JRPC_INVALID_REQUEST,
                       "Bad Request: unsupported MCP-Protocol-Version (kiln speaks 2025-11-25, "
                       "2025-06-18, 2025-03-26 and 2024-11-05)");
  if (strcmp(method, "GET") == 0)
    return http_mcp_get(h, c, client);
  if (strcmp(method, "DELETE") == 0)
    return http_mcp_delete(h, c, client);
  if (strcmp(method, "POST") != 0)
    return http_respond(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                        "the MCP endpoint takes POST, GET and DELETE\n",
                        strlen("the MCP endpoint takes POST, GET and DELETE\n"),
                        MHD_HTTP_HEADER_ALLOW, "GET, POST, DELETE", NULL);
  const char *ctype = http_header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0
      || (ctype[16] != '\0' && ctype[16] != ';' && ctype[16] != ' '))
    return http_refuse(h, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL, JRPC_INVALID_REQUEST,
                       "Unsupported Media Type: a POST carries application/json");
  const char *accept = http_header(c, "Accept");
  if (!http_accepts(accept, "application/json") && !http_accepts(accept, "text/event-stream"))
    return http_refuse(h, c, MHD_HTTP_NOT_ACCEPTABLE, NULL, JRPC_INVALID_REQUEST,
                       "Not Acceptable: accept application/json and text/event-stream");
  const char *length = http_header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (length && strtoull(length, NULL, 10) > h->cfg->max_message)
    return http_refuse(h, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, JRPC_INVALID_REQUEST,
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
    return http_answer_json(h, q);
  if (q->kind == K_MCP_POST) {
    struct http_link *l = link_of(c);
    if (l) {
      l->receiving = false;
      l->busy = true;
    }
    q->kind = K_WAITING;
    return http_mcp_post(h, q, st->client);
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
