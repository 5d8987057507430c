/* The compile helpers the daemon keeps: one per zygote's configuration,
   started when a front first asks for it and shared by the fronts on
   that zygote, as the zygote is.  A front's compile link connects here
   instead of starting a helper of its own (compiler_link.c); it speaks
   the helper's protocol, so what it stores in its code cache is still
   only what a helper compiled (DESIGN.md invariant 2).

   A front sends its next source only after the answer to the last, so
   the helper's queue holds at most one source per front.  The helper
   answers in order: each answer goes to the front that asked, found in
   the order the sources were sent.  */
#define _GNU_SOURCE
#include "internal.h"
#include "handoff.h"
#include "log.h"
#include "seccomp_policy.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* A source the helper holds longer is taken for one built to hang it:
   the helper is killed, and the fronts waiting on it reconnect later.  */
#define COMPILE_DEADLINE_NS (10 * 1000000000LL)

static void on_helper(struct loop *loop, int fd, uint32_t events, void *data);

static bool
attached(const struct conn *c, const struct zygote *z)
{
  return c->z == z && c->compiling;
}

/* Stops Z's helper (WHY, for the log): every front attached to it is
   dropped and reconnects after its own wait, as if its own helper had
   died; a front whose source was in the helper's hands does not send it
   again.  */
static void
helper_lost(struct zygote *z, const char *why)
{
  struct daemon *d = z->d;
  struct dmn_compiler *h = &z->comp;
  if (h->fd >= 0) {
    loop_del(d->loop, h->fd);
    close(h->fd);
    h->fd = -1;
  }
  if (h->pid > 0)
    kill(h->pid, SIGKILL);
  h->ready = false;
  h->nwaiting = 0;
  h->sent_ns = 0;
  link_in_reset(&h->in);
  buf_free(&h->outq);
  buf_free(&h->ready_frame);
  int64_t backoff = 100 * 1000000LL;
  for (int i = 0; i < h->failures && backoff < MAX_BACKOFF_NS; i++)
    backoff *= 2;
  h->failures++;
  h->restart_at = now_ns() + (backoff < MAX_BACKOFF_NS ? backoff : MAX_BACKOFF_NS);
  log_msg(LOG_WARN, "the compile helper %s", why);
  for (struct conn *c = d->conns, *next; c; c = next) {
    next = c->next;
    if (attached(c, z))
      dmn_conn_drop(c);
  }
}

static void
helper_start(struct zygote *z)
{
  struct dmn_compiler *h = &z->comp;
  kiln_error_t err = NULL;
  h->restart_at = 0;
  if (dmn_helper_spawn(z, "compiler", COMPILER_COMMAND, COMPILER_FD, &h->pid, &h->fd, &h->outq,
                       on_helper, &err)
      < 0) {
    log_error(LOG_ERROR, &err, "the compile helper");
    helper_lost(z, "could not be started");
  }
}

void
dmn_compiler_attach(struct zygote *z, struct conn *c)
{
  struct dmn_compiler *h = &z->comp;
  c->compiling = true;
  if (h->ready) {
    if (dmn_send_raw(c->fd, h->ready_frame.data, h->ready_frame.len, NULL, 0) < 0)
      dmn_conn_drop(c);
    return;
  }
  if (h->fd >= 0)
    return; /* told when the helper is ready */
  if (h->restart_at && now_ns() < h->restart_at) {
    /* Lost not long ago: the front tries again after its own wait.  */
    dmn_conn_drop(c);
    return;
  }
  helper_start(z);
}

void
dmn_compiler_request(struct zygote *z, struct conn *c, const struct frame *fr)
{
  struct dmn_compiler *h = &z->comp;
  const struct field *code = frame_get(fr, TAG_CODE);
  if (!h->ready || code == NULL) {
    dmn_conn_drop(c);
    return;
  }
  for (size_t i = 0; i < h->nwaiting; i++)
    if (h->waiting[i] == c) {
      /* A second source before the first's answer: not the protocol.  */
      dmn_conn_drop(c);
      return;
    }
  if (h->nwaiting == h->capwaiting) {
    h->capwaiting = h->capwaiting ? 2 * h->capwaiting : 8;
    h->waiting = xrealloc(h->waiting, h->capwaiting * sizeof *h->waiting);
  }
  h->waiting[h->nwaiting++] = c;
  if (h->sent_ns == 0)
    h->sent_ns = now_ns();
  struct fbuf fb;
  fbuf_init(&fb, FRAME_COMPILE);
  fbuf_put(&fb, TAG_CODE, code->data, code->len);
  fbuf_finish(&fb);
  buf_append(&h->outq, fb.data, fb.len);
  fbuf_free(&fb);
  if (link_flush(h->fd, &h->outq) < 0) {
    helper_lost(z, "could not be written to");
    return;
  }
  if (h->outq.len)
    loop_mod(z->d->loop, h->fd, EPOLLIN | EPOLLOUT, NULL);
}

