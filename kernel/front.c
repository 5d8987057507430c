#define _GNU_SOURCE
#include "front.h"
#include "../capture/files.h"
#include "frame.h"
#include "output.h"
#include "cgroups.h"
#include "sandbox.h"
#include "util.h"
#include "zygote.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* The largest frame a worker may send: a reply carries at most the
   result (capped by the worker, but the front does not trust that) and a
   traceback.  Anything bigger is a lying worker.  */
#define WORKER_MAX_FRAME (32u << 20)
#define ZYGOTE_MAX_FRAME (1u << 20)
/* Output bytes read from one pipe per wakeup, so that a flooding worker
   cannot starve the others.  */
#define READ_CHUNK      (64u << 10)
#define READS_PER_EVENT 8
/* From EOF on a worker's control socket to killing it, if its init has
   not exited by itself by then.  */
#define EOF_GRACE_NS (500 * 1000000LL)
/* Consecutive zygote deaths before start-up is declared broken.  */
#define ZYGOTE_MAX_RESTARTS 5

enum session_state {
  S_STARTING,
  S_IDLE,
  S_RUNNING,
  S_LOST,
};

static const char *const state_names[] = { "starting", "idle", "running", "lost" };

/* A request queued for a session's worker: a cell of code, or a file
   operation (FRAME_FILE_*) served between cells.  */
struct cell {
  struct cell *next;
  int64_t handle;
  char *code;
  size_t len;
  double timeout_s;
  front_reply_cb cb; /* NULL once cancelled */
  void *ctx;
  bool new_session;
  int file_op;       /* 0 for code, else the FRAME_FILE_* type */
  front_file_cb fcb; /* for file operations */
  char *path;
  uint64_t max_bytes;
};

struct worker {
  struct worker *next; /* in front->workers */
  struct front *front;
  struct session *session; /* NULL once detached */
  pid_t pid;               /* the init of the worker's pid namespace */
  int ctl, out, err;
  int status;  /* the init writes the worker's wait status here */
  char cg[64]; /* its cgroups' name: the session id and a spawn serial */
  bool oom_told, pids_told;
  struct buf in, outq;
  struct output cap_out, cap_err;
  bool ready;
  int64_t kill_at; /* when to kill it if it has not exited by then */
  /* Why the front killed it (a protocol violation, EOF); NULL if it died
     on its own.  */
  char *fault;
  bool killed;
};

/* An image a cell produced, kept on disk in the session's directory.  */
struct artifact {
  char name[48];
  const char *mime; /* static */
  size_t size;
  uint32_t width, height;
  uint64_t cell;
};

struct session {
  struct session *next;
  struct front *front;
  char id[40];
  char *workdir;
  enum session_state state;
  struct worker *w;
  struct cell *queue, *queue_tail;
  size_t nqueued;
  struct cell *running;
  uint64_t execution_count;
  int64_t started_ns, deadline_ns, kill_ns; /* kill_ns != 0: interrupted */
  bool cancel_interrupt;                    /* the interrupt came from a cancel, not the clock */
  char *lost_reason;                        /* set while the next cell must say state was lost */
  time_t created_at, last_used_at;
  struct artifact *artifacts;
  size_t nartifacts;
  uint64_t artifact_serial;
};

/* Workers reaped before the zygote's SPAWNED named them.  */
struct early_exit {
  pid_t pid;
  int status;
};

struct front {
  const struct kiln_config *cfg;
  struct loop *loop;
  front_ready_cb ready_cb;
  void *ready_ctx;

  pid_t zygote_pid;
  int zygote;
  bool zygote_ready;
  bool zygote_ever_ready;
  int zygote_failures;
  struct buf zin, zoutq;
  /* fds received from the zygote ahead of the frame they belong to.  */
  int pending[FRAME_MAX_FDS];
  size_t npending;
  /* Sessions waiting for a worker, in the order SPAWN was sent (or will
     be, once the zygote is ready).  A NULL entry is a session closed
     while waiting: its worker is killed on arrival.  */
  struct session **spawnq;
  size_t nspawn, spawn_cap, spawn_sent;

  int sigfd;
  struct session *sessions;
  size_t nsessions;
  /* Sessions made ahead of demand, with a worker started (or starting)
     for each: a new session takes one instead of waiting for a fork.
     Their ids and directories are assigned up front so that a worker is
     set up for its session before anyone asks for it.  */
  struct session *spares;
  size_t nspares;
  struct worker *workers;
  struct early_exit early[64];
  size_t nearly;
  int64_t next_handle;
  uint64_t uid_seq, spawn_serial;
  /* Sessions whose cgroups still had tasks when last tried.  */
  char **cg_dead;
  size_t ncg_dead;
};

static void worker_fault(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void session_dispatch(struct session *s);
static void spares_refill(struct front *f);
static void zygote_start(struct front *f);

/* ---------------------------------------------------------------- buffers */

/* Writes as much of Q to FD as it takes without blocking.  Returns 0, or
   -1 when the peer is gone.  */
static int
flush_queue(int fd, struct buf *q)
{
  while (q->len > 0) {
    ssize_t r = send(fd, q->data, q->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (r < 0)
      return -1;
    buf_consume(q, (size_t)r);
  }
  return 0;
}

/* Extracts the next whole frame from IN into F (fields point into
   *PAYLOAD, a copy the caller frees).  Returns 1 for a frame, 0 when more
   bytes are needed, -1 with ERR for a malformed one.  */
static int
next_frame(struct buf *in, uint32_t max, struct frame *f, uint8_t **payload, kiln_error_t *err)
{
  if (in->len < FRAME_HDR_SIZE)
    return 0;
  int64_t len = frame_header_decode(in->data, &f->type, max);
  if (len < 0)
    return kiln_error_make(err, 0, "frame of type %u over the %u-byte limit", f->type, max);
  if (in->len < FRAME_HDR_SIZE + (size_t)len)
    return 0;
  *payload = xmalloc((size_t)len);
  memcpy(*payload, in->data + FRAME_HDR_SIZE, (size_t)len);
  buf_consume(in, FRAME_HDR_SIZE + (size_t)len);
  return frame_parse_fields(f, *payload, (size_t)len, err) < 0 ? -1 : 1;
}

/* ---------------------------------------------------------------- workers */

static void
worker_watch_out(struct worker *w)
{
  struct front *f = w->front;
  uint32_t ev = EPOLLIN | (w->outq.len ? EPOLLOUT : 0);
  loop_mod(f->loop, w->ctl, ev, NULL);
}

static void
worker_send(struct worker *w, const struct fbuf *fb)
{
  buf_append(&w->outq, fb->data, fb->len);
  if (flush_queue(w->ctl, &w->outq) < 0) {
    worker_fault(w, "the worker's control socket is closed");
    return;
  }
  if (w->outq.len)
    worker_watch_out(w);
}

/* Reads what a pipe holds into its output buffer.  At most
   READS_PER_EVENT chunks unless DRAIN, which reads until the pipe is
   empty (bounded by a large multiple, since a background process could
   write forever).  */
static void
read_pipe(struct worker *w, int *fd, struct output *o, bool drain)
{
  char chunk[READ_CHUNK];
  int limit = drain ? 4096 : READS_PER_EVENT;
  for (int i = 0; i < limit && *fd >= 0; i++) {
    ssize_t r = read(*fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return;
    if (r == 0) {
      /* Every writer is gone (the worker and what it started).  */
      loop_del(w->front->loop, *fd);
      close(*fd);
      *fd = -1;
      return;
    }
    output_add(o, chunk, (size_t)r);
  }
}

static void on_worker_ctl(struct loop *loop, int fd, uint32_t events, void *data);

static void
on_worker_pipe(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)loop;
  (void)events;
  struct worker *w = data;
  if (fd == w->out)
    read_pipe(w, &w->out, &w->cap_out, false);
  else if (fd == w->err)
    read_pipe(w, &w->err, &w->cap_err, false);
}

/* Kills W's whole process group.  Reaping and the final reply happen
   when SIGCHLD says it is gone.  */
static void
worker_kill(struct worker *w)
{
  if (w->pid > 0) {
    kill(-w->pid, SIGKILL);
    kill(w->pid, SIGKILL);
  }
  w->killed = true;
}

static void
worker_fault(struct worker *w, const char *fmt, ...)
{
  if (w->fault == NULL) {
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&w->fault, fmt, ap) < 0)
      xoom();
    va_end(ap);
  }
  if (w->ctl >= 0)
    loop_del(w->front->loop, w->ctl);
  worker_kill(w);
}

