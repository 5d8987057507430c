/* Hibernated sessions: one row each, with the snapshot inline or in a
   file named by its hash.  The snapshot's bytes come from the session's
   own worker and are never read here beyond copying them: only a
   worker of that session ever unpickles them.  */
#define _GNU_SOURCE
#include "log.h"
#include "store_internal.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct hib_job {
  struct session_row row;
  char *id, *lost, *dropped, *note, *artifacts;
  char *tmp_path; /* NULL: no snapshot */
  char *dir;
};

static void
hib_free(void *arg)
{
  struct hib_job *j = arg;
  /* A job dropped unrun leaves no temporary file behind.  */
  if (j->tmp_path)
    unlink(j->tmp_path);
  free(j->id);
  free(j->lost);
  free(j->dropped);
  free(j->note);
  free(j->artifacts);
  free(j->tmp_path);
  free(j->dir);
  free(j);
}

static char *
hex(const uint8_t *b, size_t n)
{
  char *s = xmalloc(2 * n + 1);
  for (size_t i = 0; i < n; i++)
    snprintf(s + 2 * i, 3, "%02x", b[i]);
  return s;
}

/* The previous snapshot file of ID, to remove once the new row is
   committed (allocated, or NULL).  */
static char *
old_file(sqlite3 *db, const char *id)
{
  sqlite3_stmt *q = NULL;
  char *out = NULL;
  if (sqlite3_prepare_v2(db, "SELECT snapshot_file FROM sessions WHERE id = ?", -1, &q, NULL)
      == SQLITE_OK) {
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0))
      out = xstrdup((const char *)sqlite3_column_text(q, 0));
  }
  sqlite3_finalize(q);
  return out;
}

/* Reads PATH (SIZE bytes) whole; NULL on failure.  */
static uint8_t *
slurp(int fd, size_t size)
{
  uint8_t *b = xmalloc(size ? size : 1);
  if (pread(fd, b, size, 0) != (ssize_t)size) {
    free(b);
    return NULL;
  }
  return b;
}

static void
hib_run(sqlite3 *db, void *arg)
{
  struct hib_job *j = arg;
  const struct session_row *r = &j->row;
  cleanup_free uint8_t *blob = NULL;
  cleanup_free char *file = NULL;
  cleanup_free char *previous = old_file(db, r->id);
  if (j->tmp_path) {
    cleanup_close int fd = open(j->tmp_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != r->snapshot_size) {
      log_msg(LOG_ERROR, "store: the snapshot of session %s is not the size its worker said",
              r->id);
      return;
    }
    if (r->snapshot_size <= STORE_SNAPSHOT_INLINE_MAX) {
      if ((blob = slurp(fd, r->snapshot_size)) == NULL) {
        log_msg(LOG_ERROR, "store: read the snapshot of session %s: %s", r->id, strerror(errno));
        return;
      }
    } else {
      /* Whole on disk before the row points at it.  */
      cleanup_free char *name = hex(r->snapshot_hash, STORE_KEY_BYTES);
      file = xasprintf("%s/snapshot-%s", j->dir, name);
      if (fsync(fd) < 0 || rename(j->tmp_path, file) < 0) {
        log_msg(LOG_ERROR, "store: keep the snapshot of session %s: %s", r->id, strerror(errno));
        return;
      }
      cleanup_close int dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0)
        fsync(dfd);
      free(j->tmp_path);
      j->tmp_path = NULL;
    }
  }
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db,
                         "INSERT OR REPLACE INTO sessions (id, created_ms, last_used_ms,"
                         " hibernated_ms, execution_count, snapshot, snapshot_file, snapshot_hash,"
                         " snapshot_size, lost, dropped, note, artifacts)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         -1, &st, NULL)
      != SQLITE_OK) {
    log_msg(LOG_ERROR, "store: sessions: %s", sqlite3_errmsg(db));
    return;
  }
  sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, r->created_ms);
  sqlite3_bind_int64(st, 3, r->last_used_ms);
  sqlite3_bind_int64(st, 4, r->hibernated_ms);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)r->execution_count);
  if (blob)
    sqlite3_bind_blob(st, 6, blob, (int)r->snapshot_size, SQLITE_STATIC);
  if (file)
    sqlite3_bind_text(st, 7, file, -1, SQLITE_STATIC);
  if (blob || file) {
    sqlite3_bind_blob(st, 8, r->snapshot_hash, STORE_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)r->snapshot_size);
  }
  sqlite3_bind_text(st, 10, r->lost ? r->lost : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 11, r->dropped ? r->dropped : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 12, r->note ? r->note : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 13, r->artifacts ? r->artifacts : "", -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE)
    log_msg(LOG_ERROR, "store: sessions: %s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  /* The old file goes only once nothing will point at it: after this
     turn's transaction commits.  A crash in between leaves the file,
     named by no row, for nothing to read.  */
  if (previous && (file == NULL || strcmp(previous, file) != 0))
    store_unlink_after_commit(previous);
}

