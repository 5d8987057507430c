#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "mounts.h"
#include "records.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

struct session *
session_find(struct front *f, const char *id)
{
  for (struct session *s = f->sessions; s; s = s->next)
    if (strcmp(s->id, id) == 0)
      return s;
  return NULL;
}

/* Puts the cache's code for cell C into FB, an EXEC being built, when
   there is some; a miss is remembered, to fill the cache after the
   reply.  */
static void
put_compiled(struct front *f, struct request *c, struct fbuf *fb)
{
  if (!compiler_key(f, c->u.cell.code, c->u.cell.len, c->u.cell.key))
    return;
  size_t len = 0;
  cleanup_free uint8_t *code = cache_get(f->store, c->u.cell.key, &len);
  /* A hit too large to go with its source in one frame is compiled by
     the worker, as a miss is.  */
  if (code && fb->len + len + 64 <= f->limits.front_frame) {
    fbuf_put(fb, TAG_COMPILED, code, len);
    f->metrics.code_cache_hits++;
    return;
  }
  if (code == NULL) {
    cache_count_miss(f->store);
    c->u.cell.cache_miss = true;
  }
  f->metrics.code_cache_misses++;
}

/* Sends the next queued request of S to its worker, asking for a worker
   first when S has none (and, when S is hibernated, for its snapshot to
   be loaded before anything else).  */
