#define _GNU_SOURCE
/* The installer's HTTP proxy (proxy.h).  Every socket is non-blocking and
   every wait is a poll that also watches CUT_FD, so that proxy_stop and
   the byte cap reach a connection whatever it is waiting for.  */
#include "proxy.h"
#include "proxy_request.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#define MAX_CONNS          32
#define HEAD_MAX           16384
#define RELAY_BUF          16384
#define HEAD_TIMEOUT_MS    30000
#define CONNECT_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS    120000
#define SEND_TIMEOUT_MS    10000
#define LINGER_MS          2000

enum slot_state { SLOT_FREE, SLOT_RUNNING, SLOT_DONE };

struct slot {
  struct proxy *p;
  pthread_t thread;
  enum slot_state state; /* under P->lock */
  int client;
};

struct proxy {
  int listen_fd;
  int stop_fd;               /* readable once proxy_stop runs: wakes the acceptor */
  int cut_fd;                /* readable once stopping or over the cap: wakes every connection */
  struct proxy_allow *allow; /* owned copies, hosts lowercased, without brackets */
  size_t nallow;
  uint64_t max_bytes;
  _Atomic uint64_t bytes_in;
  atomic_bool exceeded;
  atomic_bool refused_set; /* REFUSED is written once, before this is set */
  char refused[HOST_MAX + 16];
  pthread_mutex_t lock;
  pthread_cond_t slot_freed;
  bool stopping;
  bool acceptor_started;
  pthread_t acceptor;
  struct slot slots[MAX_CONNS];
};

static void
signal_fd(int fd)
{
  uint64_t one = 1;
  if (write(fd, &one, sizeof one) < 0) {
    /* The counter cannot overflow from a handful of writes.  */
  }
}

static int
ms_until(int64_t deadline)
{
  int64_t ms = (deadline - now_ns() + 999999) / 1000000;
  return ms <= 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
}

static int64_t
deadline_in(int ms)
{
  return now_ns() + (int64_t)ms * 1000000;
}

/* Waits until FD is ready for EVENTS.  Returns 0, or -1 with errno
   ETIMEDOUT at DEADLINE or ECANCELED when the proxy cuts connections.  */
static int
wait_fd(struct proxy *p, int fd, short events, int64_t deadline)
{
  for (;;) {
    int ms = ms_until(deadline);
    if (ms == 0)
      return errno = ETIMEDOUT, -1;
    struct pollfd pfd[2] = { { fd, events, 0 }, { p->cut_fd, POLLIN, 0 } };
    int r = poll(pfd, 2, ms);
    if (r < 0 && errno != EINTR)
      return -1;
    if (r > 0 && pfd[1].revents)
      return errno = ECANCELED, -1;
    if (r > 0 && pfd[0].revents)
      return 0;
  }
}

static int
send_all(struct proxy *p, int fd, const void *data, size_t n, int64_t deadline)
{
  const char *s = data;
  while (n > 0) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno != EAGAIN && errno != EINTR)
      return -1;
    if (w < 0 && wait_fd(p, fd, POLLOUT, deadline) < 0)
      return -1;
    if (w > 0) {
      s += w;
      n -= (size_t)w;
    }
  }
  return 0;
}

/* Answers the client with an error and closes our side gently: reading
   what it still sends for a moment keeps the kernel from resetting the
   connection, which could drop the answer before the client reads it.  */
static void respond(struct proxy *p, int fd, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
respond(struct proxy *p, int fd, const char *status, const char *fmt, ...)
{
  cleanup_free char *body = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&body, fmt, ap) < 0)
    xoom();
  va_end(ap);
  cleanup_free char *msg = xasprintf("HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
                                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                     status, strlen(body), body);
  if (send_all(p, fd, msg, strlen(msg), deadline_in(SEND_TIMEOUT_MS)) < 0)
    return;
  shutdown(fd, SHUT_WR);
  int64_t deadline = deadline_in(LINGER_MS);
  char sink[4096];
  for (size_t total = 0; total < 65536 && wait_fd(p, fd, POLLIN, deadline) == 0;) {
    ssize_t r = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
      break;
    total += r > 0 ? (size_t)r : 0;
  }
}

