#define _GNU_SOURCE
#include "stdio.h"
#include "conn.h"
#include "jsonrpc.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* Reads per wake-up: enough to keep up with a fast client, few enough
   that workers' frames are not kept waiting behind a flood of input.  */
#define READS_PER_WAKE 16
#define READ_CHUNK     65536

struct mcp_stdio {
  struct loop *loop;
  size_t max_line;
  struct mcp_conn *conn; /* owned */
  void (*done)(void *ctx);
  void *ctx;
  bool done_called;
  char *in;
  size_t in_len, in_cap;
  /* While skipping a line that went over MAX_LINE: its bytes so far, and
     its first ones (owned), kept for the refusal.  */
  size_t discarding;
  char *prefix;
  size_t prefix_len;
  /* An eventfd that is always readable, standing in for a stdin epoll
     refuses: each wake-up reads a chunk, as if stdin were ready.  -1
     when stdin itself is watched.  */
  int kick;
  struct buf out; /* what is not yet written to stdout */
  bool out_watched;
  bool out_broken;
  bool eof;
  int in_flags, out_flags;
};

static void
start_discarding(struct mcp_stdio *t, const char *start, size_t len)
{
  size_t keep = len < MCP_STDIO_KEPT_PREFIX ? len : MCP_STDIO_KEPT_PREFIX;
  t->prefix = xmalloc(keep + 1);
  memcpy(t->prefix, start, keep);
  t->prefix_len = keep;
  t->discarding = len;
}

static void
end_discarding(struct mcp_stdio *t, size_t tail)
{
  size_t total = t->discarding + tail;
  cleanup_free char *prefix = steal_pointer(&t->prefix);
  size_t n = t->prefix_len;
  t->discarding = 0;
  t->prefix_len = 0;
  mcp_conn_handle(t->conn, prefix, n, total);
}

static void
deliver_lines(struct mcp_stdio *t)
{
  size_t start = 0;
  while (start < t->in_len) {
    char *line = t->in + start;
    char *nl = memchr(line, '\n', t->in_len - start);
    if (nl == NULL)
      break;
    size_t len = (size_t)(nl - line);
    start += len + 1;
    if (t->discarding)
      end_discarding(t, len);
    else if (len > t->max_line)
      /* Arrived whole in one read, but over the limit all the same.  */
      mcp_conn_handle(t->conn, line, len < MCP_STDIO_KEPT_PREFIX ? len : MCP_STDIO_KEPT_PREFIX,
                      len);
    else {
      size_t l = len;
      if (l > 0 && line[l - 1] == '\r')
        l--;
      if (l > 0)
        mcp_conn_handle(t->conn, line, l, 0);
    }
  }
  memmove(t->in, t->in + start, t->in_len - start);
  t->in_len -= start;
  /* No newline within the limit: keep the line's start, drop the rest
     as it comes, and answer once its end arrives.  */
  if (t->discarding) {
    t->discarding += t->in_len;
    t->in_len = 0;
  } else if (t->in_len > t->max_line) {
    start_discarding(t, t->in, t->in_len);
    t->in_len = 0;
  }
}

static void
finished(void *ctx)
{
  struct mcp_stdio *t = ctx;
  if (!t->done_called) {
    t->done_called = true;
    t->done(t->ctx);
  }
}

static void
end_of_input(struct mcp_stdio *t)
{
  /* A final line without a newline still counts.  */
  if (t->discarding)
    end_discarding(t, 0);
  else if (t->in_len > 0) {
    t->in[t->in_len++] = '\n';
    deliver_lines(t);
  }
  if (t->kick >= 0) {
    loop_del(t->loop, t->kick);
    close(t->kick);
    t->kick = -1;
  } else
    loop_del(t->loop, 0);
  t->eof = true;
  /* The end of the input is not the end of the requests: what is still
     running is answered first.  */
  if (t->out_broken)
    finished(t);
  else
    mcp_conn_when_idle(t->conn, finished, t);
}