static void
hib_encode(struct fbuf *fb, const void *arg)
{
  const struct hib_job *j = arg;
  const struct session_row *r = &j->row;
  uint64_t times[3]
      = { (uint64_t)r->created_ms, (uint64_t)r->last_used_ms, (uint64_t)r->hibernated_ms };
  fbuf_put_u64(fb, TAG_KIND, STORE_OP_SESSION_HIBERNATED);
  fbuf_put_str(fb, TAG_SESSION_ID, r->id);
  fbuf_put(fb, TAG_TIMES, times, sizeof times);
  fbuf_put_u64(fb, TAG_CELL_NO, r->execution_count);
  if (r->has_snapshot) {
    fbuf_put_u64(fb, TAG_SIZE, r->snapshot_size);
    fbuf_put(fb, TAG_HASH, r->snapshot_hash, STORE_KEY_BYTES);
  }
  fbuf_put_str(fb, TAG_LOST, r->lost);
  fbuf_put_str(fb, TAG_DROPPED, r->dropped);
  fbuf_put_str(fb, TAG_NOTE, r->note);
  fbuf_put_str(fb, TAG_ARTIFACTS, r->artifacts);
  if (j->tmp_path)
    fbuf_put_str(fb, TAG_PATH, j->tmp_path);
  fbuf_put_str(fb, TAG_DIR, j->dir);
}

/* The daemon has the snapshot file now: it is not removed here.  */
static void
hib_sent(void *arg)
{
  struct hib_job *j = arg;
  free(j->tmp_path);
  j->tmp_path = NULL;
}

static const struct store_job_type hib_job_type
    = { .run = hib_run, .free = hib_free, .encode = hib_encode, .sent = hib_sent };

void
store_session_hibernated(struct store *st, const struct session_row *row, const char *tmp_path,
                         const char *dir)
{
  if (st == NULL) {
    if (tmp_path)
      unlink(tmp_path);
    return;
  }
  struct hib_job *j = xzalloc(sizeof *j);
  j->row = *row;
  j->row.id = j->id = xstrdup(row->id);
  j->row.lost = j->lost = xstrdup(row->lost ? row->lost : "");
  j->row.dropped = j->dropped = xstrdup(row->dropped ? row->dropped : "");
  j->row.note = j->note = xstrdup(row->note ? row->note : "");
  j->row.artifacts = j->artifacts = xstrdup(row->artifacts ? row->artifacts : "");
  j->tmp_path = tmp_path ? xstrdup(tmp_path) : NULL;
  j->dir = xstrdup(dir);
  store_queue(st, &hib_job_type, j);
}

static void
row_from(sqlite3_stmt *q, struct session_row *r)
{
  memset(r, 0, sizeof *r);
  r->id = (const char *)sqlite3_column_text(q, 0);
  r->created_ms = sqlite3_column_int64(q, 1);
  r->last_used_ms = sqlite3_column_int64(q, 2);
  r->hibernated_ms = sqlite3_column_int64(q, 3);
  r->execution_count = (uint64_t)sqlite3_column_int64(q, 4);
  r->snapshot_size = (uint64_t)sqlite3_column_int64(q, 5);
  if (sqlite3_column_bytes(q, 6) == STORE_KEY_BYTES) {
    memcpy(r->snapshot_hash, sqlite3_column_blob(q, 6), STORE_KEY_BYTES);
    r->has_snapshot = true;
  }
  r->lost = (const char *)sqlite3_column_text(q, 7);
  r->dropped = (const char *)sqlite3_column_text(q, 8);
  r->note = (const char *)sqlite3_column_text(q, 9);
  r->artifacts = (const char *)sqlite3_column_text(q, 10);
  r->file = (const char *)sqlite3_column_text(q, 11);
}

