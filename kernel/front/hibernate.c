/* Hibernation: a session idle for --idle-hibernate, and every session
   when kiln serve stops, is snapshotted by its own worker (in the jail:
   the globals with cloudpickle, /work's files with tar) and its worker
   stopped.  The next request for it starts a worker that loads the
   snapshot before anything else, in the jail; the front only moves the
   bytes (store/sessions.c keeps them) and never unpickles them.  */
#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long a worker may take to write or load a snapshot: user code
   runs in both (__reduce__, __setstate__), and a snapshot may be large.  */
#define SNAPSHOT_DEADLINE_NS (120 * 1000000000LL)
/* How often hibernated sessions are checked against --session-ttl: a
   minute, or a quarter of a shorter TTL.  */
#define EXPIRE_EVERY_NS(f)                                                                         \
  ((int64_t)((f)->cfg->session_ttl_s < 240 ? (f)->cfg->session_ttl_s * 0.25e9 : 60e9))

static char *
snapshots_dir(const struct front *f)
{
  return xasprintf("%s/snapshots", f->cfg->home);
}

size_t
hibernated_count(const struct front *f)
{
  size_t n = 0;
  for (const struct session *s = f->sessions; s; s = s->next)
    n += s->state == S_HIBERNATED;
  return n;
}

/* S's record as it is hibernated now, without its snapshot's fields;
   ARTIFACTS (artifacts_encode) is borrowed.  */
static struct session_row
row_of(const struct session *s, const char *artifacts)
{
  return (struct session_row){
    .id = s->id,
    .created_ms = (int64_t)s->created_at * 1000,
    .last_used_ms = (int64_t)s->last_used_at * 1000,
    .hibernated_ms = wall_ms(),
    .execution_count = s->execution_count,
    .artifacts = artifacts,
  };
}

/* Records S as hibernated without a snapshot (NOTE says why): its next
   worker starts fresh and says so.  */
static void
record_without(struct session *s, const char *note)
{
  cleanup_free char *artifacts = artifacts_encode(s);
  struct session_row row = row_of(s, artifacts);
  row.note = note;
  cleanup_free char *dir = snapshots_dir(s->front);
  store_session_hibernated(s->front->store, &row, NULL, dir);
}

void
session_hibernate(struct session *s, const char *why)
{
  struct front *f = s->front;
  if (s->state != S_IDLE || s->queue || s->w == NULL || f->store == NULL)
    return;
  cleanup_free char *dir = snapshots_dir(f);
  cleanup_free char *tmp = xasprintf("%s/%s.tmp", dir, s->id);
  /* Whatever fails here is tried again after another idle period, not
     at every turn of the loop.  */
  s->active_ns = now_ns();
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    log_msg(LOG_ERROR, "hibernate session %s: mkdir %s: %s", s->id, dir, strerror(errno));
    return;
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    log_msg(LOG_ERROR, "hibernate session %s: open %s: %s", s->id, tmp, strerror(errno));
    return;
  }
  log_msg(LOG_DEBUG, "hibernating session %s (%s)", s->id, why);
  struct fbuf fb;
  fbuf_init(&fb, FRAME_SNAPSHOT);
  fbuf_put_u64(&fb, TAG_MAX_BYTES, f->cfg->max_snapshot);
  fbuf_finish(&fb);
  int sent = worker_send_fd(s->w, &fb, fd);
  fbuf_free(&fb);
  close(fd);
  if (sent < 0) {
    unlink(tmp);
    return;
  }
  s->state = S_HIBERNATING;
  s->snap_started_ns = now_ns();
  s->snap_deadline_ns = s->snap_started_ns + SNAPSHOT_DEADLINE_NS;
}

