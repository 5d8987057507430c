/* The execution history: one row per cell, written by the writer
   thread, read a page at a time.  */
#define _GNU_SOURCE
#include "store_internal.h"
#include "log.h"
#include "util.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct history_job {
  struct history_row row; /* its strings point into the job's own copies */
  char *session_id, *kind, *code, *status, *error_type, *artifacts;
  uint8_t hash[STORE_KEY_BYTES];
};

static void
history_job_free(void *arg)
{
  struct history_job *j = arg;
  free(j->session_id);
  free(j->kind);
  free(j->code);
  free(j->status);
  free(j->error_type);
  free(j->artifacts);
  free(j);
}

static void
history_insert(sqlite3 *db, void *arg)
{
  struct history_job *j = arg;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO history (session_id, execution_count, code_hash, code,"
                         " started_ms, duration_ms, status, error_type, stdout_bytes,"
                         " stderr_bytes, artifacts, kind) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                         -1, &st, NULL)
      != SQLITE_OK) {
    log_msg(LOG_ERROR, "store: history: %s", sqlite3_errmsg(db));
    return;
  }
  const struct history_row *r = &j->row;
  sqlite3_bind_text(st, 1, r->session_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)r->execution_count);
  sqlite3_bind_blob(st, 3, j->hash, sizeof j->hash, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, r->code, (int)r->code_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, r->started_ms);
  sqlite3_bind_double(st, 6, r->duration_ms);
  sqlite3_bind_text(st, 7, r->status, -1, SQLITE_STATIC);
  if (r->error_type)
    sqlite3_bind_text(st, 8, r->error_type, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 8);
  sqlite3_bind_int64(st, 9, (sqlite3_int64)r->stdout_bytes);
  sqlite3_bind_int64(st, 10, (sqlite3_int64)r->stderr_bytes);
  sqlite3_bind_text(st, 11, r->artifacts, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 12, r->kind, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE)
    log_msg(LOG_ERROR, "store: history: %s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
}

static void
history_encode(struct fbuf *fb, const void *arg)
{
  const struct history_job *j = arg;
  const struct history_row *r = &j->row;
  uint64_t duration;
  memcpy(&duration, &r->duration_ms, sizeof duration);
  fbuf_put_u64(fb, TAG_KIND, STORE_OP_HISTORY_ADD);
  fbuf_put_str(fb, TAG_SESSION_ID, r->session_id);
  fbuf_put_u64(fb, TAG_CELL_NO, r->execution_count);
  fbuf_put_str(fb, TAG_CELL_KIND, r->kind);
  fbuf_put(fb, TAG_CODE, r->code, r->code_len);
  fbuf_put_u64(fb, TAG_TIME_MS, (uint64_t)r->started_ms);
  fbuf_put_u64(fb, TAG_DURATION, duration);
  fbuf_put_str(fb, TAG_CELL_STATUS, r->status);
  if (r->error_type)
    fbuf_put_str(fb, TAG_ERR_TYPE, r->error_type);
  fbuf_put_u64(fb, TAG_STDOUT_BYTES, r->stdout_bytes);
  fbuf_put_u64(fb, TAG_STDERR_BYTES, r->stderr_bytes);
  fbuf_put_str(fb, TAG_ARTIFACTS, r->artifacts);
}

static const struct store_job_type history_add_job
    = { .run = history_insert, .free = history_job_free, .encode = history_encode };

void
store_history_add(struct store *st, const struct history_row *row)
{
  if (st == NULL)
    return;
  struct history_job *j = xzalloc(sizeof *j);
  j->row = *row;
  j->row.session_id = j->session_id = xstrdup(row->session_id);
  j->row.kind = j->kind = xstrdup(row->kind ? row->kind : "python");
  j->code = xmalloc(row->code_len + 1);
  memcpy(j->code, row->code, row->code_len);
  j->code[row->code_len] = '\0';
  j->row.code = j->code;
  j->row.status = j->status = xstrdup(row->status);
  j->row.error_type = j->error_type = row->error_type ? xstrdup(row->error_type) : NULL;
  j->row.artifacts = j->artifacts = xstrdup(row->artifacts ? row->artifacts : "");
  /* The hash of the source alone, for finding every run of one cell; the
     cache's key adds the compiler's salt.  */
  crypto_generichash(j->hash, sizeof j->hash, (const unsigned char *)row->code, row->code_len, NULL,
                     0);
  store_queue(st, &history_add_job, j);
}