/* Reads the request head into HEAD.  Returns 0 with *HEAD_LEN the length
   through the blank line and *LEN what was read (bytes past the head
   belong to a body or a tunnel), an HTTP status to answer with, or -1
   when the client went away.  */
static int
read_head(struct proxy *p, int fd, char *head, size_t *len, size_t *head_len)
{
  int64_t deadline = deadline_in(HEAD_TIMEOUT_MS);
  *len = 0;
  for (;;) {
    if (*len == HEAD_MAX)
      return 431;
    if (wait_fd(p, fd, POLLIN, deadline) < 0)
      return errno == ETIMEDOUT ? 408 : -1;
    ssize_t r = recv(fd, head + *len, HEAD_MAX - *len, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
      continue;
    if (r <= 0)
      return -1;
    size_t from = *len > 3 ? *len - 3 : 0;
    *len += (size_t)r;
    char *end = memmem(head + from, *len - from, "\r\n\r\n", 4);
    if (end != NULL) {
      *head_len = (size_t)(end + 4 - head);
      return 0;
    }
  }
}

static bool
allowed(const struct proxy *p, const struct request *rq)
{
  for (size_t i = 0; i < p->nallow; i++)
    if (p->allow[i].port == rq->port && strcmp(p->allow[i].host, rq->host) == 0)
      return true;
  return false;
}

static void
note_refused(struct proxy *p, const char *dest)
{
  pthread_mutex_lock(&p->lock);
  if (!atomic_load(&p->refused_set)) {
    snprintf(p->refused, sizeof p->refused, "%s", dest);
    atomic_store(&p->refused_set, true);
  }
  pthread_mutex_unlock(&p->lock);
}

/* Resolves and connects to HOST:PORT.  Returns a connected non-blocking
   fd, or -1 with a reason for the client in WHY.  */
static int
dial(struct proxy *p, const char *host, uint16_t port, char *why, size_t why_size)
{
  char service[8];
  snprintf(service, sizeof service, "%u", port);
  struct addrinfo hints
      = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(host, service, &hints, &res);
  if (rc != 0) {
    snprintf(why, why_size, "cannot resolve %s: %s", host, gai_strerror(rc));
    return -1;
  }
  int64_t deadline = deadline_in(CONNECT_TIMEOUT_MS);
  int fd = -1, error = EHOSTUNREACH;
  for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      error = errno;
      continue;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    socklen_t len = sizeof error;
    if (errno != EINPROGRESS)
      error = errno;
    else if (wait_fd(p, fd, POLLOUT, deadline) < 0)
      error = errno;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
      error = errno;
    if (error != 0) {
      close(fd);
      fd = -1;
      if (error == ETIMEDOUT || error == ECANCELED)
        break;
    }
  }
  freeaddrinfo(res);
  if (fd < 0)
    snprintf(why, why_size, "cannot connect to %s port %u: %s", host, port, strerror(error));
  return fd;
}

/* Counts N bytes from an origin.  Returns -1 once the cap is passed,
   after cutting every connection.  */
static int
count_in(struct proxy *p, size_t n)
{
  uint64_t total = atomic_fetch_add(&p->bytes_in, n) + n;
  if (p->max_bytes == 0 || total <= p->max_bytes)
    return 0;
  if (!atomic_exchange(&p->exceeded, true))
    signal_fd(p->cut_fd);
  return -1;
}

/* One direction of a relay.  */
struct dir {
  int from, to;
  bool open;        /* FROM may still be read */
  bool limited;     /* read at most LEFT more bytes from FROM */
  bool shut_at_eof; /* pass FROM's end on to TO as a half-close */
  bool from_origin; /* count what FROM sends against the cap */
  uint64_t left;
  size_t off, len; /* bytes in BUF not yet sent */
  char buf[RELAY_BUF];
};

