/* The code cache: marshalled code objects by the BLAKE2b hash of what
   decides them (store.h), bounded by bytes with least-recently-used
   eviction.  Only the front writes it, with bytes only the compile
   helper made (DESIGN.md invariant 2).  */
#define _GNU_SOURCE
#include "store_internal.h"
#include "log.h"
#include "util.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
cache_key(const struct cache_salt *salt, const char *source, size_t len,
          uint8_t key[STORE_KEY_BYTES])
{
  crypto_generichash_state h;
  crypto_generichash_init(&h, NULL, 0, STORE_KEY_BYTES);
  /* Each part with its length first, so that no two different
     (salt, source) pairs hash the same bytes.  */
  uint64_t parts[4]
      = { salt->magic_len, strlen(salt->runtime), salt->flags, (uint64_t)(int64_t)salt->optimize };
  crypto_generichash_update(&h, (const unsigned char *)"kiln-code-cache-v1", 18);
  crypto_generichash_update(&h, (const unsigned char *)parts, sizeof parts);
  crypto_generichash_update(&h, salt->magic, salt->magic_len);
  crypto_generichash_update(&h, (const unsigned char *)salt->runtime, strlen(salt->runtime));
  crypto_generichash_update(&h, (const unsigned char *)source, len);
  crypto_generichash_final(&h, key, STORE_KEY_BYTES);
}

struct touch {
  uint8_t key[STORE_KEY_BYTES];
  int64_t when;
};

static void
touch_run(sqlite3 *db, void *arg)
{
  struct touch *t = arg;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "UPDATE code_cache SET hits = hits + 1, last_used = ? WHERE key = ?",
                         -1, &st, NULL)
      == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, t->when);
    sqlite3_bind_blob(st, 2, t->key, STORE_KEY_BYTES, SQLITE_STATIC);
    sqlite3_step(st);
  }
  sqlite3_finalize(st);
  store_counter_add(db, "cache_hits", 1);
}

static void
touch_encode(struct fbuf *fb, const void *arg)
{
  const struct touch *t = arg;
  fbuf_put_u64(fb, TAG_KIND, STORE_OP_CACHE_TOUCH);
  fbuf_put(fb, TAG_KEY, t->key, STORE_KEY_BYTES);
}

static const struct store_job_type touch_job
    = { .run = touch_run, .free = free, .encode = touch_encode };

void
cache_touch(struct store *st, const uint8_t key[STORE_KEY_BYTES])
{
  struct touch *t = xmalloc(sizeof *t);
  memcpy(t->key, key, STORE_KEY_BYTES);
  t->when = wall_ms();
  store_queue(st, &touch_job, t);
}

uint8_t *
cache_get(struct store *st, const uint8_t key[STORE_KEY_BYTES], size_t *len)
{
  if (st == NULL)
    return NULL;
  uint8_t *out = NULL;
  /* Every cell asks: the statement is prepared once, on the reading
     connection, whose thread alone uses it.  */
  if (st->get_code == NULL
      && sqlite3_prepare_v3(st->rd, "SELECT code FROM code_cache WHERE key = ?", -1,
                            SQLITE_PREPARE_PERSISTENT, &st->get_code, NULL)
             != SQLITE_OK)
    return NULL;
  sqlite3_stmt *q = st->get_code;
  sqlite3_bind_blob(q, 1, key, STORE_KEY_BYTES, SQLITE_STATIC);
  if (sqlite3_step(q) == SQLITE_ROW) {
    const void *b = sqlite3_column_blob(q, 0);
    *len = (size_t)sqlite3_column_bytes(q, 0);
    if (b && *len) {
      out = xmalloc(*len);
      memcpy(out, b, *len);
    }
  }
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (out)
    cache_touch(st, key);
  return out;
}

static void
miss_run(sqlite3 *db, void *arg)
{
  (void)arg;
  store_counter_add(db, "cache_misses", 1);
}

static void
miss_encode(struct fbuf *fb, const void *arg)
{
  (void)arg;
  fbuf_put_u64(fb, TAG_KIND, STORE_OP_CACHE_MISS);
}

static const struct store_job_type miss_job = { .run = miss_run, .encode = miss_encode };

void
cache_count_miss(struct store *st)
{
  if (st)
    store_queue(st, &miss_job, NULL);
}

struct put {
  uint8_t key[STORE_KEY_BYTES];
  uint8_t magic[16];
  size_t magic_len;
  char *runtime;
  uint8_t *data;
  size_t len;
  uint64_t max_bytes;
  int64_t when;
};

static void
put_free(void *arg)
{
  struct put *p = arg;
  free(p->runtime);
  free(p->data);
  free(p);
}

static int64_t
query_int(sqlite3 *db, const char *sql)
{
  sqlite3_stmt *q = NULL;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
    v = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  return v;
}

/* Deletes the least recently used entries until the cache holds at most
   MAX bytes.  */
static void
evict(sqlite3 *db, uint64_t max)
{
  int64_t total = query_int(db, "SELECT COALESCE(SUM(size), 0) FROM code_cache");
  if (total < 0 || (uint64_t)total <= max)
    return;
  sqlite3_stmt *q = NULL, *del = NULL;
  if (sqlite3_prepare_v2(db, "SELECT key, size FROM code_cache ORDER BY last_used", -1, &q, NULL)
          != SQLITE_OK
      || sqlite3_prepare_v2(db, "DELETE FROM code_cache WHERE key = ?", -1, &del, NULL)
             != SQLITE_OK) {
    sqlite3_finalize(q);
    return;
  }
  int64_t evicted = 0;
  while ((uint64_t)total > max && sqlite3_step(q) == SQLITE_ROW) {
    sqlite3_bind_blob(del, 1, sqlite3_column_blob(q, 0), sqlite3_column_bytes(q, 0),
                      SQLITE_TRANSIENT);
    if (sqlite3_step(del) == SQLITE_DONE) {
      total -= sqlite3_column_int64(q, 1);
      evicted++;
    }
    sqlite3_reset(del);
  }
  sqlite3_finalize(q);
  sqlite3_finalize(del);
  if (evicted)
    store_counter_add(db, "cache_evictions", evicted);
}