void
hibernate_done(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  if (s == NULL || s->state != S_HIBERNATING) {
    worker_fault(w, "the worker sent a snapshot nobody asked for");
    return;
  }
  struct front *f = s->front;
  cleanup_free char *dir = snapshots_dir(f);
  cleanup_free char *tmp = xasprintf("%s/%s.tmp", dir, s->id);
  cleanup_free char *message = NULL, *lost = NULL, *dropped = NULL;
  const struct field *hash = frame_get(fr, TAG_HASH);
  uint64_t size = 0;
  kiln_error_t err = NULL;
  if (frame_get_str(fr, TAG_MESSAGE, true, &message, NULL, &err) < 0
      || frame_get_str(fr, TAG_LOST, true, &lost, NULL, &err) < 0
      || frame_get_str(fr, TAG_DROPPED, true, &dropped, NULL, &err) < 0
      || frame_get_u64(fr, TAG_SIZE, true, &size, &err) < 0
      || (hash && hash->len != STORE_KEY_BYTES)) {
    worker_fault(w, "the worker sent a malformed snapshot answer%s%s", err ? ": " : "",
                 err ? err->msg : "");
    kiln_error_release(&err);
    unlink(tmp);
    return;
  }
  if (message || hash == NULL) {
    unlink(tmp);
    log_msg(LOG_WARN, "session %s could not be snapshotted: %s", s->id, message ? message : "?");
    if (!f->shutdown_hibernate) {
      /* Idle, it stays as it is, worker and all, and is tried again
         after another idle period.  */
      s->state = S_IDLE;
      s->snap_deadline_ns = 0;
      s->active_ns = now_ns();
      s->snap_failed_ns = s->active_ns;
      session_dispatch(s);
      hibernate_place_freed(f);
      return;
    }
    /* kiln is stopping: the session is kept, without its state, and
       says so when next used.  */
    cleanup_free char *note = xasprintf("its snapshot failed: %s", message ? message : "?");
    record_without(s, note);
  } else {
    cleanup_free char *artifacts = artifacts_encode(s);
    struct session_row row = row_of(s, artifacts);
    row.has_snapshot = true;
    row.snapshot_size = size;
    row.lost = lost ? lost : "";
    row.dropped = dropped ? dropped : "";
    memcpy(row.snapshot_hash, hash->data, STORE_KEY_BYTES);
    store_session_hibernated(f->store, &row, tmp, dir);
    log_msg(LOG_INFO, "session %s hibernated: a snapshot of %llu bytes in %.1f ms", s->id,
            (unsigned long long)size, (double)(now_ns() - s->snap_started_ns) / 1e6);
  }
  /* The worker has done all it will for this session.  */
  session_drop_worker(s);
  s->state = S_HIBERNATED;
  s->snap_deadline_ns = 0;
  /* Requests that came while it wrote start the restore at once, and
     restores that waited for its place go on.  */
  if (s->queue)
    session_dispatch(s);
  hibernate_place_freed(f);
}

int
hibernate_make_room(struct front *f, kiln_error_t *err)
{
  size_t live = 0, freeing = 0;
  struct session *lru = NULL;
  for (struct session *s = f->sessions; s; s = s->next) {
    if (s->state == S_HIBERNATED)
      continue;
    live++;
    if (s->state == S_HIBERNATING)
      freeing++;
    else if (s->state == S_IDLE && s->queue == NULL && s->w && !s->closed
             && s->snap_failed_ns < s->active_ns && (lru == NULL || s->active_ns < lru->active_ns))
      lru = s;
  }
  if (live < f->max_sessions)
    return 0;
  if (live - freeing < f->max_sessions)
    return 1;
  if (lru) {
    session_hibernate(lru, "its place is wanted by a restored session");
    if (lru->state == S_HIBERNATING)
      return 1;
  }
  kiln_error_make(err, 0,
                  "%zu sessions are live, the limit (--max-sessions), and none of them is idle "
                  "to be hibernated in this one's place; try again when one is, or close one "
                  "with close_session",
                  live);
  return -1;
}

void
hibernate_place_freed(struct front *f)
{
  /* Done in the next tick, never from inside the handler that freed it.  */
  f->place_freed = true;
}

/* Restores that waited for a place go on.  */
static void
resume_waiting(struct front *f)
{
  f->place_freed = false;
  for (struct session *s = f->sessions; s;) {
    /* A dispatch may fail its queue, but never unlinks S.  */
    struct session *next = s->next;
    if (s->state == S_HIBERNATED && s->queue)
      session_dispatch(s);
    s = next;
  }
}

static void
restore_finish(struct session *s, char *note, bool lost)
{
  free(s->restored_note);
  s->restored_note = note;
  s->restored_lost = lost;
  s->restore_pending = false;
  s->snap_deadline_ns = 0;
  s->state = S_IDLE;
  /* Restored or not, the snapshot has served: the live session is the
     state from here on.  */
  store_session_forget(s->front->store, s->id, false);
  session_dispatch(s);
}