static void
worker_close_fds(struct worker *w)
{
  struct loop *loop = w->front->loop;
  int *fds[] = { &w->ctl, &w->out, &w->err, &w->status };
  for (size_t i = 0; i < 4; i++)
    if (*fds[i] >= 0) {
      loop_del(loop, *fds[i]);
      close(*fds[i]);
      *fds[i] = -1;
    }
}

static void
worker_free(struct worker *w)
{
  struct front *f = w->front;
  for (struct worker **pp = &f->workers; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      break;
    }
  worker_close_fds(w);
  buf_free(&w->in);
  buf_free(&w->outq);
  output_free(&w->cap_out);
  output_free(&w->cap_err);
  free(w->fault);
  free(w);
}

/* ---------------------------------------------------------------- replies */

static void
cell_free(struct cell *c)
{
  if (c == NULL)
    return;
  free(c->path);
  free(c->code);
  free(c);
}

/* Answers the running cell of S with R (whose output fields are filled
   here from the worker's buffers) and frees the cell.  */
static void
session_reply(struct session *s, struct cell_reply *r)
{
  struct cell *c = s->running;
  s->running = NULL;
  s->kill_ns = 0;
  s->last_used_at = time(NULL);
  r->session_id = s->id;
  r->new_session = c->new_session;
  r->duration_ms = (double)(now_ns() - s->started_ns) / 1e6;
  struct output empty = { 0 };
  struct output *oo = s->w ? &s->w->cap_out : &empty, *oe = s->w ? &s->w->cap_err : &empty;
  cleanup_free char *out = output_take(oo, &r->out_len, &r->out_dropped);
  cleanup_free char *err = output_take(oe, &r->err_len, &r->err_dropped);
  r->out = out;
  r->err = err;
  cleanup_free char *insecure = NULL;
  if (!s->front->cfg->sbx->jail) {
    insecure = xasprintf("%s%sThis session is NOT isolated: kiln runs with --insecure-no-sandbox.",
                         r->notice ? r->notice : "", r->notice ? " " : "");
    r->notice = insecure;
  }
  if (c->file_op) {
    /* A file operation cut short (the worker died, the session closed).  */
    struct file_reply fr = { .session_id = s->id, .status = EIO, .message = r->err_message };
    if (c->fcb)
      c->fcb(c->ctx, &fr);
  } else if (c->cb)
    c->cb(c->ctx, r);
  cell_free(c);
  /* Spares are replaced after a reply, not when one is taken: the forks
     would otherwise compete for the CPU with the cell being answered.  */
  spares_refill(s->front);
}

/* Replies to a cell that never reached a worker.  */
static void
cell_fail(struct session *s, struct cell *c, const char *type, const char *message)
{
  struct cell_reply r = {
    .session_id = s->id,
    .status = REPLY_ERROR,
    .execution_count = s->execution_count,
    .out = "",
    .err = "",
    .err_type = type,
    .err_message = message,
    .err_traceback = "",
    .err_lineno = -1,
    .err_offset = -1,
    .new_session = c->new_session,
  };
  if (c->file_op) {
    struct file_reply fr = { .session_id = s->id, .status = EIO, .message = message };
    if (c->fcb)
      c->fcb(c->ctx, &fr);
  } else if (c->cb)
    c->cb(c->ctx, &r);
  cell_free(c);
}

static void
fail_queue(struct session *s, const char *type, const char *message)
{
  while (s->queue) {
    struct cell *c = s->queue;
    s->queue = c->next;
    s->nqueued--;
    cell_fail(s, c, type, message);
  }
  s->queue_tail = NULL;
}

/* Describes a wait status for a reply: "was killed by SIGSEGV".  */
static char *
describe_exit(int status)
{
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    if (sig == SIGKILL)
      return xasprintf("was killed by SIGKILL (signal 9; the system may have run out of memory)");
    return xasprintf("was killed by %s (signal %d)", signal_name(sig), sig);
  }
  return xasprintf("exited with code %d", WEXITSTATUS(status));
}

/* The worker of S is gone (reaped, or killed and detached).  Answers the
   running cell, if any, and leaves S lost; the next cell gets a fresh
   worker.  */
static void
session_lose(struct session *s, enum reply_status status, const char *type, const char *why)
{
  struct worker *w = s->w;
  if (s->running) {
    cleanup_free char *msg
        = xasprintf("The session's worker %s; the session's state (variables, imports) was "
                    "lost. The next call with this session_id starts a fresh interpreter.",
                    why);
    struct cell_reply r = {
      .status = status,
      .execution_count = s->execution_count,
      .err_type = type,
      .err_message = msg,
      .err_traceback = "",
      .err_lineno = -1,
      .err_offset = -1,
      .state_lost = false,
      .notice = msg,
    };
    session_reply(s, &r);
  }
  if (w) {
    w->session = NULL;
    s->w = NULL;
  }
  free(s->lost_reason);
  s->lost_reason = xstrdup(why);
  s->state = S_LOST;
  s->execution_count = 0;
  /* Cells queued behind the lost one run in the replacement.  */
  if (s->queue)
    session_dispatch(s);
}

/* ---------------------------------------------------------------- worker frames */

static const char known_file_mime[] = FILE_MIME;

static const char *
static_mime(const char *m, size_t n)
{
  static const char *const known[]
      = { "image/png",     "image/jpeg", "image/svg+xml",    "text/plain", "text/html",
          "text/markdown", "text/latex", "application/json", FILE_MIME };
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strlen(known[i]) == n && memcmp(known[i], m, n) == 0)
      return strcmp(known[i], FILE_MIME) == 0 ? known_file_mime : known[i];
  return NULL;
}

/* Keeps an image of S on disk and records it; returns the artifact, or
   NULL (logged) when it could not be written.  */
