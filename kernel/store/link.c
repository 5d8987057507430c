/* A store owned by the daemon (store.h, STORE_LINKED): the front's side,
   whose writer thread sends each write as a FRAME_STORE_WRITE, and the
   daemon's, which checks each one and queues it on its own store.  The
   link is a blocking socket used by the front's writer thread alone.  */
#define _GNU_SOURCE
#include "log.h"
#include "store_internal.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* The daemon's answers carry a message at most.  */
#define ANSWER_MAX (64u << 10)

static void
set_timeouts(int fd, int ms)
{
  struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Sends a frame of TYPE with no fields on FD and waits for one of WANT
   (or STORE_FAILED, whose message becomes ERR's).  0, or -1 with ERR.  */
static int
ask(int fd, const struct fbuf *fb, uint16_t want, kiln_error_t *err)
{
  if (frame_send(fd, fb, NULL, 0, err) < 0)
    return -1;
  struct frame f;
  cleanup_free uint8_t *payload = NULL;
  if (frame_recv(fd, &f, &payload, ANSWER_MAX, err) < 0)
    return -1;
  for (size_t i = 0; i < f.nfds; i++)
    close(f.fds[i]);
  if (f.type == want)
    return 0;
  cleanup_free char *msg = NULL;
  if (f.type == FRAME_STORE_FAILED && frame_get_str(&f, TAG_MESSAGE, false, &msg, NULL, NULL) == 0)
    return kiln_error_make(err, 0, "%s", msg);
  return kiln_error_make(err, 0, "the daemon answered with a frame of type %u", f.type);
}

/* Asks the daemon at FD to open the store of DIR.  0, or -1 with ERR.  */
static int
open_at_daemon(int fd, const char *dir, kiln_error_t *err)
{
  set_timeouts(fd, STORE_LINK_TIMEOUT_MS);
  struct fbuf fb;
  fbuf_init(&fb, FRAME_STORE_OPEN);
  fbuf_put_str(&fb, TAG_PATH, dir);
  fbuf_finish(&fb);
  int rc = ask(fd, &fb, FRAME_STORE_READY, err);
  fbuf_free(&fb);
  return rc;
}

struct store *
store_open_linked(const char *dir, int fd, int (*reconnect)(void *ctx), void *ctx,
                  kiln_error_t *err)
{
  if (open_at_daemon(fd, dir, err) < 0) {
    close(fd);
    kiln_error_wrap(err, "the daemon's store");
    return NULL;
  }
  struct store *st = store_open_mode(dir, STORE_LINKED, fd, err);
  if (st) {
    /* Before any write is queued: the writer thread takes the queue's
       lock before it looks at them.  */
    pthread_mutex_lock(&st->mu);
    st->reconnect = reconnect;
    st->reconnect_ctx = ctx;
    pthread_mutex_unlock(&st->mu);
  }
  return st;
}

void
store_relink(struct store *st)
{
  int64_t now = now_ns();
  if (st->reconnect == NULL || now < st->relink_at)
    return;
  st->relink_at = now + (int64_t)STORE_RELINK_MS * 1000000;
  int fd = st->reconnect(st->reconnect_ctx);
  if (fd < 0)
    return;
  cleanup_free char *dir = xstrdup(st->path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  kiln_error_t err = NULL;
  if (open_at_daemon(fd, dir, &err) < 0) {
    log_error(LOG_WARN, &err, "store: the daemon does not take the store back yet");
    close(fd);
    return;
  }
  /* What was written here is committed: the daemon's writes follow it.  */
  sqlite3_close(st->wr);
  st->wr = NULL;
  st->link = fd;
  log_msg(LOG_INFO, "store: the daemon writes %s again", st->path);
}

/* The link failed (ERR): the rest is written here.  */
static void
link_lost(struct store *st, kiln_error_t *err)
{
  cleanup_free char *why
      = xasprintf("store: the daemon's link failed; this kiln writes %s itself until a"
                  " daemon takes it back (writes the daemon had not committed may be lost)",
                  st->path);
  log_error(LOG_WARN, err, why);
  close(st->link);
  st->link = -1;
  st->relink_at = now_ns() + (int64_t)STORE_RELINK_MS * 1000000;
}

/* Sends the writes from FIRST up to (not including) END as one batch:
   one system call for a turn's writes.  0, or -1 (the link lost).  */
static int
send_batch(struct store *st, struct store_job *first, struct store_job *end)
{
  if (first == end)
    return 0;
  struct buf bytes = { 0 };
  for (struct store_job *j = first; j != end; j = j->next) {
    struct fbuf fb;
    fbuf_init(&fb, FRAME_STORE_WRITE);
    j->type->encode(&fb, j->arg);
    fbuf_finish(&fb);
    buf_append(&bytes, fb.data, fb.len);
    fbuf_free(&fb);
  }
  const struct fbuf batch = { .data = bytes.data, .len = bytes.len };
  kiln_error_t err = NULL;
  int rc = frame_send(st->link, &batch, NULL, 0, &err);
  buf_free(&bytes);
  if (rc < 0) {
    link_lost(st, &err);
    return -1;
  }
  for (struct store_job *j = first; j != end; j = j->next)
    if (j->type->sent)
      j->type->sent(j->arg);
  return 0;
}

struct store_job *
store_link_send(struct store *st, struct store_job *job)
{
  /* A batch ends at a sync point, which is asked once the writes
     before it are sent.  */
  while (job) {
    struct store_job *end = job;
    while (end && end->type)
      end = end->next;
    if (send_batch(st, job, end) < 0)
      return job;
    if (end == NULL)
      return NULL;
    kiln_error_t err = NULL;
    struct fbuf fb;
    fbuf_init(&fb, FRAME_STORE_SYNC);
    fbuf_finish(&fb);
    int rc = ask(st->link, &fb, FRAME_STORE_SYNCED, &err);
    fbuf_free(&fb);
    if (rc < 0) {
      link_lost(st, &err);
      return end;
    }
    job = end->next;
  }
  return NULL;
}

/* ---- the daemon's side -------------------------------------------- */

static int
get_bytes(const struct frame *fr, enum frame_tag tag, size_t len, void *out, kiln_error_t *err)
{
  const struct field *f = frame_get(fr, tag);
  if (f == NULL || f->len != len)
    return kiln_error_make(err, 0, "field %d is missing or not %zu bytes", tag, len);
  memcpy(out, f->data, len);
  return 0;
}

/* Whether PATH (a FILE's, or a directory's) is in HOME (a real path) or
   below it, once its symbolic links and ".." are resolved: a front may
   name its KILN_HOME differently.  */
static bool
under_home(const char *path, bool file, const char *home)
{
  cleanup_free char *dir = xstrdup(path);
  if (file) {
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir || slash[1] == '\0')
      return false;
    *slash = '\0';
  }
  char real[PATH_MAX];
  if (realpath(dir, real) == NULL)
    return false;
  size_t n = strlen(home);
  return strncmp(real, home, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

static int
apply_history_add(struct store *st, const struct frame *fr, kiln_error_t *err)
{
  cleanup_free char *id = NULL, *kind = NULL, *status = NULL, *etype = NULL, *artifacts = NULL;
  uint64_t count, started, duration, out, errb;
  /* A cell's source may hold a NUL (it fails to compile, and is still
     recorded): bytes, not a string.  */
  const struct field *code = frame_get(fr, TAG_CODE);
  if (code == NULL)
    return kiln_error_make(err, 0, "a history row without its code");
  if (frame_get_str(fr, TAG_SESSION_ID, false, &id, NULL, err) < 0
      || frame_get_u64(fr, TAG_CELL_NO, false, &count, err) < 0
      || frame_get_str(fr, TAG_CELL_KIND, false, &kind, NULL, err) < 0
      || frame_get_u64(fr, TAG_TIME_MS, false, &started, err) < 0
      || frame_get_u64(fr, TAG_DURATION, false, &duration, err) < 0
      || frame_get_str(fr, TAG_CELL_STATUS, false, &status, NULL, err) < 0
      || frame_get_str(fr, TAG_ERR_TYPE, true, &etype, NULL, err) < 0
      || frame_get_u64(fr, TAG_STDOUT_BYTES, false, &out, err) < 0
      || frame_get_u64(fr, TAG_STDERR_BYTES, false, &errb, err) < 0
      || frame_get_str(fr, TAG_ARTIFACTS, false, &artifacts, NULL, err) < 0)
    return -1;
  struct history_row row = {
    .session_id = id,
    .execution_count = count,
    .kind = kind,
    .code = (const char *)code->data,
    .code_len = code->len,
    .started_ms = (int64_t)started,
    .status = status,
    .error_type = etype,
    .stdout_bytes = out,
    .stderr_bytes = errb,
    .artifacts = artifacts,
  };
  memcpy(&row.duration_ms, &duration, sizeof duration);
  store_history_add(st, &row);
  return 0;
}

int
store_expire_parse(const struct frame *fr, int64_t *before_ms, const char ***live, size_t *n,
                   kiln_error_t *err)
{
  uint64_t op, before;
  if (fr->type != FRAME_STORE_WRITE || frame_get_u64(fr, TAG_KIND, true, &op, NULL) < 0
      || op != STORE_OP_HISTORY_EXPIRE)
    return 0;
  const struct field *ids = frame_get(fr, TAG_LIVE);
  if (frame_get_u64(fr, TAG_TIME_MS, false, &before, err) < 0)
    return -1;
  if (ids == NULL || (ids->len && ids->data[ids->len - 1] != '\0'))
    return kiln_error_make(err, 0, "the live sessions are not a list of strings");
  size_t count = 0;
  for (uint32_t i = 0; i < ids->len; i++)
    count += ids->data[i] == '\0';
  const char **out = xmalloc((count ? count : 1) * sizeof *out);
  const char *p = (const char *)ids->data;
  for (size_t i = 0; i < count; i++, p += strlen(p) + 1)
    out[i] = p;
  *before_ms = (int64_t)before;
  *live = out;
  *n = count;
  return 1;
}

static int
apply_history_expire(struct store *st, const struct frame *fr, kiln_error_t *err)
{
  int64_t before;
  cleanup_free const char **ids = NULL;
  size_t n = 0;
  if (store_expire_parse(fr, &before, &ids, &n, err) < 0)
    return -1;
  store_history_expire(st, before, ids, n);
  return 0;
}

static int
apply_cache_put(struct store *st, const struct frame *fr, kiln_error_t *err)
{
  uint8_t key[STORE_KEY_BYTES];
  cleanup_free char *runtime = NULL;
  uint64_t max;
  const struct field *magic = frame_get(fr, TAG_MAGIC), *data = frame_get(fr, TAG_DATA);
  if (get_bytes(fr, TAG_KEY, sizeof key, key, err) < 0
      || frame_get_str(fr, TAG_RUNTIME, false, &runtime, NULL, err) < 0
      || frame_get_u64(fr, TAG_MAX_BYTES, false, &max, err) < 0)
    return -1;
  struct cache_salt salt = { .runtime = runtime };
  if (magic == NULL || magic->len > sizeof salt.magic || data == NULL || data->len == 0)
    return kiln_error_make(err, 0, "a cache entry without its magic number or its code");
  memcpy(salt.magic, magic->data, magic->len);
  salt.magic_len = magic->len;
  cache_put(st, key, &salt, data->data, data->len, max);
  return 0;
}

static int
apply_session_hibernated(struct store *st, const char *home, const struct frame *fr,
                         kiln_error_t *err)
{
  cleanup_free char *id = NULL, *lost = NULL, *dropped = NULL, *note = NULL, *artifacts = NULL,
                    *tmp = NULL, *dir = NULL;
  uint64_t times[3], count, size = 0;
  struct session_row row = { 0 };
  if (frame_get_str(fr, TAG_SESSION_ID, false, &id, NULL, err) < 0
      || get_bytes(fr, TAG_TIMES, sizeof times, times, err) < 0
      || frame_get_u64(fr, TAG_CELL_NO, false, &count, err) < 0
      || frame_get_u64(fr, TAG_SIZE, true, &size, err) < 0
      || frame_get_str(fr, TAG_LOST, false, &lost, NULL, err) < 0
      || frame_get_str(fr, TAG_DROPPED, false, &dropped, NULL, err) < 0
      || frame_get_str(fr, TAG_NOTE, false, &note, NULL, err) < 0
      || frame_get_str(fr, TAG_ARTIFACTS, false, &artifacts, NULL, err) < 0
      || frame_get_str(fr, TAG_PATH, true, &tmp, NULL, err) < 0
      || frame_get_str(fr, TAG_DIR, false, &dir, NULL, err) < 0)
    return -1;
  row.has_snapshot = frame_get(fr, TAG_SIZE) != NULL;
  if (row.has_snapshot && get_bytes(fr, TAG_HASH, STORE_KEY_BYTES, row.snapshot_hash, err) < 0)
    return -1;
  if ((tmp && !under_home(tmp, true, home)) || !under_home(dir, false, home))
    return kiln_error_make(err, 0, "a snapshot outside KILN_HOME %s", home);
  row.id = id;
  row.created_ms = (int64_t)times[0];
  row.last_used_ms = (int64_t)times[1];
  row.hibernated_ms = (int64_t)times[2];
  row.execution_count = count;
  row.snapshot_size = size;
  row.lost = lost;
  row.dropped = dropped;
  row.note = note;
  row.artifacts = artifacts;
  store_session_hibernated(st, &row, tmp, dir);
  return 0;
}

int
store_apply(struct store *st, const char *home, const struct frame *fr, kiln_error_t *err)
{
  uint64_t op;
  cleanup_free char *id = NULL;
  uint8_t key[STORE_KEY_BYTES];
  if (fr->type != FRAME_STORE_WRITE)
    return kiln_error_make(err, 0, "a frame of type %u on a store link", fr->type);
  if (frame_get_u64(fr, TAG_KIND, false, &op, err) < 0)
    return -1;
  switch (op) {
  case STORE_OP_HISTORY_ADD:
    return apply_history_add(st, fr, err);
  case STORE_OP_HISTORY_FORGET:
    if (frame_get_str(fr, TAG_SESSION_ID, false, &id, NULL, err) < 0)
      return -1;
    store_history_forget(st, id);
    return 0;
  case STORE_OP_HISTORY_EXPIRE:
    return apply_history_expire(st, fr, err);
  case STORE_OP_CACHE_TOUCH:
    if (get_bytes(fr, TAG_KEY, sizeof key, key, err) < 0)
      return -1;
    cache_touch(st, key);
    return 0;
  case STORE_OP_CACHE_MISS:
    cache_count_miss(st);
    return 0;
  case STORE_OP_CACHE_PUT:
    return apply_cache_put(st, fr, err);
  case STORE_OP_SESSION_HIBERNATED:
    return apply_session_hibernated(st, home, fr, err);
  case STORE_OP_SESSION_FORGET: {
    uint64_t history;
    if (frame_get_str(fr, TAG_SESSION_ID, false, &id, NULL, err) < 0
        || frame_get_u64(fr, TAG_STATUS, false, &history, err) < 0)
      return -1;
    store_session_forget(st, id, history != 0);
    return 0;
  }
  default:
    return kiln_error_make(err, 0, "an unknown store write %llu", (unsigned long long)op);
  }
}