/* Moves one chunk along D if its fds are ready.  Returns 1 when bytes
   moved, 0 when nothing did, -1 when the relay must end.  */
static int
step(struct proxy *p, struct dir *d, short from_ready, short to_ready)
{
  if (d->len == 0 && d->open && from_ready) {
    size_t want = d->limited && d->left < sizeof d->buf ? (size_t)d->left : sizeof d->buf;
    ssize_t r = recv(d->from, d->buf, want, MSG_DONTWAIT);
    if (r < 0)
      return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (r == 0) {
      d->open = false;
      if (d->shut_at_eof)
        shutdown(d->to, SHUT_WR);
      return 1;
    }
    if (d->from_origin && count_in(p, (size_t)r) < 0)
      return -1;
    d->off = 0;
    d->len = (size_t)r;
    if (d->limited && (d->left -= (size_t)r) == 0)
      d->open = false;
    return 1;
  }
  if (d->len > 0 && to_ready) {
    ssize_t w = send(d->to, d->buf + d->off, d->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0)
      return errno == EAGAIN || errno == EINTR ? 0 : -1;
    d->off += (size_t)w;
    d->len -= (size_t)w;
    return 1;
  }
  return 0;
}

/* Relays between the client (UP->from) and the origin (DOWN->from) until
   both ends are closed, or with ONE_SHOT until the origin's, or until
   nothing moves for IDLE_TIMEOUT_MS.  */
static void
relay(struct proxy *p, struct dir *up, struct dir *down, bool one_shot)
{
  int64_t idle = deadline_in(IDLE_TIMEOUT_MS);
  for (;;) {
    bool down_done = !down->open && down->len == 0;
    if (down_done && (one_shot || (!up->open && up->len == 0)))
      return;
    short cev = 0, oev = 0;
    if (up->len > 0)
      oev |= POLLOUT;
    else if (up->open)
      cev |= POLLIN;
    if (down->len > 0)
      cev |= POLLOUT;
    else if (down->open)
      oev |= POLLIN;
    /* An fd nobody waits on is left out: poll would report its hang-up
       over and over.  */
    struct pollfd pfd[3] = { { cev ? up->from : -1, cev, 0 },
                             { oev ? down->from : -1, oev, 0 },
                             { p->cut_fd, POLLIN, 0 } };
    int ms = ms_until(idle);
    if (ms == 0)
      return;
    int r = poll(pfd, 3, ms);
    if (r < 0 && errno != EINTR)
      return;
    if (r <= 0)
      continue;
    if (pfd[2].revents)
      return;
    short in = POLLIN | POLLHUP | POLLERR, out = POLLOUT | POLLHUP | POLLERR;
    int a = step(p, up, pfd[0].revents & in, pfd[1].revents & out);
    int b = a < 0 ? -1 : step(p, down, pfd[1].revents & in, pfd[0].revents & out);
    if (a < 0 || b < 0)
      return;
    if (a > 0 || b > 0)
      idle = deadline_in(IDLE_TIMEOUT_MS);
  }
}