void
session_dispatch(struct session *s)
{
  struct front *f = s->front;
  if (s->queue == NULL)
    return;
  if (s->state == S_HIBERNATED) {
    /* Its new worker loads the snapshot before anything queued runs,
       once there is a place for it under --max-sessions.  */
    kiln_error_t err = NULL;
    int room = hibernate_make_room(f, &err);
    if (room > 0)
      return;
    if (room < 0) {
      session_fail_queue(s, "SessionLimit", err->msg);
      kiln_error_release(&err);
      return;
    }
    if (session_workdir_claim(s, &err) < 0) {
      log_error(LOG_ERROR, &err, "cannot restore a session");
      session_fail_queue(s, "RestoreError", "the session's directory could not be made");
      return;
    }
    s->restore_pending = true;
    s->state = S_LOST;
  }
  if (s->state == S_LOST) {
    s->state = S_STARTING;
    zygote_spawnq_push(f, s);
    zygote_send_spawns(f);
    return;
  }
  if (s->state != S_IDLE)
    return;
  struct request *c = s->queue;
  s->queue = c->next;
  if (s->queue == NULL)
    s->queue_tail = NULL;
  s->nqueued--;
  c->next = NULL;
  if (c->cancelled) {
    if (c->kind == REQ_CELL)
      f->metrics.cells[FRONT_CELL_CANCELLED]++;
    else if (c->kind == REQ_SHELL)
      f->metrics.commands[FRONT_CELL_CANCELLED]++;
    request_free(c);
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
  if (c->kind == REQ_FILE && c->u.file.introspect) {
    fbuf_init(&fb, FRAME_INTROSPECT);
    fbuf_put_u64(&fb, TAG_KIND, c->u.file.introspect);
    fbuf_put(&fb, TAG_CODE, c->u.file.path, strlen(c->u.file.path));
    fbuf_put_u64(&fb, TAG_OFFSET, c->u.file.offset);
    fbuf_put_u64(&fb, TAG_MAX_BYTES, c->u.file.max_bytes);
    /* Interrupts at its deadline name the session's last cell.  */
    fbuf_put_u64(&fb, TAG_CELL_NO, s->execution_count);
  } else if (c->kind == REQ_FILE) {
    static const enum frame_type types[] = {
      [FRONT_FILE_LIST] = FRAME_FILE_LIST,   [FRONT_FILE_READ] = FRAME_FILE_READ,
      [FRONT_FILE_WRITE] = FRAME_FILE_WRITE, [FRONT_FILE_READ_PART] = FRAME_FILE_READ,
      [FRONT_FILE_MKDIR] = FRAME_FILE_MKDIR,
    };
    enum front_file_op op = c->u.file.op;
    fbuf_init(&fb, types[op]);
    fbuf_put_str(&fb, TAG_PATH, c->u.file.path);
    if (op == FRONT_FILE_WRITE)
      fbuf_put(&fb, TAG_DATA, c->u.file.data, c->u.file.len);
    if (op == FRONT_FILE_READ || op == FRONT_FILE_READ_PART)
      fbuf_put_u64(&fb, TAG_MAX_BYTES, c->u.file.max_bytes);
    /* A part read says so even from offset 0: without OFFSET the worker
       refuses a file larger than MAX_BYTES instead of cutting it.  */
    if (op == FRONT_FILE_READ_PART || (op == FRONT_FILE_WRITE && c->u.file.offset > 0))
      fbuf_put_u64(&fb, TAG_OFFSET, c->u.file.offset);
  } else if (c->kind == REQ_SHELL) {
    c->u.cell.started_wall_ms = wall_ms();
    shell_frame(s, c, &fb);
  } else {
    s->execution_count++;
    c->u.cell.started_wall_ms = wall_ms();
    fbuf_init(&fb, FRAME_EXEC);
    fbuf_put(&fb, TAG_CODE, c->u.cell.code, c->u.cell.len);
    fbuf_put_u64(&fb, TAG_CELL_NO, s->execution_count);
    put_compiled(f, c, &fb);
    /* Packages installed since its worker last heard: on sys.path for
       this cell.  */
    if (s->has_packages && (s->packages_changed || !s->w->site_told)) {
      fbuf_put_str(&fb, TAG_PATH, PACKAGES_PATH);
      s->packages_changed = false;
      s->w->site_told = true;
    }
  }
  fbuf_finish(&fb);
  worker_send(s->w, &fb);
  fbuf_free(&fb);
}

void
session_interrupt(struct session *s, int64_t now, bool cancel)
{
  if (s->kill_ns != 0 || s->w == NULL)
    return;
  /* Tagged with the cell, so that an interrupt that arrives after its
     cell ended is not taken for one meant for the next
     (kernel/py/interrupt.c).  */
  worker_signal(s->w, SIGINT, true, (int)s->execution_count);
  s->kill_ns = now + (int64_t)(s->front->cfg->grace_s * 1e9);
  if (s->running && s->running->kind == REQ_SHELL)
    s->kill_ns += SHELL_BACKSTOP_NS;
  s->cancel_interrupt = cancel;
}

void
session_free(struct session *s)
{
  /* A closed session's files go with it.  */
  artifacts_drop_all(s);
  cell_outputs_remove(s->workdir);
  cleanup_free char *owner = xasprintf("%s/" OWNER_FILE, s->workdir);
  unlink(owner);
  rmdir(s->workdir);
  install_session_forget(s->front, s->id);
  free(s->workdir);
  free(s->lost_reason);
  free(s->restored_note);
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
  /* Whose it is, so that a kiln starting after this one died unclean
     can tell it is nobody's (front_reap_stale_sessions).  */
  cleanup_free char *owner = xasprintf("%s/" OWNER_FILE, dir);
  int fd = open(owner, O_CREAT | O_TRUNC | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || write_full(fd, f->instance, strlen(f->instance)) < 0) {
    kiln_error_make(err, errno, "write %s", owner);
    if (fd >= 0)
      close(fd);
    rmdir(dir);
    free(dir);
    return -1;
  }
  close(fd);
  *out = dir;
  return 0;
}

int
session_workdir_claim(struct session *s, kiln_error_t *err)
{
  char *dir = NULL;
  if (make_workdir(s->front, s->id, &dir, err) < 0)
    return -1;
  free(s->workdir);
  s->workdir = dir;
  /* A hibernated session keeps what was installed for it.  */
  s->has_packages = install_session_has(s->front, s->id);
  return install_session_make(s->front, s->id, err);
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
  if (install_session_make(f, id, err) < 0) {
    rmdir(dir);
    free(dir);
    return NULL;
  }
  struct session *s = xzalloc(sizeof *s);
  s->front = f;
  snprintf(s->id, sizeof s->id, "%s", id);
  s->workdir = dir;
  s->state = S_LOST;
  s->created_at = s->last_used_at = time(NULL);
  return s;
}

/* Starts workers for spare sessions until there are cfg->spares.  */
void
spares_refill(struct front *f)
{
  /* Tearing down: a reply sent to a closing session must not start a
     new worker.  */
  if (f->closing)
    return;
  while (f->nspares < f->cfg->spares) {
    kiln_error_t err = NULL;
    struct session *s = session_new(f, &err);
    if (s == NULL) {
      log_error(LOG_ERROR, &err, "cannot prepare a spare session");
      return;
    }
    s->next = f->spares;
    f->spares = s;
    f->nspares++;
    s->state = S_STARTING;
    zygote_spawnq_push(f, s);
  }
  zygote_send_spawns(f);
}

void
spares_refill_soon(struct front *f)
{
  f->refill_asked = true;
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

/* Makes a session for a call that named none: a spare if there is one,
   else a new one, linked into the session table.  Returns NULL with ERR
   at the session limits.  */
struct session *
session_open(struct front *f, kiln_error_t *err)
{
  const struct kiln_config *cfg = f->cfg;
  /* Hibernated sessions hold no process and no open file: only the
     others count.  */
  size_t live = f->nsessions - hibernated_count(f);
  if (live >= f->max_sessions && f->max_sessions < cfg->max_sessions) {
    kiln_error_make(err, 0,
                    "%zu sessions are open, as many as this host's open-file limit allows "
                    "(--max-sessions is %zu; raise ulimit -n); close one with close_session",
                    live, cfg->max_sessions);
    return NULL;
  }
  if (live >= cfg->max_sessions) {
    kiln_error_make(err, 0,
                    "%zu sessions are open, the limit (--max-sessions); close one with "
                    "close_session",
                    live);
    return NULL;
  }
  struct session *s = spares_take(f);
  if (s == NULL && (s = session_new(f, err)) == NULL)
    return NULL;
  s->next = f->sessions;
  f->sessions = s;
  f->nsessions++;
  f->metrics.sessions_created++;
  s->active_ns = now_ns();
  return s;
}

int
front_open_session(struct front *f, char id[static 40], kiln_error_t *err)
{
  struct session *s = session_open(f, err);
  if (s == NULL)
    return -1;
  snprintf(id, 40, "%s", s->id);
  /* A spare has its worker (or is getting one); a new session asks.  */
  if (s->state == S_LOST) {
    s->state = S_STARTING;
    zygote_spawnq_push(f, s);
    zygote_send_spawns(f);
  }
  spares_refill_soon(f);
  return 0;
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
  bool created = session_id == NULL;
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
  } else if ((s = session_open(f, err)) == NULL)
    return -1;
  struct request *r
      = request_new_cell(code, len, timeout_s > 0 ? timeout_s : cfg->timeout_s, cb, ctx);
  r->new_session = created;
  session_enqueue(s, r);
  return f->next_handle;
}

int64_t
front_file_op(struct front *f, const char *session_id, enum front_file_op op, const char *path,
              size_t path_len, const uint8_t *data, size_t len, uint64_t max_bytes,
              front_file_cb cb, void *ctx, kiln_error_t *err)
{
  return front_file_op_at(f, session_id, op, path, path_len, 0, data, len, max_bytes, cb, ctx, err);
}

int64_t
front_file_op_at(struct front *f, const char *session_id, enum front_file_op op, const char *path,
                 size_t path_len, uint64_t offset, const uint8_t *data, size_t len,
                 uint64_t max_bytes, front_file_cb cb, void *ctx, kiln_error_t *err)
{
  /* Everything that can refuse the call is checked before a session is
     made for it: a refused call leaves no session behind.  */
  struct session *s = NULL;
  if (session_id) {
    s = session_find(f, session_id);
    if (s == NULL)
      return kiln_error_make(err, 0, "unknown session '%s'", session_id);
  } else if (op != FRONT_FILE_WRITE && op != FRONT_FILE_MKDIR)
    return kiln_error_make(err, 0, "a session_id is needed to list or read files");
  if (!rec_path_ok(path, path_len, op == FRONT_FILE_LIST)) {
    cleanup_free char *shown = utf8_excerpt(path, path_len, 200);
    return kiln_error_make(err, 0,
                           "'%s' is not a path under /work: use a relative path without '..', "
                           "'.' or empty parts",
                           shown);
  }
  if (offset > 0 && op != FRONT_FILE_WRITE && op != FRONT_FILE_READ_PART)
    return kiln_error_make(err, 0, "an offset is only for writing or reading part of a file");
  /* The worker refuses a frame larger than its limit by ending the
     session: a write that would not fit is refused here instead.  */
  if (op == FRONT_FILE_WRITE && len > f->limits.file_bytes)
    return kiln_error_make(err, 0, "%zu bytes is over the %zu-byte limit of one write", len,
                           f->limits.file_bytes);
  if (s && s->nqueued >= f->cfg->max_queued)
    return kiln_error_make(err, 0, "session %s already has %zu requests waiting (--max-queued)",
                           s->id, s->nqueued);
  bool created = s == NULL;
  if (created && (s = session_open(f, err)) == NULL)
    return -1;
  struct request *r = request_new_file(op, path, path_len, offset, data, len, max_bytes, cb, ctx);
  r->new_session = created;
  session_enqueue(s, r);
  return f->next_handle;
}

int
front_watch_output(struct front *f, int64_t handle, int interval_ms, size_t max_bytes,
                   front_output_cb cb, void *ctx)
{
  struct request *found = request_find(f, handle);
  if (found == NULL || found->kind == REQ_FILE || found->u.cell.watch)
    return -1;
  struct watch *w = xzalloc(sizeof *w);
  w->cb = cb;
  w->ctx = ctx;
  w->interval_ns = (int64_t)(interval_ms > 0 ? interval_ms : 0) * 1000000;
  w->max_bytes = max_bytes > 0 ? max_bytes : 1;
  found->u.cell.watch = w;
  return 0;
}

void
front_cancel(struct front *f, int64_t handle)
{
  if (install_cancel(f, handle))
    return;
  for (struct session *s = f->sessions; s; s = s->next) {
    if (s->running && s->running->handle == handle) {
      s->running->cancelled = true;
      session_interrupt(s, now_ns(), true);
      return;
    }
    for (struct request *r = s->queue; r; r = r->next)
      if (r->handle == handle) {
        r->cancelled = true;
        return;
      }
  }
}

int
front_interrupt(struct front *f, int64_t handle)
{
  for (struct session *s = f->sessions; s; s = s->next)
    if (s->running && s->running->handle == handle) {
      session_interrupt(s, now_ns(), true);
      return 0;
    }
  return -1;
}

/* Detaches S's worker and kills it; the worker is reaped later.  */
void
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
  s->closed = true;
  /* Closed by a caller (or expired): its snapshot goes too.  A server
     stopping keeps what it hibernated.  */
  if (!f->closing)
    store_session_forget(f->store, s->id, false);
  for (size_t i = 0; i < f->nspawn; i++)
    if (f->spawnq[i].s == s)
      f->spawnq[i].s = NULL;
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
  session_fail_queue(s, "SessionClosed", "the session was closed before this cell ran");
  session_drop_worker(s);
  if (f->closing && s->state == S_HIBERNATED) {
    /* kiln is stopping: a hibernated session's images stay for the next
       kiln on this KILN_HOME, which takes them over.  */
    artifacts_forget(s);
    free(s->workdir);
    free(s->lost_reason);
    free(s->restored_note);
    free(s);
    return 0;
  }
  session_free(s);
  return 0;
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