static struct artifact *
artifact_store(struct session *s, const char *mime, const uint8_t *data, size_t len, uint32_t w,
               uint32_t h)
{
  cleanup_free char *dir = xasprintf("%s/artifacts", s->workdir);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    fprintf(stderr, "kiln: mkdir %s: %s\n", dir, strerror(errno));
    return NULL;
  }
  struct artifact a
      = { .mime = mime, .size = len, .width = w, .height = h, .cell = s->execution_count };
  snprintf(a.name, sizeof a.name, "cell%llu-%llu.%s", (unsigned long long)s->execution_count,
           (unsigned long long)++s->artifact_serial,
           strcmp(mime, "image/jpeg") == 0 ? "jpg" : "png");
  cleanup_free char *path = xasprintf("%s/%s", dir, a.name);
  int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || write_full(fd, data, len) < 0) {
    fprintf(stderr, "kiln: write %s: %s\n", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  close(fd);
  s->artifacts = xrealloc(s->artifacts, (s->nartifacts + 1) * sizeof *s->artifacts);
  s->artifacts[s->nartifacts] = a;
  return &s->artifacts[s->nartifacts++];
}

/* Parses the worker's packed outputs (worker.c put_outputs) into *OUT,
   storing images as artifacts.  Returns how many; *STRINGS holds the
   strings the outputs point to (the caller frees each and the array).
   Anything malformed ends the parse: a lying worker loses its outputs,
   nothing more.  */
static size_t
parse_outputs(struct session *s, const struct field *fl, struct cell_output **out, char ***strings,
              size_t *nstrings)
{
  size_t n = 0, off = 0;
  *out = NULL;
  *strings = NULL;
  *nstrings = 0;
  if (fl == NULL)
    return 0;
  while (off + 16 <= fl->len) {
    const uint8_t *p = fl->data + off;
    uint16_t ml, nl;
    uint32_t dl, w, h;
    memcpy(&ml, p, 2);
    memcpy(&nl, p + 2, 2);
    memcpy(&dl, p + 4, 4);
    memcpy(&w, p + 8, 4);
    memcpy(&h, p + 12, 4);
    if ((size_t)ml + nl + dl > fl->len - off - 16)
      break;
    const char *mime = (const char *)p + 16;
    const uint8_t *data = p + 16 + ml + nl;
    off += 16 + (size_t)ml + nl + dl;
    bool is_inline = ml > 7 && memcmp(mime + ml - 7, ";inline", 7) == 0;
    const char *m = static_mime(mime, is_inline ? ml - 7u : ml);
    if (m == NULL)
      continue;
    if (is_inline) {
      /* The downscaled copy of the image just before it.  */
      if (n > 0 && (*out)[n - 1].uri && strcmp((*out)[n - 1].mime, m) == 0) {
        (*out)[n - 1].inline_data = data;
        (*out)[n - 1].inline_len = dl;
        (*out)[n - 1].inline_width = w;
        (*out)[n - 1].inline_height = h;
      }
      continue;
    }
    struct cell_output o = { .mime = m, .data = data, .len = dl, .width = w, .height = h };
    *strings = xrealloc(*strings, (*nstrings + 2) * sizeof **strings);
    if (m == known_file_mime) {
      /* A file the cell created or changed under /work: NAME is its
         path, WIDTH its size.  */
      const char *path = mime + ml;
      if (!files_path_ok(path, nl, false))
        continue;
      char *name = xstrndup(path, nl);
      char *uri = xasprintf("kiln://sessions/%s/files/%s", s->id, name);
      (*strings)[(*nstrings)++] = name;
      (*strings)[(*nstrings)++] = uri;
      o.name = name;
      o.uri = uri;
      o.data = (const uint8_t *)"";
      o.len = w;
      o.width = o.height = 0;
      *out = xrealloc(*out, (n + 1) * sizeof **out);
      (*out)[n++] = o;
      continue;
    }
    if (strncmp(m, "image/", 6) == 0 && strcmp(m, "image/svg+xml") != 0) {
      struct artifact *a = artifact_store(s, m, data, dl, w, h);
      if (a == NULL)
        continue;
      char *name = xstrdup(a->name);
      char *uri = xasprintf("kiln://sessions/%s/artifacts/%s", s->id, a->name);
      (*strings)[(*nstrings)++] = name;
      (*strings)[(*nstrings)++] = uri;
      o.name = name;
      o.uri = uri;
    } else {
      /* Text forms must be valid UTF-8 for JSON.  */
      size_t tl;
      char *text = utf8_sanitize((const char *)data, dl, &tl);
      (*strings)[(*nstrings)++] = text;
      o.data = (const uint8_t *)text;
      o.len = tl;
      o.name = "";
    }
    *out = xrealloc(*out, (n + 1) * sizeof **out);
    (*out)[n++] = o;
  }
  return n;
}

static void
handle_done(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  kiln_error_t err = NULL;
  uint64_t status = 0, lineno = 0, offset = 0;
  if (s == NULL || s->running == NULL || s->state != S_RUNNING) {
    worker_fault(w, "the worker sent a reply with no cell running");
    return;
  }
  if (frame_get_u64(fr, TAG_STATUS, false, &status, &err) < 0 || status > CELL_STATUS_MAX
      || frame_get_u64(fr, TAG_ERR_LINENO, true, &lineno, &err) < 0
      || frame_get_u64(fr, TAG_ERR_OFFSET, true, &offset, &err) < 0) {
    worker_fault(w, "the worker sent a malformed reply: %s", err ? err->msg : "bad status");
    kiln_error_release(&err);
    return;
  }
  /* Everything the cell wrote is in the pipes by now (the worker flushes
     before DONE): collect it so it belongs to this cell.  */
  read_pipe(w, &w->out, &w->cap_out, true);
  read_pipe(w, &w->err, &w->cap_err, true);

  static const enum frame_tag tags[]
      = { TAG_RESULT, TAG_ERR_TYPE, TAG_ERR_MESSAGE, TAG_ERR_TRACEBACK };
  char *text[4] = { NULL };
  for (size_t i = 0; i < 4; i++) {
    const struct field *fl = frame_get(fr, tags[i]);
    if (fl)
      text[i] = utf8_sanitize((const char *)fl->data, fl->len, NULL);
  }
  cleanup_free char *notice = NULL;
  const char *message = text[2];
  if (status == CELL_INTERRUPTED && s->kill_ns != 0) {
    if (s->cancel_interrupt)
      notice = xstrdup("The cell was interrupted because the request was cancelled; the session's "
                       "state is kept.");
    else
      notice
          = xasprintf("The cell was interrupted at its %g s deadline; the session's state is kept.",
                      s->running->timeout_s);
    message = notice;
  }
  struct cell_output *outs;
  char **strings;
  size_t nstrings;
  size_t nouts = parse_outputs(s, frame_get(fr, TAG_OUTPUTS), &outs, &strings, &nstrings);
  uint64_t outs_dropped = 0;
  frame_get_u64(fr, TAG_OUTPUTS_DROPPED, true, &outs_dropped, NULL);
  struct cell_reply r = {
    .outputs = outs,
    .noutputs = nouts,
    .outputs_dropped = outs_dropped,
    .status = status == CELL_OK      ? REPLY_OK
              : status == CELL_ERROR ? REPLY_ERROR
                                     : REPLY_INTERRUPTED,
    .execution_count = s->execution_count,
    .result = text[0],
    .err_type = text[1],
    .err_message = message ? message : (text[1] ? "" : NULL),
    .err_traceback = text[3] ? text[3] : (text[1] ? "" : NULL),
    .err_lineno = frame_get(fr, TAG_ERR_LINENO) ? (int64_t)lineno : -1,
    .err_offset = frame_get(fr, TAG_ERR_OFFSET) ? (int64_t)offset : -1,
    .notice = notice,
  };
  const struct sbx_config *sbx = s->front->cfg->sbx;
  if (sbx->jail && sbx->cg.version && notice == NULL) {
    bool oom, pids;
    cg_session_events(&sbx->cg, w->cg, &oom, &pids);
    if (oom && !w->oom_told)
      notice = xasprintf(
          "A process of this session was killed for running out of memory (the session's limit "
          "is %zu MiB).",
          sbx->cg_limits.memory >> 20);
    else if (pids && !w->pids_told)
      notice = xasprintf(
          "This session reached its process limit (%u processes and threads): creating more "
          "failed.",
          sbx->cg_limits.pids);
    w->oom_told |= oom;
    w->pids_told |= pids;
    r.notice = notice;
  }
  if (s->lost_reason) {
    r.state_lost = true;
    if (notice == NULL)
      notice = xasprintf(
          "This cell ran in a fresh interpreter: the session's previous worker %s, and its "
          "variables and imports are gone.",
          s->lost_reason);
    r.notice = notice;
    free(s->lost_reason);
    s->lost_reason = NULL;
  }
  s->state = S_IDLE;
  session_reply(s, &r);
  for (size_t i = 0; i < 4; i++)
    free(text[i]);
  for (size_t i = 0; i < nstrings; i++)
    free(strings[i]);
  free(strings);
  free(outs);
  session_dispatch(s);
}

static void
handle_file_result(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  uint64_t status = 0;
  if (s == NULL || s->running == NULL || s->running->file_op == 0
      || frame_get_u64(fr, TAG_STATUS, false, &status, NULL) < 0) {
    worker_fault(w, "the worker sent a file result nobody asked for");
    return;
  }
  struct cell *c = s->running;
  const struct field *data = frame_get(fr, TAG_DATA), *listing = frame_get(fr, TAG_LISTING);
  if (data && data->len > c->max_bytes && c->file_op == FRAME_FILE_READ) {
    worker_fault(w, "the worker sent more file data than asked for");
    return;
  }
  cleanup_free char *message = NULL;
  const struct field *mf = frame_get(fr, TAG_MESSAGE);
  if (mf)
    message = utf8_sanitize((const char *)mf->data, mf->len, NULL);
  struct file_reply r = {
    .session_id = s->id,
    .status = (int)(status > 4096 ? EIO : status),
    .message = message,
    .data = data ? data->data : NULL,
    .len = data ? data->len : 0,
    .listing = listing ? listing->data : NULL,
    .listing_len = listing ? listing->len : 0,
  };
  s->running = NULL;
  s->state = S_IDLE;
  s->last_used_at = time(NULL);
  if (c->fcb)
    c->fcb(c->ctx, &r);
  cell_free(c);
  session_dispatch(s);
}

static void
handle_worker_frame(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  switch (fr->type) {
  case FRAME_WORKER_READY:
    if (w->ready || s == NULL || s->state != S_STARTING) {
      worker_fault(w, "the worker said it was ready twice");
      return;
    }
    w->ready = true;
    s->state = S_IDLE;
    session_dispatch(s);
    return;
  case FRAME_WORKER_FAILED: {
    cleanup_free char *msg = NULL;
    frame_get_str(fr, TAG_MESSAGE, true, &msg, NULL, NULL);
    if (w->ready) {
      worker_fault(w, "the worker sent a start-up failure after start-up");
      return;
    }
    cleanup_free char *text
        = xasprintf("the session's worker could not start: %s", msg ? msg : "unknown error");
    fprintf(stderr, "kiln: %s\n", text);
    worker_fault(w, "%s", text);
    if (s) {
      w->session = NULL;
      s->w = NULL;
      s->state = S_LOST;
      fail_queue(s, "WorkerStartError", text);
    }
    return;
  }
  case FRAME_DONE:
    handle_done(w, fr);
    return;
  case FRAME_FILE_RESULT:
    handle_file_result(w, fr);
    return;
  default:
    worker_fault(w, "the worker sent an unexpected frame (type %u)", fr->type);
  }
}

static void
on_worker_ctl(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)loop;
  struct worker *w = data;
  if (events & EPOLLOUT) {
    if (flush_queue(fd, &w->outq) < 0) {
      worker_fault(w, "the worker's control socket is closed");
      return;
    }
    if (w->outq.len == 0)
      worker_watch_out(w);
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    return;
  uint8_t chunk[READ_CHUNK];
  for (int i = 0; i < READS_PER_EVENT; i++) {
    int fds[FRAME_MAX_FDS];
    size_t nfds = 0;
    ssize_t r = frame_recv_some(fd, chunk, sizeof chunk, fds, &nfds);
    for (size_t k = 0; k < nfds; k++)
      close(fds[k]);
    if (nfds) {
      worker_fault(w, "the worker sent file descriptors");
      return;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (r <= 0) {
      /* EOF on the control socket: either the worker died (its init
         reports how and exits, SIGCHLD follows) or the cell closed
         fd 3.  Either way it is finished; the init gets a moment to
         report before it is killed, and the reply waits for SIGCHLD.  */
      loop_del(w->front->loop, fd);
      if (!w->killed && w->kill_at == 0)
        w->kill_at = now_ns() + EOF_GRACE_NS;
      return;
    }
    buf_append(&w->in, chunk, (size_t)r);
    if (w->in.len > WORKER_MAX_FRAME + FRAME_HDR_SIZE) {
      worker_fault(w, "the worker sent more than a frame's worth of data at once");
      return;
    }
    for (;;) {
      struct frame fr;
      uint8_t *payload = NULL;
      kiln_error_t err = NULL;
      int n = next_frame(&w->in, WORKER_MAX_FRAME, &fr, &payload, &err);
      if (n < 0) {
        worker_fault(w, "the worker broke the protocol: %s", err->msg);
        kiln_error_release(&err);
        free(payload);
        return;
      }
      if (n == 0)
        break;
      handle_worker_frame(w, &fr);
      free(payload);
      if (w->fault || w->killed || w->session == NULL)
        return;
    }
  }
}

/* Removes the cgroups named NAME, now or, while killed tasks are still
   leaving them, on a later tick.  */
static void
cg_forget(struct front *f, const char *name)
{
  const struct cg_host *cg = &f->cfg->sbx->cg;
  if (cg_session_remove(cg, name) == 0)
    return;
  f->cg_dead = xrealloc(f->cg_dead, (f->ncg_dead + 1) * sizeof *f->cg_dead);
  f->cg_dead[f->ncg_dead++] = xstrdup(name);
}

static void
cg_retry(struct front *f)
{
  const struct cg_host *cg = &f->cfg->sbx->cg;
  for (size_t i = 0; i < f->ncg_dead;) {
    if (cg_session_remove(cg, f->cg_dead[i]) == 0) {
      free(f->cg_dead[i]);
      f->cg_dead[i] = f->cg_dead[--f->ncg_dead];
    } else
      i++;
  }
}

/* The worker process W is gone: STATUS is its wait status.  */
static void
worker_reaped(struct worker *w, int status)
{
  struct session *s = w->session;
  /* A DONE frame sent just before exiting is still worth reading.  */
  if (w->ctl >= 0 && !w->fault && s && s->running)
    on_worker_ctl(w->front->loop, w->ctl, EPOLLIN, w);
  s = w->session;
  if (w->out >= 0)
    read_pipe(w, &w->out, &w->cap_out, true);
  if (w->err >= 0)
    read_pipe(w, &w->err, &w->cap_err, true);
  /* The init reports the worker's own status; if it has none (it was
     killed itself), its status is the session's.  */
  int32_t real;
  if (w->status >= 0 && read(w->status, &real, sizeof real) == (ssize_t)sizeof real)
    status = real;
  struct front *f = w->front;
  const struct sbx_config *sbx = f->cfg->sbx;
  bool oom = false, pids = false;
  if (sbx->jail && sbx->cg.version) {
    cg_session_events(&sbx->cg, w->cg, &oom, &pids);
    cg_forget(f, w->cg);
  }
  if (s) {
    cleanup_free char *why
        = w->fault ? xasprintf("was stopped: %s", w->fault)
          : oom && WIFSIGNALED(status)
              ? xasprintf("was killed: the session ran out of memory (its limit is %zu MiB)",
                          sbx->cg_limits.memory >> 20)
              : describe_exit(status);
    session_lose(s, REPLY_CRASHED, "WorkerCrashed", why);
  }
  worker_free(w);
}

/* ---------------------------------------------------------------- sessions */

static struct session *
session_find(struct front *f, const char *id)
{
  for (struct session *s = f->sessions; s; s = s->next)
    if (strcmp(s->id, id) == 0)
      return s;
  return NULL;
}

static void
spawnq_push(struct front *f, struct session *s)
{
  if (f->nspawn == f->spawn_cap) {
    f->spawn_cap = f->spawn_cap ? f->spawn_cap * 2 : 16;
    f->spawnq = xrealloc(f->spawnq, f->spawn_cap * sizeof *f->spawnq);
  }
  f->spawnq[f->nspawn++] = s;
}

static void
zygote_send_spawns(struct front *f)
{
  if (!f->zygote_ready)
    return;
  for (; f->spawn_sent < f->nspawn; f->spawn_sent++) {
    struct session *s = f->spawnq[f->spawn_sent];
    const struct sbx_config *sbx = f->cfg->sbx;
    kiln_error_t err = NULL;
    /* The session's cgroups exist before its middle process joins them
       (a failure surfaces as the spawn's failure).  Each worker gets its
       own, named by the session and a serial, so a replacement never
       shares one with the processes of its predecessor.  */
    char name[64];
    snprintf(name, sizeof name, "%s.%llu", s ? s->id : "closed",
             (unsigned long long)++f->spawn_serial);
    if (s && sbx->jail && sbx->cg.version
        && cg_session_create(&sbx->cg, name, &sbx->cg_limits, &err) < 0) {
      fprintf(stderr, "kiln: cgroups for session %s: %s\n", s->id, err->msg);
      kiln_error_release(&err);
    }
    struct fbuf fb;
    fbuf_init(&fb, FRAME_SPAWN);
    fbuf_put_str(&fb, TAG_SESSION_ID, name);
    fbuf_put_u64(&fb, TAG_UID, (uint64_t)(sbx->uid_base + (f->uid_seq++ % 60000)));
    fbuf_finish(&fb);
    buf_append(&f->zoutq, fb.data, fb.len);
    fbuf_free(&fb);
  }
  if (flush_queue(f->zygote, &f->zoutq) == 0 && f->zoutq.len)
    loop_mod(f->loop, f->zygote, EPOLLIN | EPOLLOUT, NULL);
}

/* Sends the next queued cell of S to its worker, asking for a worker
   first when S has none.  */
static void
session_dispatch(struct session *s)
{
  struct front *f = s->front;
  if (s->queue == NULL)
    return;
  if (s->state == S_LOST) {
    s->state = S_STARTING;
    spawnq_push(f, s);
    zygote_send_spawns(f);
    return;
  }
  if (s->state != S_IDLE)
    return;
  struct cell *c = s->queue;
  s->queue = c->next;
  if (s->queue == NULL)
    s->queue_tail = NULL;
  s->nqueued--;
  c->next = NULL;
  if (c->cb == NULL && c->fcb == NULL) {
    /* Cancelled while queued.  */
    cell_free(c);
    session_dispatch(s);
    return;
  }
  s->running = c;
  s->state = S_RUNNING;
  s->started_ns = now_ns();
  s->deadline_ns = s->started_ns + (int64_t)(c->timeout_s * 1e9);
  s->kill_ns = 0;
  s->cancel_interrupt = false;
  struct fbuf fb;
  if (c->file_op) {
    fbuf_init(&fb, (enum frame_type)c->file_op);
    fbuf_put_str(&fb, TAG_PATH, c->path);
    if (c->file_op == FRAME_FILE_WRITE)
      fbuf_put(&fb, TAG_DATA, c->code, c->len);
    if (c->file_op == FRAME_FILE_READ)
      fbuf_put_u64(&fb, TAG_MAX_BYTES, c->max_bytes);
  } else {
    s->execution_count++;
    fbuf_init(&fb, FRAME_EXEC);
    fbuf_put(&fb, TAG_CODE, c->code, c->len);
    fbuf_put_u64(&fb, TAG_CELL_NO, s->execution_count);
  }
  fbuf_finish(&fb);
  worker_send(s->w, &fb);
  fbuf_free(&fb);
}

static void
session_interrupt(struct session *s, int64_t now, bool cancel)
{
  if (s->kill_ns != 0 || s->w == NULL)
    return;
  kill(s->w->pid, SIGINT);
  s->kill_ns = now + (int64_t)(s->front->cfg->grace_s * 1e9);
  s->cancel_interrupt = cancel;
}

static void
session_free(struct session *s)
{
  /* A closed session's files go with it.  */
  for (size_t i = 0; i < s->nartifacts; i++) {
    cleanup_free char *path = xasprintf("%s/artifacts/%s", s->workdir, s->artifacts[i].name);
    unlink(path);
  }
  cleanup_free char *adir = xasprintf("%s/artifacts", s->workdir);
  rmdir(adir);
  rmdir(s->workdir);
  free(s->artifacts);
  free(s->workdir);
  free(s->lost_reason);
  free(s);
}

static char *
new_session_id(struct front *f)
{
  for (;;) {
    uint8_t raw[8];
    random_bytes(raw, sizeof raw);
    char id[17];
    for (size_t i = 0; i < 8; i++)
      snprintf(id + 2 * i, 3, "%02x", raw[i]);
    if (session_find(f, id) == NULL)
      return xstrdup(id);
  }
}

static int
make_workdir(struct front *f, const char *id, char **out, kiln_error_t *err)
{
  cleanup_free char *sessions = xasprintf("%s/sessions", f->cfg->home);
  if (mkdir(sessions, 0700) < 0 && errno != EEXIST)
    return kiln_error_make(err, errno, "mkdir %s", sessions);
  char *dir = xasprintf("%s/%s", sessions, id);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    free(dir);
    return kiln_error_make(err, errno, "mkdir session directory");
  }
  *out = dir;
  return 0;
}

/* Returns a new, unlinked session with its id and directory, or NULL
   with ERR.  */
static struct session *
session_new(struct front *f, kiln_error_t *err)
{
  cleanup_free char *id = new_session_id(f);
  char *dir = NULL;
  if (make_workdir(f, id, &dir, err) < 0)
    return NULL;
  struct session *s = xzalloc(sizeof *s);
  s->front = f;
  snprintf(s->id, sizeof s->id, "%s", id);
  s->workdir = dir;
  s->state = S_LOST;
  s->created_at = s->last_used_at = time(NULL);
  return s;
}

/* Starts workers for spare sessions until there are cfg->spares.  */
static void
spares_refill(struct front *f)
{
  while (f->nspares < f->cfg->spares) {
    kiln_error_t err = NULL;
    struct session *s = session_new(f, &err);
    if (s == NULL) {
      fprintf(stderr, "kiln: cannot prepare a spare session: %s\n", err->msg);
      kiln_error_release(&err);
      return;
    }
    s->next = f->spares;
    f->spares = s;
    f->nspares++;
    s->state = S_STARTING;
    spawnq_push(f, s);
  }
  zygote_send_spawns(f);
}

/* Takes a spare session, ready or on its way, or returns NULL.  */
static struct session *
spares_take(struct front *f)
{
  struct session **best = NULL;
  for (struct session **pp = &f->spares; *pp; pp = &(*pp)->next)
    if (best == NULL || (*pp)->state == S_IDLE)
      best = pp;
  if (best == NULL)
    return NULL;
  struct session *s = *best;
  *best = s->next;
  f->nspares--;
  s->next = NULL;
  /* Whatever happened to an idle spare's worker is not this session's
     history.  */
  free(s->lost_reason);
  s->lost_reason = NULL;
  s->created_at = s->last_used_at = time(NULL);
  return s;
}

int64_t
front_run_cell(struct front *f, const char *session_id, const char *code, size_t len,
               double timeout_s, front_reply_cb cb, void *ctx, kiln_error_t *err)
{
  const struct kiln_config *cfg = f->cfg;
  if (len > cfg->max_code)
    return kiln_error_make(err, 0, "the code is %zu bytes, over the %zu-byte limit (--max-code)",
                           len, cfg->max_code);
  if (timeout_s > cfg->max_timeout_s)
    return kiln_error_make(err, 0, "timeout_s %g is over the %g s limit (--max-timeout)", timeout_s,
                           cfg->max_timeout_s);
  struct session *s;
  bool created = false;
  if (session_id) {
    s = session_find(f, session_id);
    if (s == NULL)
      return kiln_error_make(
          err, 0,
          "unknown session '%s' (closed, or never created); omit session_id to start a new "
          "session",
          session_id);
    if (s->nqueued >= cfg->max_queued)
      return kiln_error_make(err, 0, "session %s already has %zu cells waiting (--max-queued)",
                             s->id, s->nqueued);
  } else {
    if (f->nsessions >= cfg->max_sessions)
      return kiln_error_make(
          err, 0, "%zu sessions are open, the limit (--max-sessions); close one with close_session",
          f->nsessions);
    s = spares_take(f);
    if (s == NULL && (s = session_new(f, err)) == NULL)
      return -1;
    s->next = f->sessions;
    f->sessions = s;
    f->nsessions++;
    created = true;
  }
  struct cell *c = xzalloc(sizeof *c);
  c->handle = ++f->next_handle;
  c->code = xmalloc(len ? len : 1);
  memcpy(c->code, code, len);
  c->len = len;
  c->timeout_s = timeout_s > 0 ? timeout_s : cfg->timeout_s;
  c->cb = cb;
  c->ctx = ctx;
  c->new_session = created;
  if (s->queue_tail)
    s->queue_tail->next = c;
  else
    s->queue = c;
  s->queue_tail = c;
  s->nqueued++;
  session_dispatch(s);
  return c->handle;
}

int64_t
front_file_op(struct front *f, const char *session_id, int op, const char *path, size_t path_len,
              const uint8_t *data, size_t len, uint64_t max_bytes, front_file_cb cb, void *ctx,
              kiln_error_t *err)
{
  struct session *s = session_find(f, session_id);
  if (s == NULL)
    return kiln_error_make(err, 0, "unknown session '%s'", session_id);
  if (!files_path_ok(path, path_len, op == FRAME_FILE_LIST))
    return kiln_error_make(
        err, 0,
        "'%.*s' is not a path under /work: use a relative path without '..', '.' "
        "or empty parts",
        (int)(path_len > 200 ? 200 : path_len), path);
  if (s->nqueued >= f->cfg->max_queued)
    return kiln_error_make(err, 0, "session %s already has %zu requests waiting (--max-queued)",
                           s->id, s->nqueued);
  struct cell *c = xzalloc(sizeof *c);
  c->handle = ++f->next_handle;
  c->file_op = op;
  c->path = xstrndup(path, path_len);
  c->code = xmalloc(len ? len : 1);
  if (len)
    memcpy(c->code, data, len);
  c->len = len;
  c->max_bytes = max_bytes;
  /* File operations are quick; a worker that takes longer is stuck.  */
  c->timeout_s = 10;
  c->fcb = cb;
  c->ctx = ctx;
  if (s->queue_tail)
    s->queue_tail->next = c;
  else
    s->queue = c;
  s->queue_tail = c;
  s->nqueued++;
  session_dispatch(s);
  return c->handle;
}

void
front_cancel(struct front *f, int64_t handle)
{
  for (struct session *s = f->sessions; s; s = s->next) {
    if (s->running && s->running->handle == handle) {
      s->running->cb = NULL;
      s->running->fcb = NULL;
      session_interrupt(s, now_ns(), true);
      return;
    }
    for (struct cell *c = s->queue; c; c = c->next)
      if (c->handle == handle) {
        c->cb = NULL;
        c->fcb = NULL;
        return;
      }
  }
}

/* Detaches S's worker and kills it; the worker is reaped later.  */
static void
session_drop_worker(struct session *s)
{
  if (s->w) {
    s->w->session = NULL;
    worker_kill(s->w);
    s->w = NULL;
  }
}

int
front_close_session(struct front *f, const char *session_id, kiln_error_t *err)
{
  struct session **pp = &f->sessions;
  while (*pp && strcmp((*pp)->id, session_id) != 0)
    pp = &(*pp)->next;
  struct session *s = *pp;
  if (s == NULL)
    return kiln_error_make(err, 0, "unknown session '%s'", session_id);
  *pp = s->next;
  f->nsessions--;
  for (size_t i = 0; i < f->nspawn; i++)
    if (f->spawnq[i] == s)
      f->spawnq[i] = NULL;
  if (s->running) {
    struct cell_reply r = {
      .status = REPLY_ERROR,
      .execution_count = s->execution_count,
      .err_type = "SessionClosed",
      .err_message = "the session was closed while this cell ran",
      .err_traceback = "",
      .err_lineno = -1,
      .err_offset = -1,
    };
    session_reply(s, &r);
  }
  fail_queue(s, "SessionClosed", "the session was closed before this cell ran");
  session_drop_worker(s);
  session_free(s);
  return 0;
}

char *
front_artifact_path(struct front *f, const char *session_id, const char *name, const char **mime,
                    kiln_error_t *err)
{
  struct session *s = session_find(f, session_id);
  if (s == NULL) {
    kiln_error_make(err, 0, "unknown session '%s'", session_id);
    return NULL;
  }
  /* Only names kiln gave out: nothing a client sends becomes a path.  */
  for (size_t i = 0; i < s->nartifacts; i++)
    if (strcmp(s->artifacts[i].name, name) == 0) {
      *mime = s->artifacts[i].mime;
      return xasprintf("%s/artifacts/%s", s->workdir, s->artifacts[i].name);
    }
  kiln_error_make(err, 0, "session %s has no artifact '%s'", session_id, name);
  return NULL;
}

void
front_each_artifact(struct front *f,
                    void (*fn)(void *ctx, const char *session_id, const char *name,
                               const char *mime, size_t size, uint32_t width, uint32_t height),
                    void *ctx)
{
  for (struct session *s = f->sessions; s; s = s->next)
    for (size_t i = 0; i < s->nartifacts; i++)
      fn(ctx, s->id, s->artifacts[i].name, s->artifacts[i].mime, s->artifacts[i].size,
         s->artifacts[i].width, s->artifacts[i].height);
}

struct session_info *
front_list_sessions(struct front *f, size_t *n)
{
  struct session_info *v = xzalloc((f->nsessions ? f->nsessions : 1) * sizeof *v);
  size_t i = 0;
  for (struct session *s = f->sessions; s; s = s->next, i++) {
    snprintf(v[i].session_id, sizeof v[i].session_id, "%s", s->id);
    v[i].state = state_names[s->state];
    v[i].pid = s->w ? s->w->pid : 0;
    v[i].execution_count = s->execution_count;
    v[i].queued = s->nqueued;
    v[i].created_at = s->created_at;
    v[i].last_used_at = s->last_used_at;
  }
  *n = i;
  return v;
}

/* ---------------------------------------------------------------- zygote */

static void
spawn_arrived(struct front *f, struct frame *fr)
{
  struct session *s = f->nspawn ? f->spawnq[0] : NULL;
  bool expected = f->nspawn > 0 && f->spawn_sent > 0;
  if (expected) {
    memmove(f->spawnq, f->spawnq + 1, (f->nspawn - 1) * sizeof *f->spawnq);
    f->nspawn--;
    f->spawn_sent--;
  }
  uint64_t pid = 0;
  bool ok = fr->type == FRAME_SPAWNED && fr->nfds == 4
            && frame_get_u64(fr, TAG_PID, false, &pid, NULL) == 0 && pid > 1;
  if (!ok || !expected) {
    for (size_t i = 0; i < fr->nfds; i++)
      close(fr->fds[i]);
    cleanup_free char *msg = NULL;
    frame_get_str(fr, TAG_MESSAGE, true, &msg, NULL, NULL);
    cleanup_free char *text
        = xasprintf("the zygote could not start a worker: %s", msg ? msg : "malformed reply");
    fprintf(stderr, "kiln: %s\n", text);
    if (s) {
      s->state = S_LOST;
      fail_queue(s, "WorkerStartError", text);
    }
    return;
  }
  struct worker *w = xzalloc(sizeof *w);
  w->front = f;
  w->pid = (pid_t)pid;
  w->ctl = fr->fds[0];
  w->out = fr->fds[1];
  w->err = fr->fds[2];
  w->status = fr->fds[3];
  cleanup_free char *name = NULL;
  frame_get_str(fr, TAG_SESSION_ID, true, &name, NULL, NULL);
  snprintf(w->cg, sizeof w->cg, "%s", name ? name : "");
  set_nonblock(w->status, true);
  output_init(&w->cap_out, f->cfg->max_output);
  output_init(&w->cap_err, f->cfg->max_output);
  w->next = f->workers;
  f->workers = w;
  set_nonblock(w->ctl, true);
  set_nonblock(w->out, true);
  set_nonblock(w->err, true);
  loop_add(f->loop, w->ctl, EPOLLIN, on_worker_ctl, w, NULL);
  loop_add(f->loop, w->out, EPOLLIN, on_worker_pipe, w, NULL);
  loop_add(f->loop, w->err, EPOLLIN, on_worker_pipe, w, NULL);

  /* It may already have been reaped (a start-up failure is quick).  */
  for (size_t i = 0; i < f->nearly; i++)
    if (f->early[i].pid == w->pid) {
      int status = f->early[i].status;
      f->early[i] = f->early[--f->nearly];
      if (s) {
        w->session = s;
        s->w = w;
      }
      worker_reaped(w, status);
      return;
    }
  if (s == NULL) {
    /* Its session was closed while the worker was being made.  */
    worker_kill(w);
    return;
  }
  w->session = s;
  s->w = w;
}

static void
zygote_ready(struct front *f, struct frame *fr)
{
  cleanup_free char *version = NULL, *preloaded = NULL, *failed = NULL;
  frame_get_str(fr, TAG_PYTHON_VERSION, true, &version, NULL, NULL);
  frame_get_str(fr, TAG_PRELOADED, true, &preloaded, NULL, NULL);
  frame_get_str(fr, TAG_PRELOAD_FAILED, true, &failed, NULL, NULL);
  f->zygote_ready = true;
  f->zygote_failures = 0;
  if (!f->zygote_ever_ready) {
    f->zygote_ever_ready = true;
    struct front_info info
        = { version ? version : "?", preloaded ? preloaded : "", failed ? failed : "" };
    if (f->ready_cb)
      f->ready_cb(f->ready_ctx, &info, NULL);
  }
  zygote_send_spawns(f);
}

static void
zygote_lost(struct front *f, const char *why)
{
  if (f->zygote >= 0) {
    loop_del(f->loop, f->zygote);
    close(f->zygote);
    f->zygote = -1;
  }
  if (f->zygote_pid > 0)
    kill(f->zygote_pid, SIGKILL);
  f->zygote_ready = false;
  for (size_t i = 0; i < f->npending; i++)
    close(f->pending[i]);
  f->npending = 0;
  buf_free(&f->zin);
  buf_free(&f->zoutq);
  /* Requests the dead zygote had not answered are sent again.  */
  f->spawn_sent = 0;
  f->zygote_failures++;
  fprintf(stderr, "kiln: the zygote %s\n", why);
  if (!f->zygote_ever_ready && f->zygote_failures >= 1) {
    kiln_error_t err = NULL;
    kiln_error_make(&err, 0, "the zygote %s", why);
    if (f->ready_cb)
      f->ready_cb(f->ready_ctx, NULL, err);
    kiln_error_release(&err);
    return;
  }
  if (f->zygote_failures > ZYGOTE_MAX_RESTARTS) {
    for (size_t i = 0; i < f->nspawn; i++)
      if (f->spawnq[i]) {
        f->spawnq[i]->state = S_LOST;
        fail_queue(f->spawnq[i], "WorkerStartError",
                   "the zygote keeps dying; no worker can be started");
      }
    f->nspawn = 0;
    f->zygote_failures = 0;
  }
  zygote_start(f);
}

static void
on_zygote(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)loop;
  struct front *f = data;
  if (events & EPOLLOUT) {
    if (flush_queue(fd, &f->zoutq) < 0) {
      zygote_lost(f, "closed its socket");
      return;
    }
    if (f->zoutq.len == 0)
      loop_mod(f->loop, fd, EPOLLIN, NULL);
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    return;
  uint8_t chunk[READ_CHUNK];
  int fds[FRAME_MAX_FDS];
  size_t nfds = 0;
  ssize_t r = frame_recv_some(fd, chunk, sizeof chunk, fds, &nfds);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return;
  if (r <= 0) {
    for (size_t i = 0; i < nfds; i++)
      close(fds[i]);
    zygote_lost(f, "exited");
    return;
  }
  /* SCM_RIGHTS fds arrive with the first byte of a SPAWNED frame; the
     zygote sends one frame at a time, so they belong to the frame whose
     header starts this chunk.  Keep them with the buffered bytes.  */
  for (size_t i = 0; i < nfds; i++) {
    if (f->npending < FRAME_MAX_FDS)
      f->pending[f->npending++] = fds[i];
    else
      close(fds[i]);
  }
  buf_append(&f->zin, chunk, (size_t)r);
  for (;;) {
    struct frame fr;
    uint8_t *payload = NULL;
    kiln_error_t err = NULL;
    int n = next_frame(&f->zin, ZYGOTE_MAX_FRAME, &fr, &payload, &err);
    if (n < 0) {
      fprintf(stderr, "kiln: zygote protocol error: %s\n", err->msg);
      kiln_error_release(&err);
      free(payload);
      zygote_lost(f, "broke the protocol");
      return;
    }
    if (n == 0)
      break;
    fr.nfds = 0;
    if (fr.type == FRAME_SPAWNED) {
      memcpy(fr.fds, f->pending, f->npending * sizeof *f->pending);
      fr.nfds = f->npending;
      f->npending = 0;
    }
    switch (fr.type) {
    case FRAME_ZYGOTE_READY:
      zygote_ready(f, &fr);
      break;
    case FRAME_SPAWNED:
    case FRAME_SPAWN_FAILED:
      spawn_arrived(f, &fr);
      break;
    case FRAME_ZYGOTE_FAILED: {
      cleanup_free char *msg = NULL;
      frame_get_str(&fr, TAG_MESSAGE, true, &msg, NULL, NULL);
      cleanup_free char *why = xasprintf("failed to start: %s", msg ? msg : "unknown error");
      free(payload);
      zygote_lost(f, why);
      return;
    }
    default:
      break;
    }
    free(payload);
  }
}

static void
zygote_start(struct front *f)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    fprintf(stderr, "kiln: socketpair for the zygote: %s\n", strerror(errno));
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "kiln: fork the zygote: %s\n", strerror(errno));
    close(sv[0]);
    close(sv[1]);
    return;
  }
  if (pid == 0) {
    /* The front's signal mask (SIGCHLD blocked for the signalfd) must
       not reach the zygote or its workers.  */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    zyg_main(sv[1], f->cfg);
  }
  close(sv[1]);
  f->zygote_pid = pid;
  f->zygote = sv[0];
  set_nonblock(f->zygote, true);
  loop_add(f->loop, f->zygote, EPOLLIN, on_zygote, f, NULL);
}