#define ROW_COLUMNS                                                                                \
  "id, created_ms, last_used_ms, hibernated_ms, execution_count, snapshot_size, snapshot_hash,"    \
  " lost, dropped, note, artifacts, snapshot_file"

int
store_session_get(struct store *st, const char *id, struct session_row *row, char **strs,
                  uint8_t **blob, size_t *blob_len, char **file, kiln_error_t *err)
{
  *blob = NULL;
  *file = NULL;
  *strs = NULL;
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(st->rd, "SELECT " ROW_COLUMNS ", snapshot FROM sessions WHERE id = ?", -1,
                         &q, NULL)
      != SQLITE_OK)
    return kiln_error_make(err, 0, "sessions: %s", sqlite3_errmsg(st->rd));
  sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(q);
  if (rc != SQLITE_ROW) {
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE)
      return 1;
    return kiln_error_make(err, 0, "sessions: %s", sqlite3_errmsg(st->rd));
  }
  struct session_row r;
  row_from(q, &r);
  /* The strings, copied into one allocation that outlives the query.  */
  const char **dst[] = { &r.id, &r.lost, &r.dropped, &r.note, &r.artifacts };
  const size_t nparts = sizeof dst / sizeof dst[0];
  size_t total = 0;
  for (size_t i = 0; i < nparts; i++)
    total += strlen(*dst[i] ? *dst[i] : "") + 1;
  char *p = *strs = xmalloc(total);
  for (size_t i = 0; i < nparts; i++) {
    const char *part = *dst[i] ? *dst[i] : "";
    size_t n = strlen(part) + 1;
    memcpy(p, part, n);
    *dst[i] = p;
    p += n;
  }
  if (sqlite3_column_type(q, 12) == SQLITE_BLOB) {
    *blob_len = (size_t)sqlite3_column_bytes(q, 12);
    *blob = xmalloc(*blob_len ? *blob_len : 1);
    memcpy(*blob, sqlite3_column_blob(q, 12), *blob_len);
  } else if (r.file)
    *file = xstrdup(r.file);
  /* The statement's memory goes with it.  */
  r.file = *file;
  *row = r;
  sqlite3_finalize(q);
  return 0;
}

int
store_sessions_each(struct store *st, void (*fn)(void *ctx, const struct session_row *row),
                    void *ctx, kiln_error_t *err)
{
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(st->rd, "SELECT " ROW_COLUMNS " FROM sessions ORDER BY last_used_ms", -1,
                         &q, NULL)
      != SQLITE_OK)
    return kiln_error_make(err, 0, "sessions: %s", sqlite3_errmsg(st->rd));
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    struct session_row r;
    row_from(q, &r);
    fn(ctx, &r);
  }
  sqlite3_finalize(q);
  if (rc != SQLITE_DONE)
    return kiln_error_make(err, 0, "sessions: %s", sqlite3_errmsg(st->rd));
  return 0;
}

struct forget {
  char *id;
  bool history;
};

static void
forget_free(void *arg)
{
  struct forget *f = arg;
  free(f->id);
  free(f);
}

static void
forget_run(sqlite3 *db, void *arg)
{
  struct forget *f = arg;
  cleanup_free char *file = old_file(db, f->id);
  const char *sql[]
      = { "DELETE FROM sessions WHERE id = ?", "DELETE FROM history WHERE session_id = ?" };
  for (size_t i = 0; i < (f->history ? 2u : 1u); i++) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) != SQLITE_OK)
      continue;
    sqlite3_bind_text(st, 1, f->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
      log_msg(LOG_ERROR, "store: forget session %s: %s", f->id, sqlite3_errmsg(db));
    sqlite3_finalize(st);
  }
  if (file)
    store_unlink_after_commit(file);
}

static void
forget_encode(struct fbuf *fb, const void *arg)
{
  const struct forget *f = arg;
  fbuf_put_u64(fb, TAG_KIND, STORE_OP_SESSION_FORGET);
  fbuf_put_str(fb, TAG_SESSION_ID, f->id);
  fbuf_put_u64(fb, TAG_STATUS, f->history);
}

static const struct store_job_type forget_job
    = { .run = forget_run, .free = forget_free, .encode = forget_encode };

void
store_session_forget(struct store *st, const char *id, bool history)
{
  if (st == NULL)
    return;
  struct forget *f = xzalloc(sizeof *f);
  f->id = xstrdup(id);
  f->history = history;
  store_queue(st, &forget_job, f);
}