static void
read_input(struct mcp_stdio *t)
{
  for (int i = 0; i < READS_PER_WAKE && !t->eof; i++) {
    if (t->in_cap - t->in_len < READ_CHUNK + 1) {
      t->in_cap = t->in_cap ? t->in_cap * 2 : 2 * READ_CHUNK;
      t->in = xrealloc(t->in, t->in_cap);
    }
    /* One byte is left for the newline end_of_input may add.  */
    ssize_t r = read(0, t->in + t->in_len, t->in_cap - t->in_len - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (r <= 0) {
      end_of_input(t);
      return;
    }
    t->in_len += (size_t)r;
    deliver_lines(t);
    if (t->in_cap > 2 * t->max_line + 2 * READ_CHUNK && t->in_len < READ_CHUNK) {
      /* Give back the memory a huge line made us take.  */
      t->in_cap = 2 * READ_CHUNK;
      t->in = xrealloc(t->in, t->in_cap);
    }
  }
}

static void
on_stdin(struct loop *loop, int fd, uint32_t events, void *data)
{
  read_input(data);
}

static void on_stdout(struct loop *loop, int fd, uint32_t events, void *data);

static void
flush_out(struct mcp_stdio *t)
{
  size_t off = 0;
  while (off < t->out.len) {
    ssize_t r = write(1, t->out.data + off, t->out.len - off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (r < 0) {
      /* The client is gone; nothing more can be said to it, and once its
         input has ended too there is nothing to wait for.  */
      t->out_broken = true;
      off = t->out.len;
      if (t->eof)
        finished(t);
      break;
    }
    off += (size_t)r;
  }
  buf_consume(&t->out, off);
  bool want = t->out.len > 0;
  if (want != t->out_watched) {
    if (want)
      loop_add(t->loop, 1, EPOLLOUT, on_stdout, t, NULL);
    else
      loop_del(t->loop, 1);
    t->out_watched = want;
  }
}

static void
on_stdout(struct loop *loop, int fd, uint32_t events, void *data)
{
  flush_out(data);
}

static void
send_line(void *ctx, json_t *msg)
{
  struct mcp_stdio *t = ctx;
  size_t len;
  char *line = jrpc_dump_line(msg, &len);
  buf_append(&t->out, line, len);
  free(line);
  flush_out(t);
}

struct mcp_stdio *
mcp_stdio_new(struct loop *loop, struct mcp_server *s, void (*done)(void *ctx), void *ctx,
              kiln_error_t *err)
{
  struct mcp_stdio *t = xzalloc(sizeof *t);
  t->loop = loop;
  t->max_line = s->cfg->max_message;
  t->conn = mcp_conn_new(s, send_line, t);
  t->done = done;
  t->ctx = ctx;
  t->kick = -1;
  t->in_flags = fcntl(0, F_GETFL);
  t->out_flags = fcntl(1, F_GETFL);
  set_nonblock(0, true);
  set_nonblock(1, true);
  if (loop_add(loop, 0, EPOLLIN, on_stdin, t, err) == 0)
    return t;
  if (err == NULL || *err == NULL || (*err)->status != EPERM) {
    mcp_stdio_free(t);
    return NULL;
  }
  kiln_error_release(err);
  t->kick = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
  if (t->kick < 0) {
    kiln_error_make(err, errno, "eventfd");
    mcp_stdio_free(t);
    return NULL;
  }
  if (loop_add(loop, t->kick, EPOLLIN, on_stdin, t, err) < 0) {
    mcp_stdio_free(t);
    return NULL;
  }
  return t;
}

void
mcp_stdio_flush(struct mcp_stdio *t, int timeout_ms)
{
  while (t->out.len > 0) {
    struct pollfd p = { .fd = 1, .events = POLLOUT };
    if (poll(&p, 1, timeout_ms) <= 0)
      return;
    flush_out(t);
  }
}

void
mcp_stdio_free(struct mcp_stdio *t)
{
  if (t == NULL)
    return;
  if (t->kick >= 0) {
    loop_del(t->loop, t->kick);
    close(t->kick);
  } else if (!t->eof)
    loop_del(t->loop, 0);
  if (t->out_watched)
    loop_del(t->loop, 1);
  /* Leave the descriptions as we found them: they may be shared with a
     terminal or a parent.  */
  if (t->in_flags >= 0)
    fcntl(0, F_SETFL, t->in_flags);
  if (t->out_flags >= 0)
    fcntl(1, F_SETFL, t->out_flags);
  mcp_conn_free(t->conn);
  free(t->in);
  free(t->prefix);
  buf_free(&t->out);
  free(t);
}