/* ---------------------------------------------------------------- signals, timers */

static void
reap(struct front *f)
{
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0)
      return;
    if (pid == f->zygote_pid) {
      f->zygote_pid = 0;
      if (f->zygote >= 0)
        zygote_lost(f, "died");
      continue;
    }
    struct worker *w = f->workers;
    while (w && w->pid != pid)
      w = w->next;
    if (w) {
      worker_reaped(w, status);
      continue;
    }
    /* Either a worker the zygote has not reported yet, or a process a
       cell started whose parent died (the front is their subreaper).  */
    if (f->nearly == sizeof f->early / sizeof f->early[0])
      memmove(f->early, f->early + 1, (--f->nearly) * sizeof *f->early);
    f->early[f->nearly++] = (struct early_exit){ pid, status };
  }
}

static void
on_signal(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)events;
  struct front *f = data;
  struct signalfd_siginfo si;
  while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGCHLD)
      reap(f);
    else
      loop_stop(loop);
  }
}

static int64_t
next_deadline(void *data)
{
  struct front *f = data;
  int64_t d = f->ncg_dead ? now_ns() + 20 * 1000000 : -1;
  for (struct worker *w = f->workers; w; w = w->next)
    if (w->kill_at && !w->killed && (d < 0 || w->kill_at < d))
      d = w->kill_at;
  for (struct session *s = f->sessions; s; s = s->next) {
    if (s->state != S_RUNNING)
      continue;
    int64_t t = s->kill_ns ? s->kill_ns : s->deadline_ns;
    if (d < 0 || t < d)
      d = t;
  }
  return d;
}

