#define _GNU_SOURCE
/* The installer's proxy: it relays to the allowed origin and to nothing
   else, one request per client connection, within its byte cap, and
   proxy_stop never hangs on a connection left open.  The origin is a
   small HTTP server on loopback that records what reached it.  */
#include "check.h"
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BIG_BODY 65536
static const char small_body[] = "hello from the origin\n";

/* The origin: serves one connection at a time and keeps everything the
   last one sent, through to its end.  */
static struct {
  int fd;
  uint16_t port;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int served;
  char last[8192];
} origin = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int
listen_loopback(uint16_t *port)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0
      || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    perror("listen_loopback");
    exit(2);
  }
  *port = ntohs(a.sin_port);
  return fd;
}

/* Reads into BUF until EOF, an error, or QUIET_MS of silence; returns
   the length and leaves BUF NUL-terminated.  */
static size_t
read_quiet(int fd, char *buf, size_t cap, int quiet_ms)
{
  size_t n = 0;
  for (;;) {
    struct pollfd pfd = { fd, POLLIN, 0 };
    if (poll(&pfd, 1, quiet_ms) <= 0)
      break;
    char sink[4096];
    ssize_t r = n + 1 < cap ? recv(fd, buf + n, cap - 1 - n, 0) : recv(fd, sink, sizeof sink, 0);
    if (r <= 0)
      break;
    if (n + 1 < cap)
      n += (size_t)r;
  }
  buf[n] = '\0';
  return n;
}

static size_t
read_until_eof(int fd, char *buf, size_t cap)
{
  return read_quiet(fd, buf, cap, 5000);
}

static void *
origin_main(void *arg)
{
  static char body[BIG_BODY];
  memset(body, 'x', sizeof body);
  for (;;) {
    int fd = accept4(origin.fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
      return NULL;
    char req[8192];
    size_t n = 0;
    while (n + 1 < sizeof req && memmem(req, n, "\r\n\r\n", 4) == NULL) {
      ssize_t r = recv(fd, req + n, 1, 0);
      if (r <= 0)
        break;
      n += (size_t)r;
    }
    bool big = memmem(req, n, " /big", 5) != NULL;
    const char *b = big ? body : small_body;
    size_t blen = big ? sizeof body : strlen(small_body);
    if (memmem(req, n, " /after-eof", 11) != NULL) {
      /* Answers only once the client's half-close has come through.  */
      struct pollfd pfd = { fd, POLLIN, 0 };
      char c;
      bool eof = poll(&pfd, 1, 2000) == 1 && recv(fd, &c, 1, 0) == 0;
      b = eof ? "saw eof\n" : "no eof\n";
      blen = strlen(b);
    }
    char hdr[128];
    int hlen
        = snprintf(hdr, sizeof hdr,
                   "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", blen);
    send(fd, hdr, (size_t)hlen, MSG_NOSIGNAL);
    send(fd, b, blen, MSG_NOSIGNAL);
    /* An origin that keeps the connection open despite Connection: close,
       as a keep-alive one would.  */
    if (memmem(req, n, " /hold", 6) != NULL)
      n += read_quiet(fd, req + n, sizeof req - n, 500);
    shutdown(fd, SHUT_WR);
    /* Everything the proxy sends until it closes: a pipelined request
       that slipped through would show here.  */
    n += read_until_eof(fd, req + n, sizeof req - n);
    close(fd);
    pthread_mutex_lock(&origin.lock);
    memcpy(origin.last, req, n + 1);
    origin.served++;
    pthread_cond_broadcast(&origin.cond);
    pthread_mutex_unlock(&origin.lock);
  }
}

static int
served(void)
{
  pthread_mutex_lock(&origin.lock);
  int n = origin.served;
  pthread_mutex_unlock(&origin.lock);
  return n;
}

/* Waits up to 5 s for the origin to have served N connections.  */
static bool
wait_served(int n)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 5;
  pthread_mutex_lock(&origin.lock);
  while (origin.served < n && pthread_cond_timedwait(&origin.cond, &origin.lock, &ts) == 0)
    ;
  bool ok = origin.served >= n;
  pthread_mutex_unlock(&origin.lock);
  return ok;
}

