/* The front's side of the compile helper (kernel/py/compiler.c) and of
   the code cache.  A cell that missed the cache is sent to the helper
   after its reply; what the helper answers is stored, and nothing else
   ever is: a worker's frames never reach the cache (DESIGN.md invariant
   2).  The helper is restarted when it dies, with a growing wait, and a
   source that was being compiled when it died or hung is not sent
   again.  */
#define _GNU_SOURCE
#include "handoff.h"
#include "internal.h"
#include "log.h"
#include "paths.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Sources waiting for the helper; past this, misses are not compiled.  */
#define COMPILE_QUEUE_MAX 64
/* A compile that takes longer is taken for a source built to hang the
   compiler: the helper is killed and that source never retried.  */
#define COMPILE_DEADLINE_NS (10 * 1000000000LL)
#define RESTART_MIN_NS      (100 * 1000000LL)
#define RESTART_MAX_NS      (30 * 1000000000LL)

struct compile_job {
  struct compile_job *next;
  uint8_t key[STORE_KEY_BYTES];
  char *code;
  size_t len;
};

static void
job_free(struct compile_job *j)
{
  free(j->code);
  free(j);
}

static void on_compiler(struct loop *loop, int fd, uint32_t events, void *data);

static void
send_next(struct front *f)
{
  struct compiler_link *c = &f->compiler;
  if (!c->ready || c->sent_ns || c->head == NULL)
    return;
  struct fbuf fb;
  fbuf_init(&fb, FRAME_COMPILE);
  fbuf_put(&fb, TAG_CODE, c->head->code, c->head->len);
  fbuf_finish(&fb);
  buf_append(&c->outq, fb.data, fb.len);
  fbuf_free(&fb);
  c->sent_ns = now_ns();
  if (link_flush(c->fd, &c->outq) < 0) {
    compiler_lost(f, "could not be written to");
    return;
  }
  loop_mod(f->loop, c->fd, EPOLLIN | (c->outq.len ? EPOLLOUT : 0), NULL);
}

/* The helper is started again after a wait that grows with each
   failure in a row.  */
static void
schedule_restart(struct compiler_link *c)
{
  c->failures++;
  int64_t wait = RESTART_MIN_NS;
  for (int i = 1; i < c->failures && wait < RESTART_MAX_NS; i++)
    wait *= 2;
  c->restart_at = now_ns() + (wait < RESTART_MAX_NS ? wait : RESTART_MAX_NS);
}

void
compiler_lost(struct front *f, const char *why)
{
  struct compiler_link *c = &f->compiler;
  if (c->fd >= 0) {
    loop_del(f->loop, c->fd);
    close(c->fd);
    c->fd = -1;
  }
  if (c->pid > 0)
    kill(c->pid, SIGKILL);
  /* The source in the helper's hands when it was lost may be what
     killed it.  */
  if (c->sent_ns && c->head) {
    struct compile_job *j = c->head;
    c->head = j->next;
    if (c->head == NULL)
      c->tail = NULL;
    c->njobs--;
    job_free(j);
  }
  c->sent_ns = 0;
  c->ready = false;
  buf_free(&c->in);
  buf_free(&c->outq);
  schedule_restart(c);
  log_msg(LOG_WARN, "the compile helper %s; cells compile in their workers until it is back", why);
}

void
compiler_start(struct front *f)
{
  struct compiler_link *c = &f->compiler;
  c->restart_at = 0;
  kiln_error_t err = NULL;
  const char *daemon = f->cfg->daemon_socket;
  if (daemon) {
    /* The daemon's helper for this configuration, shared with the other
       fronts on it: the link is the same, only its first frame says
       which helper.  */
    c->pid = 0;
    c->fd = daemon_link_connect(daemon);
    if (c->fd < 0) {
      log_msg(LOG_DEBUG, "the daemon's compile helper: %s", strerror(errno));
      schedule_restart(c);
      return;
    }
    set_nonblock(c->fd, true);
  } else if (link_spawn_self("compiler", COMPILER_COMMAND, COMPILER_FD, &c->pid, &c->fd, &err)
             < 0) {
    log_error(LOG_ERROR, &err, "the compile helper");
    c->pid = 0;
    c->fd = -1;
    c->failures++;
    c->restart_at = now_ns() + RESTART_MAX_NS;
    return;
  }
  struct fbuf fb;
  hof_encode_as(f->cfg, daemon ? FRAME_COMPILER_CONFIG : FRAME_CONFIG, &fb);
  buf_append(&c->outq, fb.data, fb.len);
  fbuf_free(&fb);
  if (loop_add(f->loop, c->fd, EPOLLIN | EPOLLOUT, on_compiler, f, &err) < 0) {
    log_msg(LOG_ERROR, "watch the compile helper: %s", err->msg);
    kiln_error_release(&err);
    compiler_lost(f, "could not be watched");
  }
}

static int
on_ready(struct front *f, struct frame *fr)
{
  struct compiler_link *c = &f->compiler;
  const struct field *magic = frame_get(fr, TAG_MAGIC);
  uint64_t optimize = 0, flags = 0;
  cleanup_free char *runtime = NULL;
  if (magic == NULL || magic->len == 0 || magic->len > sizeof c->salt.magic
      || frame_get_u64(fr, TAG_OPTIMIZE, false, &optimize, NULL) < 0
      || frame_get_u64(fr, TAG_FLAGS, false, &flags, NULL) < 0
      || frame_get_str(fr, TAG_RUNTIME, false, &runtime, NULL, NULL) < 0)
    return -1;
  /* kiln's version and the digest of the runtime that transforms cells:
     a changed transformation never meets the forms of the old one.  */
  snprintf(c->runtime, sizeof c->runtime, "%s+%s", KILN_VERSION, runtime);
  c->salt = (struct cache_salt){
    .magic_len = magic->len, .runtime = c->runtime, .flags = flags, .optimize = (int)optimize
  };
  memcpy(c->salt.magic, magic->data, magic->len);
  c->ready = true;
  return 0;
}