static void
tick(int64_t now, void *data)
{
  struct front *f = data;
  if (f->ncg_dead)
    cg_retry(f);
  for (struct worker *w = f->workers; w; w = w->next)
    if (w->kill_at && !w->killed && now >= w->kill_at)
      worker_kill(w);
  for (struct session *s = f->sessions; s; s = s->next) {
    if (s->state != S_RUNNING)
      continue;
    if (s->kill_ns == 0 && now >= s->deadline_ns)
      session_interrupt(s, now, false);
    else if (s->kill_ns != 0 && now >= s->kill_ns) {
      struct cell *c = s->running;
      cleanup_free char *why
          = s->cancel_interrupt ? xasprintf(
                "was killed: the cancelled cell did not stop within %g s of the interrupt",
                f->cfg->grace_s)
                                : xasprintf("was killed: the cell did not stop within %g s of the "
                                            "interrupt at its %g s deadline",
                                            f->cfg->grace_s, c->timeout_s);
      struct worker *w = s->w;
      session_lose(s, REPLY_KILLED, "Timeout", why);
      if (w)
        worker_kill(w);
    }
  }
}

/* ---------------------------------------------------------------- life cycle */

struct front *
front_new(const struct kiln_config *cfg, struct loop *loop, front_ready_cb ready, void *ctx,
          kiln_error_t *err)
{
  if (mkdir_p(cfg->home, 0700) < 0) {
    kiln_error_make(err, errno, "create KILN_HOME %s", cfg->home);
    return NULL;
  }
  /* Workers are double-forked from the zygote so that they end up as the
     front's children: the front alone waits for, signals and reaps them,
     and anything a cell leaves behind is reparented here too.  */
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
    kiln_error_make(err, errno, "prctl PR_SET_CHILD_SUBREAPER");
    return NULL;
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    kiln_error_make(err, errno, "signalfd");
    return NULL;
  }
  struct front *f = xzalloc(sizeof *f);
  f->cfg = cfg;
  f->loop = loop;
  f->ready_cb = ready;
  f->ready_ctx = ctx;
  f->zygote = -1;
  f->sigfd = sigfd;
  if (loop_add(loop, sigfd, EPOLLIN, on_signal, f, err) < 0) {
    close(sigfd);
    free(f);
    return NULL;
  }
  loop_set_timers(loop, next_deadline, tick, f);
  zygote_start(f);
  spares_refill(f);
  if (f->zygote < 0) {
    kiln_error_make(err, 0, "could not start the zygote");
    front_free(f);
    return NULL;
  }
  return f;
}