static struct proxy *
start_proxy(uint64_t max_bytes, uint16_t *port)
{
  struct proxy_allow allow[] = { { "127.0.0.1", origin.port } };
  kiln_error_t err = NULL;
  struct proxy *p = proxy_start(listen_loopback(port), allow, 1, max_bytes, &err);
  if (p == NULL) {
    fprintf(stderr, "proxy_start: %s\n", err->msg);
    exit(2);
  }
  return p;
}

static int
dial(uint16_t port)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = { .sin_family = AF_INET,
                           .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    perror("dial");
    exit(2);
  }
  return fd;
}

static void
send_str(int fd, const char *s)
{
  send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/* Sends REQ to the proxy on a new connection and returns the HTTP status
   of the answer, the whole answer in RESP.  */
static int
ask(uint16_t port, const char *req, char *resp, size_t cap)
{
  int fd = dial(port);
  send_str(fd, req);
  read_until_eof(fd, resp, cap);
  close(fd);
  int status = 0;
  return sscanf(resp, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

/* Copies TMPL to OUT with each "PORT" replaced by the origin's port.  */
static void
with_port(char *out, size_t cap, const char *tmpl)
{
  size_t n = 0;
  for (const char *t = tmpl; *t && n + 6 < cap;) {
    if (strncmp(t, "PORT", 4) == 0) {
      n += (size_t)snprintf(out + n, cap - n, "%u", origin.port);
      t += 4;
    } else {
      out[n++] = *t++;
    }
  }
  out[n] = '\0';
}

static size_t
count(const char *hay, const char *needle)
{
  size_t n = 0;
  for (const char *s = hay; (s = strstr(s, needle)) != NULL; s++)
    n++;
  return n;
}

static void
a_connect_tunnel_reaches_the_allowed_origin(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(0, &port);
  int before = served();
  int fd = dial(port);
  char req[128], resp[4096];
  snprintf(req, sizeof req, "CONNECT 127.0.0.1:%u HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n",
           origin.port, origin.port);
  send_str(fd, req);
  /* The 200 and what the origin answers through the tunnel.  */
  send_str(fd, "GET /through-the-tunnel HTTP/1.1\r\nHost: origin\r\n\r\n");
  read_until_eof(fd, resp, sizeof resp);
  close(fd);
  const char *want = "HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK\r\n";
  CHECK(strncmp(resp, want, strlen(want)) == 0);
  CHECK(strstr(resp, small_body) != NULL);
  CHECK(wait_served(before + 1));
  CHECK(strncmp(origin.last, "GET /through-the-tunnel HTTP/1.1\r\n", 34) == 0);
  CHECK(proxy_bytes_in(p) > strlen(small_body));
  CHECK(strcmp(proxy_first_refused(p), "") == 0);
  proxy_stop(p);
}

static void
a_connect_tunnel_passes_each_sides_half_close_on(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(0, &port);
  int before = served();
  int fd = dial(port);
  char req[128], resp[4096];
  snprintf(req, sizeof req, "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\n", origin.port);
  send_str(fd, req);
  send_str(fd, "GET /after-eof HTTP/1.1\r\n\r\n");
  shutdown(fd, SHUT_WR);
  read_until_eof(fd, resp, sizeof resp);
  close(fd);
  struct timespec t0, t1;
  CHECK(strstr(resp, "\r\n\r\nsaw eof\n") != NULL);

  /* The origin closes first while the client still could send: the client
     sees the end at once, not after a timeout.  */
  fd = dial(port);
  send_str(fd, req);
  send_str(fd, "GET / HTTP/1.1\r\n\r\n");
  clock_gettime(CLOCK_MONOTONIC, &t0);
  read_until_eof(fd, resp, sizeof resp);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  close(fd);
  CHECK(strstr(resp, small_body) != NULL);
  CHECK(t1.tv_sec - t0.tv_sec < 2);
  CHECK(wait_served(before + 2));
  proxy_stop(p);
}

static void
a_connect_to_a_port_not_allowed_gets_403_and_is_remembered(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(0, &port);
  int before = served();
  char req[128], resp[4096], want[64];
  snprintf(req, sizeof req, "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\n", origin.port + 1);
  CHECK(ask(port, req, resp, sizeof resp) == 403);
  snprintf(want, sizeof want, "127.0.0.1:%u", origin.port + 1);
  CHECK(strstr(resp, want) != NULL);
  CHECK(strcmp(proxy_first_refused(p), want) == 0);
  /* Only the first refusal is kept: it is the one the user needs.  */
  snprintf(req, sizeof req, "CONNECT example.org:%u HTTP/1.1\r\n\r\n", origin.port);
  CHECK(ask(port, req, resp, sizeof resp) == 403);
  CHECK(strcmp(proxy_first_refused(p), want) == 0);
  /* An IPv6 literal is named the way it is written in a URL.  */
  snprintf(req, sizeof req, "CONNECT [::1]:%u HTTP/1.1\r\n\r\n", origin.port);
  CHECK(ask(port, req, resp, sizeof resp) == 403);
  snprintf(want, sizeof want, "[::1]:%u", origin.port);
  CHECK(strstr(resp, want) != NULL);
  CHECK(served() == before);
  proxy_stop(p);
}

static void
an_absolute_get_reaches_the_origin_in_origin_form_with_connection_close(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(0, &port);
  int before = served();
  char req[512], resp[4096];
  snprintf(req, sizeof req,
           "GET http://127.0.0.1:%u/simple/pkg/?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
           "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\n"
           "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nUser-Agent: pip/24\r\n\r\n",
           origin.port, origin.port);
  CHECK(ask(port, req, resp, sizeof resp) == 200);
  CHECK(strstr(resp, small_body) != NULL);
  CHECK(wait_served(before + 1));
  CHECK(strncmp(origin.last, "GET /simple/pkg/?x=1 HTTP/1.1\r\n", 31) == 0);
  CHECK(strstr(origin.last, "\r\nConnection: close\r\n") != NULL);
  CHECK(strstr(origin.last, "\r\nUser-Agent: pip/24\r\n") != NULL);
  CHECK(strcasestr(origin.last, "Proxy-") == NULL);
  CHECK(strcasestr(origin.last, "keep-alive") == NULL);
  CHECK(count(origin.last, "Connection:") == 1);
  proxy_stop(p);
}

static void
a_second_request_on_the_same_connection_is_not_relayed(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(0, &port);
  int before = served();
  char req[512], resp[4096];
  snprintf(req, sizeof req,
           "GET http://127.0.0.1:%u/first HTTP/1.1\r\nHost: a\r\n\r\n"
           "GET http://127.0.0.1:%u/second HTTP/1.1\r\nHost: a\r\n\r\n",
           origin.port, origin.port);
  CHECK(ask(port, req, resp, sizeof resp) == 200);
  CHECK(count(resp, "HTTP/1.1 ") == 1);
  CHECK(wait_served(before + 1));
  CHECK(strstr(origin.last, "/first") != NULL);
  CHECK(strstr(origin.last, "/second") == NULL);
  usleep(200 * 1000);
  CHECK(served() == before + 1);

  /* Sent after the answer, while the origin still listens.  */
  int fd = dial(port);
  snprintf(req, sizeof req, "GET http://127.0.0.1:%u/hold HTTP/1.1\r\nHost: a\r\n\r\n",
           origin.port);
  send_str(fd, req);
  size_t n = 0;
  resp[0] = '\0';
  while (n + 1 < sizeof resp && strstr(resp, small_body) == NULL) {
    ssize_t r = recv(fd, resp + n, sizeof resp - 1 - n, 0);
    if (r <= 0)
      break;
    n += (size_t)r;
    resp[n] = '\0';
  }
  CHECK(strstr(resp, small_body) != NULL);
  snprintf(req, sizeof req, "GET http://127.0.0.1:%u/second HTTP/1.1\r\nHost: a\r\n\r\n",
           origin.port);
  send_str(fd, req);
  read_until_eof(fd, resp, sizeof resp);
  close(fd);
  CHECK(wait_served(before + 2));
  CHECK(strstr(origin.last, "/hold") != NULL);
  CHECK(strstr(origin.last, "/second") == NULL);
  proxy_stop(p);
}

static void
a_request_body_is_relayed_up_to_its_content_length(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(0, &port);
  int before = served();
  char req[512], resp[4096];
  snprintf(req, sizeof req,
           "GET http://127.0.0.1:%u/ HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcdeGET /smuggled",
           origin.port);
  CHECK(ask(port, req, resp, sizeof resp) == 200);
  CHECK(wait_served(before + 1));
  CHECK(strstr(origin.last, "\r\n\r\nabcde") != NULL);
  CHECK(strstr(origin.last, "smuggled") == NULL);
  proxy_stop(p);
}

static void
an_absolute_get_to_a_destination_not_allowed_gets_403(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(0, &port);
  int before = served();
  char req[256], resp[4096], want[64];
  /* localhost is the same machine, but not the name that was allowed.  */
  snprintf(req, sizeof req, "GET http://LocalHost:%u/ HTTP/1.1\r\n\r\n", origin.port);
  CHECK(ask(port, req, resp, sizeof resp) == 403);
  snprintf(want, sizeof want, "localhost:%u", origin.port);
  CHECK(strcmp(proxy_first_refused(p), want) == 0);
  /* No port means 80, which was not allowed.  */
  CHECK(ask(port, "GET http://127.0.0.1/ HTTP/1.1\r\n\r\n", resp, sizeof resp) == 403);
  snprintf(req, sizeof req, "HEAD http://127.0.0.1:%u/ HTTP/1.1\r\n\r\n", origin.port + 1);
  CHECK(ask(port, req, resp, sizeof resp) == 403);
  CHECK(served() == before);
  proxy_stop(p);
}

static void
requests_the_proxy_does_not_understand_get_400_or_405(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(0, &port);
  int before = served();
  char resp[4096];
  static const struct {
    const char *req; /* PORT stands for the origin's port */
    int status;
  } cases[] = {
    { "GARBAGE\r\n\r\n", 400 },
    { "GET http://127.0.0.1:PORT/ HTTP/1.1 extra\r\n\r\n", 400 },
    { "GET http://127.0.0.1:PORT/ HTTP/2.0\r\n\r\n", 400 },
    { "GET http://127.0.0.1:PORT/ HTTP/1.1\r\nno colon here\r\n\r\n", 400 },
    { "GET http://127.0.0.1:PORT/ HTTP/1.1\r\n folded: header\r\n\r\n", 400 },
    { "GET http://127.0.0.1:PORT/ HTTP/1.1\r\nX: a\rb\r\n\r\n", 400 },
    { "GET http://127.0.0.1:PORT/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
    { "GET http://127.0.0.1:PORT/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
      400 },
    { "GET http://user@127.0.0.1:PORT/ HTTP/1.1\r\n\r\n", 400 },
    { "GET https://127.0.0.1:PORT/ HTTP/1.1\r\n\r\n", 400 },
    { "GET /origin-form HTTP/1.1\r\n\r\n", 400 },
    { "CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", 400 },
    { "CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n", 400 },
    { "CONNECT 127.0.0.1%00:PORT HTTP/1.1\r\n\r\n", 400 },
    { "CONNECT [fe80::1%25eth0]:PORT HTTP/1.1\r\n\r\n", 400 },
    { "CONNECT [::g]:PORT HTTP/1.1\r\n\r\n", 400 },
    { "CONNECT [127.0.0.1]:PORT HTTP/1.1\r\n\r\n", 400 },
    { "POST http://127.0.0.1:PORT/ HTTP/1.1\r\n\r\n", 405 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char req[256];
    with_port(req, sizeof req, cases[i].req);
    int got = ask(port, req, resp, sizeof resp);
    if (got != cases[i].status)
      fprintf(stderr, "  case %zu: got %d, want %d\n", i, got, cases[i].status);
    CHECK(got == cases[i].status);
  }
  CHECK(served() == before);
  proxy_stop(p);
}

static void
a_request_head_over_16_KiB_gets_431(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(0, &port);
  int before = served();
  size_t big = 20 * 1024;
  char *req = malloc(big + 256), resp[4096];
  int n = snprintf(req, 256, "GET http://127.0.0.1:%u/ HTTP/1.1\r\nX-Big: ", origin.port);
  memset(req + n, 'a', big);
  strcpy(req + n + big, "\r\n\r\n");
  CHECK(ask(port, req, resp, sizeof resp) == 431);
  CHECK(served() == before);
  free(req);
  proxy_stop(p);
}

static void
passing_max_bytes_cuts_the_connection_and_says_so(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(1000, &port);
  char req[128];
  static char resp[2 * BIG_BODY];
  snprintf(req, sizeof req, "GET http://127.0.0.1:%u/big HTTP/1.1\r\n\r\n", origin.port);
  CHECK(!proxy_exceeded(p));
  size_t got = 0;
  int fd = dial(port);
  send_str(fd, req);
  got = read_until_eof(fd, resp, sizeof resp);
  close(fd);
  CHECK(got < BIG_BODY);
  CHECK(proxy_exceeded(p));
  CHECK(proxy_bytes_in(p) > 1000);
  /* Once over, new connections are turned away.  */
  CHECK(ask(port, req, resp, sizeof resp) == 503);
  proxy_stop(p);

  /* The same download fits under a cap large enough for it.  */
  p = start_proxy(2 * BIG_BODY, &port);
  fd = dial(port);
  send_str(fd, req);
  got = read_until_eof(fd, resp, sizeof resp);
  close(fd);
  CHECK(got > BIG_BODY);
  CHECK(!proxy_exceeded(p));
  proxy_stop(p);
}

static void
proxy_stop_returns_with_connections_still_open(void)
{
  uint16_t port;
  struct proxy *p = start_proxy(0, &port);
  char req[128], resp[256];
  int tunnel = dial(port);
  snprintf(req, sizeof req, "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\n", origin.port);
  send_str(tunnel, req);
  CHECK(recv(tunnel, resp, 39, MSG_WAITALL) == 39);
  int half = dial(port);
  send_str(half, "GET http://127.0.0.1");
  int idle = dial(port);
  usleep(100 * 1000);
  /* A hang here is the failure: the alarm ends the run.  */
  alarm(10);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  proxy_stop(p);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  alarm(0);
  CHECK(t1.tv_sec - t0.tv_sec < 3);
  /* Every client sees its connection end.  */
  CHECK(read_until_eof(tunnel, resp, sizeof resp) == 0);
  CHECK(read_until_eof(half, resp, sizeof resp) == 0);
  CHECK(read_until_eof(idle, resp, sizeof resp) == 0);
  close(tunnel);
  close(half);
  close(idle);
}

int
main(void)
{
  signal(SIGPIPE, SIG_IGN);
  origin.fd = listen_loopback(&origin.port);
  pthread_create(&origin.thread, NULL, origin_main, NULL);
  static const struct test_case cases[] = {
    { "a CONNECT tunnel reaches the allowed origin", a_connect_tunnel_reaches_the_allowed_origin },
    { "a CONNECT tunnel passes each side's half-close on",
      a_connect_tunnel_passes_each_sides_half_close_on },
    { "a CONNECT to a port not allowed gets 403 and is remembered",
      a_connect_to_a_port_not_allowed_gets_403_and_is_remembered },
    { "an absolute GET reaches the origin in origin form with Connection: close",
      an_absolute_get_reaches_the_origin_in_origin_form_with_connection_close },
    { "a second request on the same connection is not relayed",
      a_second_request_on_the_same_connection_is_not_relayed },
    { "a request body is relayed up to its Content-Length",
      a_request_body_is_relayed_up_to_its_content_length },
    { "an absolute GET to a destination not allowed gets 403",
      an_absolute_get_to_a_destination_not_allowed_gets_403 },
    { "requests the proxy does not understand get 400 or 405",
      requests_the_proxy_does_not_understand_get_400_or_405 },
    { "a request head over 16 KiB gets 431", a_request_head_over_16_KiB_gets_431 },
    { "passing max_bytes cuts the connection and says so",
      passing_max_bytes_cuts_the_connection_and_says_so },
    { "proxy_stop returns with connections still open",
      proxy_stop_returns_with_connections_still_open },
  };
  int rc = RUN(cases);
  shutdown(origin.fd, SHUT_RDWR);
  pthread_join(origin.thread, NULL);
  close(origin.fd);
  return rc;
}