static char *
when(int64_t ms)
{
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  char buf[32];
  gmtime_r(&t, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return xstrdup(buf);
}

void
restore_start(struct session *s)
{
  struct front *f = s->front;
  /* Its row may still be with the writer when a request follows the
     hibernation closely.  */
  store_sync(f->store);
  struct session_row row;
  cleanup_free char *strs = NULL, *file = NULL;
  cleanup_free uint8_t *blob = NULL;
  size_t blob_len = 0;
  kiln_error_t err = NULL;
  int r = store_session_get(f->store, s->id, &row, &strs, &blob, &blob_len, &file, &err);
  if (r != 0) {
    char *note = xasprintf("This session's snapshot could not be found (%s): it starts fresh, its "
                           "variables and files are gone.",
                           r < 0 ? err->msg : "no record of it");
    kiln_error_release(&err);
    restore_finish(s, note, true);
    return;
  }
  s->execution_count = row.execution_count;
  if (!row.has_snapshot || (blob == NULL && file == NULL)) {
    char *note = xasprintf("This session was hibernated without a snapshot (%s): it starts "
                           "fresh, its variables and files are gone.",
                           row.note[0] ? row.note : "none was taken");
    restore_finish(s, note, true);
    return;
  }
  int fd = -1;
  if (file) {
    fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != row.snapshot_size) {
      if (fd >= 0)
        close(fd);
      char *note = xasprintf("This session's snapshot file is missing or damaged: it starts "
                             "fresh, its variables and files are gone.");
      restore_finish(s, note, true);
      return;
    }
  }
  struct fbuf fb;
  fbuf_init(&fb, FRAME_RESTORE);
  fbuf_put(&fb, TAG_HASH, row.snapshot_hash, STORE_KEY_BYTES);
  if (blob)
    fbuf_put(&fb, TAG_DATA, blob, blob_len);
  fbuf_finish(&fb);
  int sent = worker_send_fd(s->w, &fb, fd);
  fbuf_free(&fb);
  if (fd >= 0)
    close(fd);
  if (sent < 0) {
    restore_finish(s,
                   xstrdup("This session's snapshot could not be sent to its new worker: it "
                           "starts fresh, its variables and files are gone."),
                   true);
    return;
  }
  s->state = S_RESTORING;
  s->snap_started_ns = now_ns();
  s->snap_deadline_ns = s->snap_started_ns + SNAPSHOT_DEADLINE_NS;
  s->restore_taken_ms = row.hibernated_ms;
}

void
restore_done(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  if (s == NULL || s->state != S_RESTORING) {
    worker_fault(w, "the worker answered a restore nobody asked for");
    return;
  }
  uint64_t status = 1;
  cleanup_free char *message = NULL, *lost = NULL;
  kiln_error_t err = NULL;
  if (frame_get_u64(fr, TAG_STATUS, false, &status, &err) < 0
      || frame_get_str(fr, TAG_MESSAGE, true, &message, NULL, &err) < 0
      || frame_get_str(fr, TAG_LOST, true, &lost, NULL, &err) < 0) {
    worker_fault(w, "the worker sent a malformed restore answer: %s", err->msg);
    kiln_error_release(&err);
    return;
  }
  cleanup_free char *taken = when(s->restore_taken_ms);
  char *note;
  if (status != 0)
    note = xasprintf("This session's snapshot of %s could not be restored (%s): it starts "
                     "fresh, its variables and files are gone.",
                     taken, message && *message ? message : "refused");
  else if (lost && *lost)
    note = xasprintf("This session was restored from its snapshot of %s. Not restored: %s.", taken,
                     lost);
  else
    note = xasprintf("This session was restored from its snapshot of %s, whole.", taken);
  log_msg(LOG_INFO, "session %s %s in %.1f ms", s->id,
          status == 0 ? "restored" : "could not be restored",
          (double)(now_ns() - s->snap_started_ns) / 1e6);
  restore_finish(s, note, status != 0);
}

static size_t
hibernating_count(const struct front *f)
{
  size_t n = 0;
  for (const struct session *s = f->sessions; s; s = s->next)
    n += s->state == S_HIBERNATING;
  return n;
}

/* When S is next due for hibernate_tick, or -1.  */
static int64_t
due_of(const struct session *s, int64_t idle_ns)
{
  if (s->state == S_HIBERNATING || s->state == S_RESTORING)
    return s->snap_deadline_ns ? s->snap_deadline_ns : -1;
  if (s->state != S_IDLE || s->queue || s->w == NULL || s->front->store == NULL)
    return -1;
  return s->active_ns + idle_ns;
}

int64_t
hibernate_next(struct front *f)
{
  if (f->place_freed)
    return now_ns();
  int64_t next = f->store ? f->expire_at : -1;
  int64_t idle_ns = (int64_t)(f->cfg->idle_hibernate_s * 1e9);
  for (const struct session *s = f->sessions; s; s = s->next) {
    int64_t due = due_of(s, idle_ns);
    if (due >= 0 && (next < 0 || due < next))
      next = due;
  }
  /* Stopping: checked often until every snapshot is written.  */
  if (f->shutdown_hibernate) {
    int64_t soon = now_ns() + 20 * 1000000;
    if (next < 0 || soon < next)
      next = soon;
  }
  return next;
}

size_t
front_hibernate_all(struct front *f, double timeout_s)
{
  for (struct session *s = f->sessions; s; s = s->next)
    session_hibernate(s, "kiln is stopping");
  size_t n = hibernating_count(f);
  if (n) {
    f->shutdown_hibernate = true;
    f->shutdown_deadline = now_ns() + (int64_t)(timeout_s * 1e9);
  }
  return n;
}