/* Sends SIGKILL to every direct child.  Workers' descendants are
   reparented to the front as their parents die, so repeating this until
   no child is left catches everything a cell started.  */
static void
kill_children(void)
{
  DIR *d = opendir("/proc/self/task");
  if (d == NULL)
    return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    cleanup_free char *path = xasprintf("/proc/self/task/%s/children", de->d_name);
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
      continue;
    int pid;
    while (fscanf(fp, "%d", &pid) == 1)
      if (pid > 1)
        kill(pid, SIGKILL);
    fclose(fp);
  }
  closedir(d);
}

void
front_free(struct front *f)
{
  if (f == NULL)
    return;
  while (f->sessions) {
    struct session *s = f->sessions;
    front_close_session(f, s->id, NULL);
  }
  while (f->spares) {
    struct session *s = f->spares;
    f->spares = s->next;
    for (size_t i = 0; i < f->nspawn; i++)
      if (f->spawnq[i] == s)
        f->spawnq[i] = NULL;
    session_drop_worker(s);
    /* A spare's directory was never used: leave nothing behind.  */
    rmdir(s->workdir);
    session_free(s);
  }
  f->nspares = 0;
  for (struct worker *w = f->workers; w; w = w->next)
    worker_kill(w);
  if (f->zygote_pid > 0)
    kill(f->zygote_pid, SIGKILL);
  if (f->zygote >= 0) {
    loop_del(f->loop, f->zygote);
    close(f->zygote);
  }
  int64_t give_up = now_ns() + 5 * (int64_t)1000000000;
  for (;;) {
    kill_children();
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == ECHILD)
      break;
    if (pid == 0) {
      if (now_ns() > give_up)
        break;
      struct timespec ts = { 0, 2000000 };
      nanosleep(&ts, NULL);
    }
  }
  while (f->workers) {
    if (f->cfg->sbx->jail && f->cfg->sbx->cg.version)
      cg_forget(f, f->workers->cg);
    worker_free(f->workers);
  }
  for (int i = 0; i < 100 && f->ncg_dead; i++) {
    cg_retry(f);
    struct timespec ts = { 0, 5000000 };
    if (f->ncg_dead)
      nanosleep(&ts, NULL);
  }
  for (size_t i = 0; i < f->ncg_dead; i++)
    free(f->cg_dead[i]);
  free(f->cg_dead);
  loop_del(f->loop, f->sigfd);
  close(f->sigfd);
  buf_free(&f->zin);
  buf_free(&f->zoutq);
  free(f->spawnq);
  free(f);
}
