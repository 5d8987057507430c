#define _GNU_SOURCE
#include "stdio.h"
#include "jsonrpc.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>

struct mcp_stdio {
  struct loop *loop;
  size_t max_line;
  mcp_line_cb on_line;
  mcp_eof_cb on_eof;
  void *ctx;
  char *in;
  size_t in_len, in_cap;
  /* Set while skipping the rest of a line that went over MAX_LINE.  */
  size_t discarding;
  struct buf out; /* what is not yet written to stdout */
  bool out_watched;
  bool eof;
  int in_flags, out_flags;
};

static void
deliver_lines(struct mcp_stdio *t)
{
  size_t start = 0;
  while (start < t->in_len) {
    char *nl = memchr(t->in + start, '\n', t->in_len - start);
    if (nl == NULL)
      break;
    size_t len = (size_t)(nl - (t->in + start));
    if (t->discarding) {
      size_t total = t->discarding + len;
      t->discarding = 0;
      t->on_line(t->ctx, NULL, 0, total);
    } else {
      size_t l = len;
      if (l > 0 && t->in[start + l - 1] == '\r')
        l--;
      if (l > 0)
        t->on_line(t->ctx, t->in + start, l, 0);
    }
    start += len + 1;
  }
  memmove(t->in, t->in + start, t->in_len - start);
  t->in_len -= start;
  if (t->in_len > t->max_line) {
    /* No newline within the limit: drop what we have and skip to the
       next newline, then answer with one error.  */
    t->discarding += t->in_len;
    t->in_len = 0;
  }
}

static void
on_stdin(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)events;
  struct mcp_stdio *t = data;
  for (int i = 0; i < 16; i++) {
    if (t->in_cap - t->in_len < 65536) {
      t->in_cap = t->in_cap ? t->in_cap * 2 : 131072;
      t->in = xrealloc(t->in, t->in_cap);
    }
    ssize_t r = read(fd, t->in + t->in_len, t->in_cap - t->in_len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (r <= 0) {
      /* A final line without a newline still counts.  */
      if (t->in_len > 0 && !t->discarding) {
        t->in[t->in_len++] = '\n';
        deliver_lines(t);
      }
      loop_del(loop, fd);
      t->eof = true;
      t->on_eof(t->ctx);
      return;
    }
    t->in_len += (size_t)r;
    deliver_lines(t);
    if (t->in_cap > 2 * t->max_line + 131072 && t->in_len < 65536) {
      /* Give back the memory a huge line made us take.  */
      t->in_cap = 131072;
      t->in = xrealloc(t->in, t->in_cap);
    }
  }
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
      /* The client is gone; nothing more can be said to it.  */
      off = t->out.len;
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
  (void)loop;
  (void)fd;
  (void)events;
  flush_out(data);
}

struct mcp_stdio *
mcp_stdio_new(struct loop *loop, size_t max_line, mcp_line_cb on_line, mcp_eof_cb on_eof, void *ctx,
              kiln_error_t *err)
{
  struct mcp_stdio *t = xzalloc(sizeof *t);
  t->loop = loop;
  t->max_line = max_line;
  t->on_line = on_line;
  t->on_eof = on_eof;
  t->ctx = ctx;
  t->in_flags = fcntl(0, F_GETFL);
  t->out_flags = fcntl(1, F_GETFL);
  set_nonblock(0, true);
  set_nonblock(1, true);
  if (loop_add(loop, 0, EPOLLIN, on_stdin, t, err) < 0) {
    /* A regular file or /dev/null cannot be polled: read it at once.  */
    if (err && *err && (*err)->status == EPERM) {
      kiln_error_release(err);
      on_stdin(loop, 0, EPOLLIN, t);
      while (!t->eof)
        on_stdin(loop, 0, EPOLLIN, t);
      return t;
    }
    mcp_stdio_free(t);
    return NULL;
  }
  return t;
}

void
mcp_stdio_send(struct mcp_stdio *t, json_t *msg)
{
  size_t len;
  char *line = jrpc_dump_line(msg, &len);
  buf_append(&t->out, line, len);
  free(line);
  flush_out(t);
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
  if (!t->eof)
    loop_del(t->loop, 0);
  if (t->out_watched)
    loop_del(t->loop, 1);
  /* Leave the descriptions as we found them: they may be shared with a
     terminal or a parent.  */
  if (t->in_flags >= 0)
    fcntl(0, F_SETFL, t->in_flags);
  if (t->out_flags >= 0)
    fcntl(1, F_SETFL, t->out_flags);
  free(t->in);
  buf_free(&t->out);
  free(t);
}