static void
serve(struct proxy *p, int client)
{
  char head[HEAD_MAX];
  size_t len, head_len;
  int rc = read_head(p, client, head, &len, &head_len);
  if (rc == 431)
    respond(p, client, "431 Request Header Fields Too Large",
            "kiln: the request head is larger than %d bytes\n", HEAD_MAX);
  else if (rc == 408)
    respond(p, client, "408 Request Timeout", "kiln: the request head took too long\n");
  if (rc != 0)
    return;

  struct request rq = { 0 };
  const char *why;
  const char *status = parse_request(head, head_len, &rq, &why);
  cleanup_free uint8_t *headers = rq.headers.data;
  if (status != NULL) {
    respond(p, client, status, "kiln: %s\n", why);
    return;
  }
  char dest[HOST_MAX + 16];
  bool v6 = strchr(rq.host, ':') != NULL;
  snprintf(dest, sizeof dest, "%s%s%s:%u", v6 ? "[" : "", rq.host, v6 ? "]" : "", rq.port);
  if (!allowed(p, &rq)) {
    note_refused(p, dest);
    respond(p, client, "403 Forbidden", "kiln: %s is not an allowed destination\n", dest);
    return;
  }
  char reason[512];
  cleanup_close int origin = dial(p, rq.host, rq.port, reason, sizeof reason);
  if (origin < 0) {
    respond(p, client, "502 Bad Gateway", "kiln: %s\n", reason);
    return;
  }

  cleanup_free struct dir *dirs = xzalloc(2 * sizeof *dirs);
  struct dir *up = &dirs[0], *down = &dirs[1];
  up->from = down->to = client;
  up->to = down->from = origin;
  down->open = down->shut_at_eof = down->from_origin = true;
  size_t extra = len - head_len;
  if (rq.connect) {
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    if (send_all(p, client, ok, sizeof ok - 1, deadline_in(SEND_TIMEOUT_MS)) < 0)
      return;
    /* Whatever the client sent after the head already belongs to the
       tunnel.  */
    memcpy(up->buf, head + head_len, extra);
    up->len = extra;
    up->open = up->shut_at_eof = true;
    relay(p, up, down, false);
    return;
  }

  struct buf out = { 0 };
  const char *slash = rq.path_len > 0 && rq.path[0] == '/' ? "" : "/";
  cleanup_free char *line
      = xasprintf("%s %s%.*s %.8s\r\n", rq.method, slash, (int)rq.path_len, rq.path, rq.version);
  buf_append(&out, line, strlen(line));
  buf_append(&out, rq.headers.data, rq.headers.len);
  if (!rq.has_host) {
    cleanup_free char *host = xasprintf("Host: %s\r\n", dest);
    buf_append(&out, host, strlen(host));
  }
  static const char close_hdr[] = "Connection: close\r\n\r\n";
  buf_append(&out, close_hdr, sizeof close_hdr - 1);
  rc = send_all(p, origin, out.data, out.len, deadline_in(SEND_TIMEOUT_MS));
  buf_free(&out);
  if (rc < 0)
    return;
  /* The body, and nothing after it: the client gets one request per
     connection, so bytes past the body (a pipelined request, perhaps to
     another host) are never read, let alone relayed.  */
  size_t pre = extra < rq.content_length ? extra : (size_t)rq.content_length;
  memcpy(up->buf, head + head_len, pre);
  up->len = pre;
  up->limited = true;
  up->left = rq.content_length - pre;
  up->open = up->left > 0;
  relay(p, up, down, true);
}

static void *
connection_main(void *arg)
{
  struct slot *s = arg;
  struct proxy *p = s->p;
  serve(p, s->client);
  close(s->client);
  pthread_mutex_lock(&p->lock);
  s->state = SLOT_DONE;
  pthread_cond_signal(&p->slot_freed);
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

/* A slot for a new connection, waiting while all are busy.  Under
   P->lock; NULL once the proxy stops.  */
static struct slot *
take_slot(struct proxy *p)
{
  for (;;) {
    if (p->stopping)
      return NULL;
    for (size_t i = 0; i < MAX_CONNS; i++) {
      struct slot *s = &p->slots[i];
      if (s->state == SLOT_DONE) {
        /* The thread has let go of the lock for good: joining is quick.  */
        pthread_join(s->thread, NULL);
        s->state = SLOT_FREE;
      }
      if (s->state == SLOT_FREE)
        return s;
    }
    pthread_cond_wait(&p->slot_freed, &p->lock);
  }
}

static void *
acceptor_main(void *arg)
{
  struct proxy *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->lock);
    struct slot *s = take_slot(p);
    pthread_mutex_unlock(&p->lock);
    if (s == NULL)
      return NULL;
    struct pollfd pfd[2] = { { p->listen_fd, POLLIN, 0 }, { p->stop_fd, POLLIN, 0 } };
    if (poll(pfd, 2, -1) < 0 || pfd[1].revents)
      continue; /* EINTR, or stopping: take_slot sees which */
    int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      /* Out of fds: wait a little rather than spin on the backlog.  */
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        poll(&pfd[1], 1, 100);
      continue;
    }
    if (atomic_load(&p->exceeded)) {
      static const char full[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n";
      if (send(fd, full, sizeof full - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* The client learns it from the closed connection instead.  */
      }
      close(fd);
      continue;
    }
    pthread_mutex_lock(&p->lock);
    s->p = p;
    s->client = fd;
    s->state = pthread_create(&s->thread, NULL, connection_main, s) == 0 ? SLOT_RUNNING : SLOT_FREE;
    pthread_mutex_unlock(&p->lock);
    if (s->state == SLOT_FREE)
      close(fd);
  }
}