void
dmn_compiler_forget(struct zygote *z, struct conn *c)
{
  for (size_t i = 0; i < z->comp.nwaiting; i++)
    if (z->comp.waiting[i] == c)
      z->comp.waiting[i] = NULL;
}

static void
helper_frame(struct zygote *z, struct frame *fr, const struct buf *raw)
{
  struct daemon *d = z->d;
  struct dmn_compiler *h = &z->comp;
  if (fr->type == FRAME_COMPILER_READY && !h->ready) {
    h->ready = true;
    buf_append(&h->ready_frame, raw->data, raw->len);
    for (struct conn *c = d->conns, *next; c; c = next) {
      next = c->next;
      if (attached(c, z) && dmn_send_raw(c->fd, raw->data, raw->len, NULL, 0) < 0)
        dmn_conn_drop(c);
    }
  } else if (fr->type == FRAME_COMPILED && h->ready && h->nwaiting > 0) {
    struct conn *c = h->waiting[0];
    memmove(h->waiting, h->waiting + 1, --h->nwaiting * sizeof *h->waiting);
    h->sent_ns = h->nwaiting ? now_ns() : 0;
    h->failures = 0;
    if (c && dmn_send_raw(c->fd, raw->data, raw->len, NULL, 0) < 0)
      dmn_conn_drop(c);
  } else {
    cleanup_free char *msg = NULL;
    if (fr->type == FRAME_COMPILER_FAILED)
      frame_get_str(fr, TAG_MESSAGE, true, &msg, NULL, NULL);
    cleanup_free char *why = xasprintf("could not start: %s", msg ? msg : "?");
    helper_lost(z, fr->type == FRAME_COMPILER_FAILED ? why : "broke the protocol");
  }
}

static void
on_helper(struct loop *loop, int fd, uint32_t events, void *data)
{
  struct zygote *z = data;
  struct dmn_compiler *h = &z->comp;
  if (events & EPOLLOUT) {
    if (link_flush(fd, &h->outq) < 0) {
      helper_lost(z, "could not be written to");
      return;
    }
    if (h->outq.len == 0)
      loop_mod(loop, fd, EPOLLIN, NULL);
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    return;
  ssize_t r = link_in_read(fd, &h->in);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return;
  if (r <= 0) {
    helper_lost(z, "exited");
    return;
  }
  struct buf raw = { 0 };
  while (h->fd == fd) {
    struct frame fr;
    uint8_t *payload = NULL;
    kiln_error_t err = NULL;
    int n = link_in_next(&h->in, COMPILE_MAX_FRAME, &fr, &payload, &raw, &err);
    if (n < 0) {
      log_error(LOG_ERROR, &err, "compile helper protocol error");
      helper_lost(z, "broke the protocol");
    } else if (n > 0)
      helper_frame(z, &fr, &raw);
    free(payload);
    if (n <= 0)
      break;
  }
  buf_free(&raw);
}

bool
dmn_compiler_reaped(struct zygote *z, pid_t pid)
{
  if (z->comp.pid != pid)
    return false;
  z->comp.pid = 0;
  if (z->comp.fd >= 0)
    helper_lost(z, "died");
  return true;
}

int64_t
dmn_compiler_deadline(const struct zygote *z)
{
  return z->comp.sent_ns ? z->comp.sent_ns + COMPILE_DEADLINE_NS : -1;
}

void
dmn_compiler_tick(struct zygote *z, int64_t now)
{
  if (z->comp.sent_ns && now >= z->comp.sent_ns + COMPILE_DEADLINE_NS)
    helper_lost(z, "took too long over one source");
}

void
dmn_compiler_free(struct zygote *z)
{
  struct dmn_compiler *h = &z->comp;
  if (h->fd >= 0) {
    loop_del(z->d->loop, h->fd);
    close(h->fd);
  }
  if (h->pid > 0)
    kill(h->pid, SIGKILL);
  link_in_reset(&h->in);
  buf_free(&h->outq);
  buf_free(&h->ready_frame);
  free(h->waiting);
  memset(h, 0, sizeof *h);
  h->fd = -1;
}