static int
on_compiled(struct front *f, struct frame *fr)
{
  struct compiler_link *c = &f->compiler;
  if (!c->sent_ns || c->head == NULL)
    return -1;
  struct compile_job *j = c->head;
  c->head = j->next;
  if (c->head == NULL)
    c->tail = NULL;
  c->njobs--;
  c->sent_ns = 0;
  c->failures = 0;
  const struct field *data = frame_get(fr, TAG_DATA);
  if (data && data->len)
    cache_put(f->store, j->key, &c->salt, data->data, data->len, f->cfg->cache_size);
  else {
    c->refused++;
    cleanup_free char *why = NULL;
    frame_get_str(fr, TAG_MESSAGE, true, &why, NULL, NULL);
    log_msg(LOG_DEBUG, "the compile helper did not compile a cell: %s", why ? why : "?");
  }
  job_free(j);
  return 0;
}

static void
on_compiler(struct loop *loop, int fd, uint32_t events, void *data)
{
  struct front *f = data;
  struct compiler_link *c = &f->compiler;
  if (events & EPOLLOUT) {
    if (link_flush(fd, &c->outq) < 0) {
      compiler_lost(f, "could not be written to");
      return;
    }
    loop_mod(loop, fd, EPOLLIN | (c->outq.len ? EPOLLOUT : 0), NULL);
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    return;
  uint8_t chunk[64 << 10];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n > 0) {
      buf_append(&c->in, chunk, (size_t)n);
      continue;
    }
    if (n == 0) {
      compiler_lost(f, "exited");
      return;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN)
      break;
    compiler_lost(f, "could not be read");
    return;
  }
  for (;;) {
    struct frame fr;
    uint8_t *payload = NULL;
    kiln_error_t err = NULL;
    int r = link_next_frame(&c->in, f->limits.front_frame, &fr, &payload, &err);
    if (r == 0)
      break;
    int ok = -1;
    if (r > 0) {
      if (fr.type == FRAME_COMPILER_READY && !c->ready)
        ok = on_ready(f, &fr);
      else if (fr.type == FRAME_COMPILED && c->ready)
        ok = on_compiled(f, &fr);
      else if (fr.type == FRAME_COMPILER_FAILED) {
        cleanup_free char *msg = NULL;
        frame_get_str(&fr, TAG_MESSAGE, true, &msg, NULL, NULL);
        log_msg(LOG_ERROR, "the compile helper could not start: %s", msg ? msg : "?");
      }
    }
    free(payload);
    kiln_error_release(&err);
    if (ok < 0) {
      compiler_lost(f, "broke the protocol or failed");
      return;
    }
  }
  send_next(f);
}

void
compiler_request(struct front *f, const uint8_t key[STORE_KEY_BYTES], const char *code, size_t len)
{
  struct compiler_link *c = &f->compiler;
  if (f->store == NULL || c->njobs >= COMPILE_QUEUE_MAX)
    return;
  for (struct compile_job *j = c->head; j; j = j->next)
    if (memcmp(j->key, key, STORE_KEY_BYTES) == 0)
      return;
  struct compile_job *j = xzalloc(sizeof *j);
  memcpy(j->key, key, STORE_KEY_BYTES);
  j->code = xmalloc(len ? len : 1);
  memcpy(j->code, code, len);
  j->len = len;
  if (c->tail)
    c->tail->next = j;
  else
    c->head = j;
  c->tail = j;
  c->njobs++;
  send_next(f);
}

bool
compiler_key(struct front *f, const char *code, size_t len, uint8_t key[STORE_KEY_BYTES])
{
  if (f->store == NULL || !f->compiler.ready)
    return false;
  cache_key(&f->compiler.salt, code, len, key);
  return true;
}

void
compiler_reaped(struct front *f)
{
  f->compiler.pid = 0;
  if (f->compiler.fd >= 0)
    compiler_lost(f, "died");
}

int64_t
compiler_deadline(struct front *f)
{
  struct compiler_link *c = &f->compiler;
  if (c->sent_ns)
    return c->sent_ns + COMPILE_DEADLINE_NS;
  return c->restart_at ? c->restart_at : -1;
}

void
compiler_tick(struct front *f, int64_t now)
{
  struct compiler_link *c = &f->compiler;
  if (c->sent_ns && now >= c->sent_ns + COMPILE_DEADLINE_NS)
    compiler_lost(f, "took too long over one source; it is not compiled again");
  if (c->restart_at && now >= c->restart_at && c->fd < 0 && !f->closing)
    compiler_start(f);
}

void
compiler_free(struct front *f)
{
  struct compiler_link *c = &f->compiler;
  if (c->fd >= 0) {
    loop_del(f->loop, c->fd);
    close(c->fd);
    c->fd = -1;
  }
  if (c->pid > 0)
    kill(c->pid, SIGKILL);
  while (c->head) {
    struct compile_job *j = c->head;
    c->head = j->next;
    job_free(j);
  }
  c->tail = NULL;
  c->njobs = 0;
  buf_free(&c->in);
  buf_free(&c->outq);
}