int64_t
store_history_page(struct store *st, const char *session_id, int64_t before, size_t limit,
                   void (*fn)(void *ctx, int64_t id, const struct history_row *row), void *ctx,
                   kiln_error_t *err)
{
  sqlite3_stmt *q = NULL;
  const char *sql = "SELECT id, session_id, execution_count, code, started_ms, duration_ms,"
                    " status, error_type, stdout_bytes, stderr_bytes, artifacts, kind FROM history"
                    " WHERE (?1 IS NULL OR session_id = ?1) AND (?2 = 0 OR id < ?2)"
                    " ORDER BY id DESC LIMIT ?3";
  if (sqlite3_prepare_v2(st->rd, sql, -1, &q, NULL) != SQLITE_OK)
    return kiln_error_make(err, 0, "history: %s", sqlite3_errmsg(st->rd));
  if (session_id)
    sqlite3_bind_text(q, 1, session_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, before);
  /* One more than asked: whether there is a next page.  */
  sqlite3_bind_int64(q, 3, (sqlite3_int64)limit + 1);
  size_t n = 0;
  int64_t last = 0, next = 0;
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    if (n == limit) {
      next = last;
      break;
    }
    const char *code = (const char *)sqlite3_column_text(q, 3);
    struct history_row r = {
      .session_id = (const char *)sqlite3_column_text(q, 1),
      .execution_count = (uint64_t)sqlite3_column_int64(q, 2),
      .code = code ? code : "",
      .code_len = (size_t)sqlite3_column_bytes(q, 3),
      .started_ms = sqlite3_column_int64(q, 4),
      .duration_ms = sqlite3_column_double(q, 5),
      .status = (const char *)sqlite3_column_text(q, 6),
      .error_type = (const char *)sqlite3_column_text(q, 7),
      .stdout_bytes = (uint64_t)sqlite3_column_int64(q, 8),
      .stderr_bytes = (uint64_t)sqlite3_column_int64(q, 9),
      .artifacts = (const char *)sqlite3_column_text(q, 10),
      .kind = (const char *)sqlite3_column_text(q, 11),
    };
    last = sqlite3_column_int64(q, 0);
    fn(ctx, last, &r);
    n++;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    kiln_error_make(err, 0, "history: %s", sqlite3_errmsg(st->rd));
    sqlite3_finalize(q);
    return -1;
  }
  sqlite3_finalize(q);
  return next;
}

static void
history_delete(sqlite3 *db, void *arg)
{
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "DELETE FROM history WHERE session_id = ?", -1, &st, NULL)
      != SQLITE_OK)
    return;
  sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE)
    log_msg(LOG_ERROR, "store: history: %s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
}

static void
history_forget_encode(struct fbuf *fb, const void *arg)
{
  fbuf_put_u64(fb, TAG_KIND, STORE_OP_HISTORY_FORGET);
  fbuf_put_str(fb, TAG_SESSION_ID, arg);
}

static const struct store_job_type history_forget_job
    = { .run = history_delete, .free = free, .encode = history_forget_encode };

void
store_history_forget(struct store *st, const char *session_id)
{
  if (st)
    store_queue(st, &history_forget_job, xstrdup(session_id));
}

struct expire {
  int64_t before;
  char **live;
  size_t n;
};

static void
expire_free(void *arg)
{
  struct expire *e = arg;
  for (size_t i = 0; i < e->n; i++)
    free(e->live[i]);
  free(e->live);
  free(e);
}

static void
expire_run(sqlite3 *db, void *arg)
{
  struct expire *e = arg;
  /* The live sessions in a table of this connection's own, for the
     NOT IN below.  */
  if (store_exec(db, "CREATE TEMP TABLE IF NOT EXISTS live (id TEXT PRIMARY KEY) WITHOUT ROWID;"
                     " DELETE FROM temp.live")
      < 0)
    return;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO temp.live (id) VALUES (?)", -1, &st, NULL)
      != SQLITE_OK)
    return;
  for (size_t i = 0; i < e->n; i++) {
    sqlite3_bind_text(st, 1, e->live[i], -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  if (sqlite3_prepare_v2(db,
                         "DELETE FROM history WHERE started_ms < ?"
                         " AND session_id NOT IN (SELECT id FROM sessions)"
                         " AND session_id NOT IN (SELECT id FROM temp.live)",
                         -1, &st, NULL)
      == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, e->before);
    if (sqlite3_step(st) != SQLITE_DONE)
      log_msg(LOG_ERROR, "store: expire history: %s", sqlite3_errmsg(db));
  }
  sqlite3_finalize(st);
}

/* The live ids, NUL-separated.  */
static void
expire_encode(struct fbuf *fb, const void *arg)
{
  const struct expire *e = arg;
  struct buf live = { 0 };
  for (size_t i = 0; i < e->n; i++)
    buf_append(&live, e->live[i], strlen(e->live[i]) + 1);
  fbuf_put_u64(fb, TAG_KIND, STORE_OP_HISTORY_EXPIRE);
  fbuf_put_u64(fb, TAG_TIME_MS, (uint64_t)e->before);
  fbuf_put(fb, TAG_LIVE, live.data, live.len);
  buf_free(&live);
}

static const struct store_job_type expire_job
    = { .run = expire_run, .free = expire_free, .encode = expire_encode };

void
store_history_expire(struct store *st, int64_t before_ms, const char *const *live, size_t n)
{
  if (st == NULL)
    return;
  struct expire *e = xzalloc(sizeof *e);
  e->before = before_ms;
  e->live = xmalloc((n ? n : 1) * sizeof *e->live);
  for (size_t i = 0; i < n; i++)
    e->live[i] = xstrdup(live[i]);
  e->n = n;
  store_queue(st, &expire_job, e);
}
