/* The HTTP transport on hostile bytes: kiln serve --http's whole request
   path — libmicrohttpd's parser, then kiln's checks (Host, Origin,
   tokens, sizes), the MCP endpoint's POST, GET and DELETE with SSE
   streams and their resumption, and the operations endpoints — with the
   fake front of fake_front.h behind the MCP layer.

   An input is a few connections' worth of bytes, separated by "\n~~\n";
   each is written on its own TCP connection to a transport made for the
   input, whose answers are read until it has said everything it will.
   "SESSION" in the bytes becomes the id of an MCP session that exists
   (initialized), so that requests past the session check are reached.

   Oracles, beside the sanitizers and the leak checker (every transport,
   session, stream and request is freed at the end of each input):
   - whatever kiln sends on a connection begins with an HTTP/1.x status
     line; no status is 500 (kiln never fails a request for its own
     reasons);
   - a response kiln marks as SSE consists of whole events, each with an
     id;
   - after the input the transport still answers GET /healthz with 200.  */
#define _GNU_SOURCE
#include "fuzz.h"
#include "config.h"
#include "fake_front.h"
#include "transport/http_internal.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNECTIONS 6
#define PUMPS           12

static struct mcp_http *h;

static int
dial(void)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  const union MHD_DaemonInfo *bp = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  sa.sin_port = htons(bp->port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0);
  /* Closed with a reset, not a FIN: a long run makes hundreds of
     thousands of connections, and TIME_WAIT would use up the ports.  */
  struct linger reset = { 1, 0 };
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  /* Non-blocking from the start: libFuzzer's timer signal may land in a
     blocking connect, which then fails with EINTR half made.  */
  fcntl(fd, F_SETFL, O_NONBLOCK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    FUZZ_CHECK(errno == EINPROGRESS || errno == EINTR);
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    while (poll(&p, 1, 5000) < 0 && errno == EINTR)
      ;
    int e = 0;
    socklen_t len = sizeof e;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
    if (e != 0)
      fprintf(stderr, "connect to port %u: %s\n", bp->port, strerror(e));
    FUZZ_CHECK(e == 0);
  }
  return fd;
}

/* Writes [P, P+N) on a new connection and returns what comes back
   (allocated, NUL-terminated; the caller frees it).  */
static char *
exchange(const char *p, size_t n, size_t *got_len)
{
  int fd = dial();
  struct buf got = { 0 };
  size_t sent = 0;
  for (int i = 0; i < PUMPS; i++) {
    while (sent < n) {
      ssize_t w = write(fd, p + sent, n - sent);
      if (w <= 0)
        break;
      sent += (size_t)w;
    }
    MHD_run(h->d);
    char chunk[65536];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0)
      buf_append(&got, chunk, (size_t)r);
    if (r == 0)
      break;
  }
  close(fd);
  /* Let the transport see the close and free what it held.  */
  MHD_run(h->d);
  buf_append(&got, "", 1);
  *got_len = got.len - 1;
  return (char *)got.data;
}

static void
check_answer(const char *a, size_t n)
{
  if (n == 0)
    return;
  FUZZ_CHECK(n >= 12 && (memcmp(a, "HTTP/1.1 ", 9) == 0 || memcmp(a, "HTTP/1.0 ", 9) == 0));
  FUZZ_CHECK(memcmp(a + 9, "500", 3) != 0);
  const char *body = strstr(a, "\r\n\r\n");
  if (body && strcasestr(a, "content-type: text/event-stream")
      && strcasestr(a, "transfer-encoding: chunked") == NULL) {
    /* Unchunked SSE (HTTP/1.0): whole events, each with an id.  */
    for (const char *e = body + 4; *e;) {
      FUZZ_CHECK(strncmp(e, "id: ", 4) == 0 || strncmp(e, ": keepalive", 11) == 0);
      const char *end = strstr(e, "\n\n");
      if (end == NULL)
        break; /* cut off by the end of the exchange */
      e = end + 2;
    }
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  log_setup(-1, 0);
  struct kiln_config cfg;
  kiln_error_t err = NULL;
  FUZZ_CHECK(config_init(&cfg, &err) == 0);
  cfg.max_message = 4096;
  cfg.http.listen = xstrdup("127.0.0.1:0");
  cfg.http.timeout_s = 5;
  cfg.http.max_connections = 16;
  cfg.http.max_client_sessions = 4;
  struct loop *loop = loop_new(&err);
  FUZZ_CHECK(loop);
  struct fuzz_in nothing = { NULL, 0 };
  static const struct fake_hooks no_hooks;
  struct front *front = fake_front_new(&nothing, &cfg, &no_hooks);
  struct mcp_server *server = mcp_server_new(&cfg, front);
  h = mcp_http_new(loop, server, &cfg, &err);
  FUZZ_CHECK(h);
  mcp_http_set_ready(h, true);
  /* One MCP session that is past initialize, for "SESSION" to name.  */
  struct http_session *s = http_session_new(h, "127.0.0.1");
  static const char init[] = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                             "\"protocolVersion\":\"2025-11-25\"}}";
  mcp_conn_handle(s->conn, init, sizeof init - 1, 0);
  FUZZ_CHECK(s->conn->initialized);
  char id[sizeof s->id];
  memcpy(id, s->id, sizeof id);

  const char *p = (const char *)data, *end = p + size;
  for (int c = 0; c < MAX_CONNECTIONS && p < end; c++) {
    const char *sep = memmem(p, (size_t)(end - p), "\n~~\n", 4);
    size_t n = sep ? (size_t)(sep - p) : (size_t)(end - p);
    struct buf req = { 0 };
    for (size_t i = 0; i < n;) {
      if (n - i >= 7 && memcmp(p + i, "SESSION", 7) == 0) {
        buf_append(&req, id, strlen(id));
        i += 7;
      } else
        buf_append(&req, p + i++, 1);
    }
    size_t got_len;
    cleanup_free char *got = exchange(req.len ? (const char *)req.data : "", req.len, &got_len);
    check_answer(got, got_len);
    buf_free(&req);
    p += n + (sep ? 4 : 0);
  }
  static const char health[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  size_t got_len;
  cleanup_free char *got = exchange(health, sizeof health - 1, &got_len);
  FUZZ_CHECK(got_len >= 12 && memcmp(got + 9, "200", 3) == 0);

  mcp_http_free(h);
  h = NULL;
  mcp_server_free(server);
  front_free(front);
  loop_free(loop);
  config_free(&cfg);
  return 0;
}