struct proxy *
proxy_start(int listen_fd, const struct proxy_allow *allow, size_t nallow, uint64_t max_bytes,
            kiln_error_t *err)
{
  cleanup_close int lfd = listen_fd;
  if (set_cloexec(lfd, true) < 0 || set_nonblock(lfd, true) < 0) {
    kiln_error_make(err, errno, "proxy: listening socket");
    return NULL;
  }
  struct proxy *p = xzalloc(sizeof *p);
  p->allow = xzalloc((nallow ? nallow : 1) * sizeof *p->allow);
  for (size_t i = 0; i < nallow; i++) {
    const char *h = allow[i].host;
    size_t n = strlen(h);
    if (n > 2 && h[0] == '[' && h[n - 1] == ']')
      h++, n -= 2;
    char *copy = xstrndup(h, n);
    for (char *c = copy; *c; c++)
      if (*c >= 'A' && *c <= 'Z')
        *c = (char)(*c + 32);
    p->allow[i].host = copy;
    p->allow[i].port = allow[i].port;
  }
  p->nallow = nallow;
  p->max_bytes = max_bytes;
  p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  p->cut_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->slot_freed, NULL);
  int rc = p->stop_fd < 0 || p->cut_fd < 0 ? errno : 0;
  p->listen_fd = steal_fd(&lfd);
  if (rc == 0)
    rc = pthread_create(&p->acceptor, NULL, acceptor_main, p);
  p->acceptor_started = rc == 0;
  if (rc != 0) {
    kiln_error_make(err, rc, "proxy: start");
    proxy_stop(p);
    return NULL;
  }
  return p;
}

void
proxy_stop(struct proxy *p)
{
  if (p == NULL)
    return;
  pthread_mutex_lock(&p->lock);
  p->stopping = true;
  pthread_cond_broadcast(&p->slot_freed);
  pthread_mutex_unlock(&p->lock);
  if (p->acceptor_started) {
    signal_fd(p->stop_fd);
    signal_fd(p->cut_fd);
    pthread_join(p->acceptor, NULL);
  }
  /* Only the acceptor starts connection threads, and it is gone.  */
  for (size_t i = 0; i < MAX_CONNS; i++)
    if (p->slots[i].state != SLOT_FREE)
      pthread_join(p->slots[i].thread, NULL);
  for (size_t i = 0; i < p->nallow; i++)
    free((char *)p->allow[i].host);
  free(p->allow);
  close(p->listen_fd);
  if (p->stop_fd >= 0)
    close(p->stop_fd);
  if (p->cut_fd >= 0)
    close(p->cut_fd);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->slot_freed);
  free(p);
}

bool
proxy_exceeded(const struct proxy *p)
{
  return atomic_load(&p->exceeded);
}

const char *
proxy_first_refused(const struct proxy *p)
{
  return atomic_load(&p->refused_set) ? p->refused : "";
}

uint64_t
proxy_bytes_in(const struct proxy *p)
{
  return atomic_load(&p->bytes_in);
}