static void
put_run(sqlite3 *db, void *arg)
{
  struct put *p = arg;
  if (p->len > p->max_bytes)
    return; /* larger than the whole cache */
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db,
                         "INSERT OR REPLACE INTO code_cache (key, python_magic, runtime, code,"
                         " size, hits, created_ms, last_used) VALUES (?,?,?,?,?,0,?,?)",
                         -1, &st, NULL)
      != SQLITE_OK) {
    log_msg(LOG_ERROR, "store: cache: %s", sqlite3_errmsg(db));
    return;
  }
  sqlite3_bind_blob(st, 1, p->key, STORE_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, p->magic, (int)p->magic_len, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, p->runtime, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 4, p->data, (int)p->len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)p->len);
  sqlite3_bind_int64(st, 6, p->when);
  sqlite3_bind_int64(st, 7, p->when);
  if (sqlite3_step(st) != SQLITE_DONE)
    log_msg(LOG_ERROR, "store: cache: %s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  evict(db, p->max_bytes);
}

static void
put_encode(struct fbuf *fb, const void *arg)
{
  const struct put *p = arg;
  fbuf_put_u64(fb, TAG_KIND, STORE_OP_CACHE_PUT);
  fbuf_put(fb, TAG_KEY, p->key, STORE_KEY_BYTES);
  fbuf_put(fb, TAG_MAGIC, p->magic, p->magic_len);
  fbuf_put_str(fb, TAG_RUNTIME, p->runtime);
  fbuf_put(fb, TAG_DATA, p->data, p->len);
  fbuf_put_u64(fb, TAG_MAX_BYTES, p->max_bytes);
}

static const struct store_job_type put_job
    = { .run = put_run, .free = put_free, .encode = put_encode };

void
cache_put(struct store *st, const uint8_t key[STORE_KEY_BYTES], const struct cache_salt *salt,
          const uint8_t *data, size_t len, uint64_t max_bytes)
{
  if (st == NULL || len == 0 || len > INT32_MAX)
    return;
  struct put *p = xzalloc(sizeof *p);
  memcpy(p->key, key, STORE_KEY_BYTES);
  p->magic_len = salt->magic_len < sizeof p->magic ? salt->magic_len : sizeof p->magic;
  memcpy(p->magic, salt->magic, p->magic_len);
  p->runtime = xstrdup(salt->runtime);
  p->data = xmalloc(len);
  memcpy(p->data, data, len);
  p->len = len;
  p->max_bytes = max_bytes;
  p->when = wall_ms();
  store_queue(st, &put_job, p);
}

static uint64_t
counter(sqlite3 *db, const char *name)
{
  sqlite3_stmt *q = NULL;
  uint64_t v = 0;
  if (sqlite3_prepare_v2(db, "SELECT value FROM counters WHERE name = ?", -1, &q, NULL)
      == SQLITE_OK) {
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW)
      v = (uint64_t)sqlite3_column_int64(q, 0);
  }
  sqlite3_finalize(q);
  return v;
}

int
cache_stats(struct store *st, const char *runtime, const uint8_t *magic, size_t magic_len,
            struct cache_stats *out, kiln_error_t *err)
{
  memset(out, 0, sizeof *out);
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(st->rd,
                         "SELECT COUNT(*), COALESCE(SUM(size), 0),"
                         " COALESCE(SUM(substr(runtime, 1, length(?1)) != ?1"
                         " OR (?2 IS NOT NULL AND python_magic != ?2)), 0) FROM code_cache",
                         -1, &q, NULL)
      != SQLITE_OK)
    return kiln_error_make(err, 0, "cache: %s", sqlite3_errmsg(st->rd));
  sqlite3_bind_text(q, 1, runtime, -1, SQLITE_STATIC);
  if (magic_len)
    sqlite3_bind_blob(q, 2, magic, (int)magic_len, SQLITE_STATIC);
  if (sqlite3_step(q) != SQLITE_ROW) {
    kiln_error_make(err, 0, "cache: %s", sqlite3_errmsg(st->rd));
    sqlite3_finalize(q);
    return -1;
  }
  out->entries = (uint64_t)sqlite3_column_int64(q, 0);
  out->bytes = (uint64_t)sqlite3_column_int64(q, 1);
  out->other_versions = (uint64_t)sqlite3_column_int64(q, 2);
  sqlite3_finalize(q);
  out->hits = counter(st->rd, "cache_hits");
  out->misses = counter(st->rd, "cache_misses");
  out->evictions = counter(st->rd, "cache_evictions");
  return 0;
}

int64_t
cache_clear(struct store *st, kiln_error_t *err)
{
  if (st->mode != STORE_DIRECT)
    return kiln_error_make(err, 0, "clear the cache: the store was not opened to write directly");
  sqlite3 *db = st->wr;
  char *msg = NULL;
  if (sqlite3_exec(db, "DELETE FROM code_cache", NULL, NULL, &msg) != SQLITE_OK) {
    kiln_error_make(err, 0, "clear the cache: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
  }
  return sqlite3_changes(db);
}