int64_t
hibernate_tick(struct front *f, int64_t now)
{
  if (f->place_freed)
    resume_waiting(f);
  int64_t idle_ns = (int64_t)(f->cfg->idle_hibernate_s * 1e9);
  for (struct session *s = f->sessions; s; s = s->next) {
    int64_t due = due_of(s, idle_ns);
    if (due < 0 || now < due)
      continue;
    if (s->state == S_IDLE)
      session_hibernate(s, "idle");
    else if (s->w)
      /* Stuck in user code (a __reduce__ that loops, say): the worker
         goes, and the session's state with it.  */
      worker_fault(s->w, "the worker took too long over the session's snapshot");
  }
  if (f->shutdown_hibernate && (hibernating_count(f) == 0 || now >= f->shutdown_deadline)) {
    f->shutdown_hibernate = false;
    loop_stop(f->loop);
  }
  if (f->store && now >= f->expire_at) {
    f->expire_at = now + EXPIRE_EVERY_NS(f);
    int64_t before = wall_ms() - (int64_t)(f->cfg->session_ttl_s * 1000);
    /* The history of sessions closed or lost longer ago than the TTL
       goes too; that of open sessions stays with them.  */
    const char **live = xmalloc((f->nsessions ? f->nsessions : 1) * sizeof *live);
    size_t nlive = 0;
    for (struct session *s = f->sessions; s; s = s->next)
      live[nlive++] = s->id;
    store_history_expire(f->store, before, live, nlive);
    free(live);
    for (struct session *s = f->sessions; s;) {
      struct session *next_s = s->next;
      if (s->state == S_HIBERNATED && (int64_t)s->last_used_at * 1000 < before) {
        log_msg(LOG_INFO, "session %s expired (--session-ttl)", s->id);
        store_session_forget(f->store, s->id, true);
        front_close_session(f, s->id, NULL);
      }
      s = next_s;
    }
  }
  return hibernate_next(f);
}

struct loading {
  struct front *f;
  int64_t before;
  char **files; /* snapshot files the rows name */
  size_t nfiles;
};

static void
load_one(void *ctx, const struct session_row *row)
{
  struct loading *l = ctx;
  struct front *f = l->f;
  if (row->last_used_ms < l->before || session_find(f, row->id)) {
    store_session_forget(f->store, row->id, true);
    return;
  }
  if (row->file) {
    l->files = xrealloc(l->files, (l->nfiles + 1) * sizeof *l->files);
    l->files[l->nfiles++] = xstrdup(row->file);
  }
  struct session *s = xzalloc(sizeof *s);
  s->front = f;
  snprintf(s->id, sizeof s->id, "%s", row->id);
  s->workdir = xasprintf("%s/sessions/%s", f->cfg->home, row->id);
  s->state = S_HIBERNATED;
  s->execution_count = row->execution_count;
  s->created_at = (time_t)(row->created_ms / 1000);
  s->last_used_at = (time_t)(row->last_used_ms / 1000);
  /* Its images are readable while it sleeps, as before.  */
  artifacts_decode(s, row->artifacts ? row->artifacts : "");
  s->next = f->sessions;
  f->sessions = s;
  f->nsessions++;
}

void
hibernate_load(struct front *f)
{
  struct loading l = { .f = f, .before = wall_ms() - (int64_t)(f->cfg->session_ttl_s * 1000) };
  kiln_error_t err = NULL;
  bool complete = store_sessions_each(f->store, load_one, &l, &err) == 0;
  if (!complete)
    log_error(LOG_ERROR, &err, "cannot read the hibernated sessions");
  /* What a crash left in the snapshots' directory: a snapshot being
     written, or one moved into place whose row was never committed.  No
     row names them, and none will.  Only when every row was read.  */
  cleanup_free char *dir = snapshots_dir(f);
  DIR *d = complete ? opendir(dir) : NULL;
  struct dirent *de;
  while (d && (de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    cleanup_free char *path = xasprintf("%s/%s", dir, de->d_name);
    /* Another kiln on this KILN_HOME (a kiln run beside a kiln serve)
       may be writing one now: only what is an hour old goes.  */
    struct stat st;
    if (lstat(path, &st) < 0 || st.st_mtime > time(NULL) - 3600)
      continue;
    bool named = false;
    for (size_t i = 0; i < l.nfiles && !named; i++)
      named = strcmp(l.files[i], path) == 0;
    if (!named)
      unlink(path);
  }
  if (d)
    closedir(d);
  for (size_t i = 0; i < l.nfiles; i++)
    free(l.files[i]);
  free(l.files);
  f->expire_at = now_ns() + EXPIRE_EVERY_NS(f);
}
