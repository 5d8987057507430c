#define _GNU_SOURCE
/* The store (kernel/store): opening and migrating kiln.db, refusing a
   database it cannot use, the code cache's keys, round trip and
   least-recently-used eviction, and the history's pages.  Each test
   works in a directory of its own under $TMPDIR.  */
#include "check.h"
#include "store.h"
#include "store_dir.h"
#include "util.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Schema version 1 exactly as migrations[0] in kernel/store/db.c made
   it: a database that kiln wrote before the code cache existed.  */
static const char schema_v1[] = "CREATE TABLE history ("
                                "  id INTEGER PRIMARY KEY,"
                                "  session_id TEXT NOT NULL,"
                                "  execution_count INTEGER NOT NULL,"
                                "  code_hash BLOB NOT NULL,"
                                "  code TEXT NOT NULL,"
                                "  started_ms INTEGER NOT NULL,"
                                "  duration_ms REAL NOT NULL,"
                                "  status TEXT NOT NULL,"
                                "  error_type TEXT,"
                                "  stdout_bytes INTEGER NOT NULL,"
                                "  stderr_bytes INTEGER NOT NULL,"
                                "  artifacts TEXT NOT NULL);"
                                "CREATE INDEX history_by_session ON history (session_id, id);";

static char *
db_path(const char *dir)
{
  return xasprintf("%s/%s", dir, STORE_FILE);
}

/* Runs SQL on DIR/kiln.db through a connection of the test's own,
   creating the file; true when every statement succeeded.  */
static bool
raw_exec(const char *dir, const char *sql)
{
  char *path = db_path(dir);
  sqlite3 *db = NULL;
  bool ok = sqlite3_open(path, &db) == SQLITE_OK
            && sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    fprintf(stderr, "raw_exec: %s\n", db ? sqlite3_errmsg(db) : "?");
  sqlite3_close(db);
  free(path);
  return ok;
}

/* The one integer SQL selects from DIR/kiln.db, or -1.  */
static int64_t
raw_int(const char *dir, const char *sql)
{
  char *path = db_path(dir);
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  int64_t v = -1;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
      && sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
    v = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  free(path);
  return v;
}

static bool
file_exists(const char *dir, const char *name)
{
  char *p = xasprintf("%s/%s", dir, name);
  struct stat st;
  bool r = stat(p, &st) == 0;
  free(p);
  return r;
}

/* Opening must fail in MODE with a message holding every one of the
   NULL-terminated WORDS.  */
static bool
refused_saying(const char *dir, enum store_mode mode, const char *const *words)
{
  kiln_error_t err = NULL;
  struct store *st = store_open(dir, mode, &err);
  if (st != NULL) {
    store_close(st);
    fprintf(stderr, "refused_saying: the store opened\n");
    return false;
  }
  if (err == NULL || err->msg == NULL) {
    fprintf(stderr, "refused_saying: no error\n");
    return false;
  }
  bool ok = true;
  for (; *words; words++)
    if (strstr(err->msg, *words) == NULL) {
      fprintf(stderr, "refused_saying: \"%s\" not in \"%s\"\n", *words, err->msg);
      ok = false;
    }
  kiln_error_release(&err);
  return ok;
}

/* ---- opening and migrations -------------------------------------- */

static void
a_new_database_is_made_at_the_current_version(void)
{
  char *dir = make_dir();
  kiln_error_t err = NULL;
  struct store *st = store_open(dir, STORE_DIRECT, &err);
  CHECK(st != NULL);
  if (st) {
    CHECK(store_schema_version(st) == STORE_SCHEMA_VERSION);
    char *ok = store_integrity_check(st);
    CHECK(strcmp(ok, "ok") == 0);
    free(ok);
    store_close(st);
  }
  kiln_error_release(&err);
  /* It holds every cell's code: its owner's alone.  */
  char *path = db_path(dir);
  struct stat sb;
  CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
  free(path);
  remove_dir(dir);
}

struct collected {
  size_t n;
  int64_t ids[64];
  char sessions[64][32];
  char codes[64][64];
  uint64_t counts[64];
  char status[64][16];
  char error_type[64][32]; /* "" for NULL */
  uint64_t out[64], err[64];
  int64_t started[64];
  char artifacts[64][32];
};

static void
collect(void *ctx, int64_t id, const struct history_row *r)
{
  struct collected *c = ctx;
  if (c->n >= 64)
    return;
  c->ids[c->n] = id;
  snprintf(c->sessions[c->n], sizeof c->sessions[0], "%s", r->session_id);
  snprintf(c->codes[c->n], sizeof c->codes[0], "%.*s", (int)r->code_len, r->code);
  c->counts[c->n] = r->execution_count;
  snprintf(c->status[c->n], sizeof c->status[0], "%s", r->status);
  snprintf(c->error_type[c->n], sizeof c->error_type[0], "%s", r->error_type ? r->error_type : "");
  c->out[c->n] = r->stdout_bytes;
  c->err[c->n] = r->stderr_bytes;
  c->started[c->n] = r->started_ms;
  snprintf(c->artifacts[c->n], sizeof c->artifacts[0], "%s", r->artifacts ? r->artifacts : "");
  c->n++;
}

static void
a_version_1_database_is_migrated_forward_keeping_its_history(void)
{
  char *dir = make_dir();
  CHECK(raw_exec(dir, schema_v1));
  CHECK(raw_exec(dir, "INSERT INTO history (session_id, execution_count, code_hash, code,"
                      " started_ms, duration_ms, status, error_type, stdout_bytes, stderr_bytes,"
                      " artifacts) VALUES ('0123abcd', 7, x'00', 'print(\"old\")', 1700000000000,"
                      " 1.5, 'error', 'ValueError', 4, 0, 'fig-1.png');"
                      "PRAGMA user_version = 1;"));
  /* Reading does not migrate: an old database is refused and left as it
     was.  */
  CHECK(refused_saying(dir, STORE_READ,
                       (const char *const[]){ STORE_FILE, "schema version 1", "migrate", NULL }));
  CHECK(raw_int(dir, "PRAGMA user_version") == 1);

  kiln_error_t err = NULL;
  struct store *st = store_open(dir, STORE_DIRECT, &err);
  CHECK(st != NULL);
  if (st == NULL) {
    fprintf(stderr, "store_open: %s\n", err ? err->msg : "?");
    kiln_error_release(&err);
    remove_dir(dir);
    return;
  }
  CHECK(store_schema_version(st) == STORE_SCHEMA_VERSION);
  struct collected c = { 0 };
  CHECK(store_history_page(st, NULL, 0, 10, collect, &c, &err) == 0);
  CHECK(c.n == 1);
  CHECK(strcmp(c.sessions[0], "0123abcd") == 0);
  CHECK(strcmp(c.codes[0], "print(\"old\")") == 0);
  CHECK(c.counts[0] == 7);
  CHECK(strcmp(c.status[0], "error") == 0);
  CHECK(strcmp(c.error_type[0], "ValueError") == 0);
  CHECK(c.out[0] == 4 && c.started[0] == 1700000000000);
  CHECK(strcmp(c.artifacts[0], "fig-1.png") == 0);
  /* The code cache came with version 2, and works.  */
  struct cache_stats cs;
  CHECK(cache_stats(st, "x", NULL, 0, &cs, &err) == 0 && cs.entries == 0);
  uint8_t key[STORE_KEY_BYTES] = { 1 };
  struct cache_salt salt = { .magic = { 0xcb, 0x0d }, .magic_len = 2, .runtime = "x" };
  cache_put(st, key, &salt, (const uint8_t *)"code", 4, 1000);
  size_t len = 0;
  uint8_t *got = cache_get(st, key, &len);
  CHECK(got && len == 4 && memcmp(got, "code", 4) == 0);
  free(got);
  store_close(st);
  CHECK(raw_int(dir, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                     " ('code_cache', 'counters')")
        == 2);
  CHECK(raw_int(dir, "SELECT COUNT(*) FROM history") == 1);
  CHECK(raw_int(dir, "PRAGMA user_version") == STORE_SCHEMA_VERSION);
  /* And now it can be read.  */
  st = store_open(dir, STORE_READ, &err);
  CHECK(st != NULL);
  store_close(st);
  kiln_error_release(&err);
  remove_dir(dir);
}

static void
a_database_of_a_newer_kiln_is_refused(void)
{
  char *dir = make_dir();
  CHECK(raw_exec(dir, "CREATE TABLE future (x); PRAGMA user_version = 99;"));
  static const char *const words[]
      = { STORE_FILE, "schema version 99", "made by a newer kiln", NULL };
  CHECK(refused_saying(dir, STORE_DIRECT, words));
  CHECK(refused_saying(dir, STORE_THREADED, words));
  CHECK(refused_saying(dir, STORE_READ, (const char *const[]){ "schema version 99", NULL }));
  /* Left as it was: nothing of this kiln's schema was added.  */
  CHECK(raw_int(dir, "PRAGMA user_version") == 99);
  CHECK(raw_int(dir, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('history', 'code_cache')")
        == 0);
  remove_dir(dir);
}

static void
a_file_that_is_not_a_database_is_refused(void)
{
  char *dir = make_dir();
  char *path = db_path(dir);
  static const char junk[] = "these bytes are no SQLite database, whatever their name says.\n"
                             "these bytes are no SQLite database, whatever their name says.\n";
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0 && write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
  close(fd);
  static const char *const words[] = { STORE_FILE, "not a database", NULL };
  CHECK(refused_saying(dir, STORE_DIRECT, words));
  CHECK(refused_saying(dir, STORE_THREADED, words));
  CHECK(refused_saying(dir, STORE_READ, words));
  /* Never overwritten.  */
  char back[sizeof junk + 16] = { 0 };
  fd = open(path, O_RDONLY);
  CHECK(fd >= 0 && read(fd, back, sizeof back) == (ssize_t)sizeof junk);
  close(fd);
  CHECK(memcmp(back, junk, sizeof junk) == 0);
  free(path);
  remove_dir(dir);
}

static void
reading_a_missing_database_is_refused_and_creates_nothing(void)
{
  char *dir = make_dir();
  CHECK(refused_saying(dir, STORE_READ, (const char *const[]){ STORE_FILE, NULL }));
  CHECK(!file_exists(dir, STORE_FILE));
  remove_dir(dir);
}

/* ---- the code cache ---------------------------------------------- */

static const struct cache_salt base_salt = {
  .magic = { 0xcb, 0x0d, 0x0d, 0x0a },
  .magic_len = 4,
  .runtime = "0.1.0+0123456789abcdef",
  .flags = 0x2000,
  .optimize = 0,
};

static void
key_of(const struct cache_salt *salt, const char *source, uint8_t key[STORE_KEY_BYTES])
{
  cache_key(salt, source, strlen(source), key);
}

static void
the_key_changes_with_everything_that_decides_the_code(void)
{
  const char *src = "x = 1\nx";
  uint8_t k0[STORE_KEY_BYTES], k1[STORE_KEY_BYTES];
  key_of(&base_salt, src, k0);
  key_of(&base_salt, src, k1);
  CHECK(memcmp(k0, k1, sizeof k0) == 0);

  struct cache_salt s = base_salt;
  s.magic[1] = 0x0e; /* another Python */
  key_of(&s, src, k1);
  CHECK(memcmp(k0, k1, sizeof k0) != 0);

  s = base_salt;
  s.magic_len = 3;
  key_of(&s, src, k1);
  CHECK(memcmp(k0, k1, sizeof k0) != 0);

  s = base_salt;
  s.runtime = "0.1.0+fedcba9876543210"; /* another kiln_runtime.py */
  key_of(&s, src, k1);
  CHECK(memcmp(k0, k1, sizeof k0) != 0);

  s = base_salt;
  s.flags = 0;
  key_of(&s, src, k1);
  CHECK(memcmp(k0, k1, sizeof k0) != 0);

  s = base_salt;
  s.optimize = 1;
  key_of(&s, src, k1);
  CHECK(memcmp(k0, k1, sizeof k0) != 0);

  key_of(&base_salt, "x = 2\nx", k1);
  CHECK(memcmp(k0, k1, sizeof k0) != 0);
  /* One byte past the length given is not part of the source.  */
  cache_key(&base_salt, "x = 1\nxy", 7, k1);
  CHECK(memcmp(k0, k1, sizeof k0) == 0);

  /* Where the runtime ends and the source begins is part of the key.  */
  uint8_t a[STORE_KEY_BYTES], b[STORE_KEY_BYTES];
  s = base_salt;
  s.runtime = "ab";
  key_of(&s, "c", a);
  s.runtime = "a";
  key_of(&s, "bc", b);
  CHECK(memcmp(a, b, sizeof a) != 0);
}

static void
a_stored_entry_comes_back_as_it_went_in(void)
{
  char *dir = make_dir();
  kiln_error_t err = NULL;
  struct store *st = store_open(dir, STORE_THREADED, &err);
  CHECK(st != NULL);
  if (st == NULL) {
    kiln_error_release(&err);
    remove_dir(dir);
    return;
  }
  uint8_t key[STORE_KEY_BYTES], other[STORE_KEY_BYTES];
  key_of(&base_salt, "print('hi')", key);
  key_of(&base_salt, "print('ho')", other);
  uint8_t data[300];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 7); /* NUL bytes among them */
  size_t len = 0;
  CHECK(cache_get(st, key, &len) == NULL);
  cache_count_miss(st);
  cache_put(st, key, &base_salt, data, sizeof data, 1 << 20);
  store_sync(st);
  len = 0;
  uint8_t *got = cache_get(st, key, &len);
  CHECK(got != NULL && len == sizeof data && memcmp(got, data, len) == 0);
  free(got);
  CHECK(cache_get(st, other, &len) == NULL);
  store_sync(st);

  struct cache_stats cs;
  CHECK(cache_stats(st, "0.1.0+", base_salt.magic, base_salt.magic_len, &cs, &err) == 0);
  CHECK(cs.entries == 1 && cs.bytes == sizeof data);
  CHECK(cs.hits == 1 && cs.misses == 1 && cs.evictions == 0);
  CHECK(cs.other_versions == 0);
  /* Another kiln's (or another Python's) entries are counted apart.  */
  CHECK(cache_stats(st, "0.2.0+", NULL, 0, &cs, &err) == 0 && cs.other_versions == 1);
  CHECK(cache_stats(st, "0.1.0+", (const uint8_t *)"\x01\x02\x0d\x0a", 4, &cs, &err) == 0
        && cs.other_versions == 1);

  /* Clearing needs a store that writes at once; the counters stay.  */
  CHECK(cache_clear(st, &err) < 0 && err != NULL);
  kiln_error_release(&err);
  store_close(st);
  st = store_open(dir, STORE_DIRECT, &err);
  CHECK(st != NULL);
  if (st) {
    CHECK(cache_clear(st, &err) == 1);
    CHECK(cache_get(st, key, &len) == NULL);
    CHECK(cache_stats(st, "0.1.0+", NULL, 0, &cs, &err) == 0);
    CHECK(cs.entries == 0 && cs.bytes == 0 && cs.hits == 1 && cs.misses == 1);
    store_close(st);
  }
  kiln_error_release(&err);
  remove_dir(dir);
}

static bool
present(struct store *st, const uint8_t key[STORE_KEY_BYTES])
{
  size_t len = 0;
  uint8_t *got = cache_get(st, key, &len);
  free(got);
  return got != NULL;
}

/* Present, by the database itself: unlike cache_get, it does not count
   as a use.  */
static bool
stored(const char *dir, const uint8_t key[STORE_KEY_BYTES])
{
  char hex[2 * STORE_KEY_BYTES + 1];
  for (size_t i = 0; i < STORE_KEY_BYTES; i++)
    snprintf(hex + 2 * i, 3, "%02x", key[i]);
  char *sql = xasprintf("SELECT COUNT(*) FROM code_cache WHERE key = x'%s'", hex);
  int64_t n = raw_int(dir, sql);
  free(sql);
  return n == 1;
}

/* Entries' last use is kept in milliseconds: steps of the test apart by
   more than that have an order.  */
static void
next_ms(void)
{
  usleep(3000);
}

static void
the_least_recently_used_entry_is_evicted_first(void)
{
  char *dir = make_dir();
  kiln_error_t err = NULL;
  struct store *st = store_open(dir, STORE_THREADED, &err);
  CHECK(st != NULL);
  if (st == NULL) {
    kiln_error_release(&err);
    remove_dir(dir);
    return;
  }
  enum { SIZE = 100, MAX = 3 * SIZE };
  uint8_t data[SIZE];
  memset(data, 'c', sizeof data);
  uint8_t a[STORE_KEY_BYTES], b[STORE_KEY_BYTES], c[STORE_KEY_BYTES], d[STORE_KEY_BYTES];
  key_of(&base_salt, "a", a);
  key_of(&base_salt, "b", b);
  key_of(&base_salt, "c", c);
  key_of(&base_salt, "d", d);
  cache_put(st, a, &base_salt, data, SIZE, MAX);
  store_sync(st);
  next_ms();
  cache_put(st, b, &base_salt, data, SIZE, MAX);
  store_sync(st);
  next_ms();
  cache_put(st, c, &base_salt, data, SIZE, MAX);
  store_sync(st);
  next_ms();
  /* A, the oldest stored, is used: B is now the least recently used.  */
  CHECK(present(st, a));
  store_sync(st);
  next_ms();
  cache_put(st, d, &base_salt, data, SIZE, MAX);
  store_sync(st);
  CHECK(stored(dir, a));
  CHECK(!stored(dir, b));
  CHECK(stored(dir, c));
  CHECK(stored(dir, d));
  struct cache_stats cs;
  CHECK(cache_stats(st, "0.1.0+", NULL, 0, &cs, &err) == 0);
  CHECK(cs.entries == 3 && cs.bytes == MAX && cs.evictions == 1);

  /* One entry twice the size of the others makes room by evicting as
     many as it takes, least recently used first: C, then A (D was stored
     after A's use).  */
  next_ms();
  uint8_t e[STORE_KEY_BYTES], big[2 * SIZE];
  memset(big, 'e', sizeof big);
  key_of(&base_salt, "e", e);
  cache_put(st, e, &base_salt, big, sizeof big, MAX);
  store_sync(st);
  CHECK(!stored(dir, a));
  CHECK(!stored(dir, c));
  CHECK(stored(dir, d));
  CHECK(stored(dir, e));
  CHECK(cache_stats(st, "0.1.0+", NULL, 0, &cs, &err) == 0);
  CHECK(cs.entries == 2 && cs.bytes == MAX && cs.evictions == 3);
  store_close(st);
  kiln_error_release(&err);
  remove_dir(dir);
}

static void
an_entry_larger_than_the_whole_cache_is_not_stored(void)
{
  char *dir = make_dir();
  kiln_error_t err = NULL;
  struct store *st = store_open(dir, STORE_DIRECT, &err);
  CHECK(st != NULL);
  if (st == NULL) {
    kiln_error_release(&err);
    remove_dir(dir);
    return;
  }
  uint8_t small[STORE_KEY_BYTES], huge[STORE_KEY_BYTES];
  key_of(&base_salt, "small", small);
  key_of(&base_salt, "huge", huge);
  uint8_t data[1000];
  memset(data, 'x', sizeof data);
  cache_put(st, small, &base_salt, data, 100, 500);
  next_ms();
  cache_put(st, huge, &base_salt, data, 501, 500);
  CHECK(!stored(dir, huge));
  /* Nor does it evict what was there.  */
  CHECK(stored(dir, small));
  /* Exactly the cache's size fits, in place of the smaller entry.  */
  cache_put(st, huge, &base_salt, data, 500, 500);
  CHECK(stored(dir, huge));
  struct cache_stats cs;
  CHECK(cache_stats(st, "0.1.0+", NULL, 0, &cs, &err) == 0);
  CHECK(cs.entries == 1 && cs.bytes == 500 && cs.evictions == 1);
  store_close(st);
  kiln_error_release(&err);
  remove_dir(dir);
}

/* ---- history ----------------------------------------------------- */

static void
add_cell(struct store *st, const char *session, uint64_t n, const char *status,
         const char *error_type)
{
  char code[32];
  snprintf(code, sizeof code, "%s-cell-%llu", session, (unsigned long long)n);
  struct history_row r = {
    .session_id = session,
    .execution_count = n,
    .code = code,
    .code_len = strlen(code),
    .started_ms = 1700000000000 + (int64_t)n,
    .duration_ms = 0.5,
    .status = status,
    .error_type = error_type,
    .stdout_bytes = n * 10,
    .stderr_bytes = n,
    .artifacts = "",
  };
  store_history_add(st, &r);
}

static void
history_comes_in_pages_newest_first_by_session(void)
{
  char *dir = make_dir();
  kiln_error_t err = NULL;
  struct store *st = store_open(dir, STORE_THREADED, &err);
  CHECK(st != NULL);
  if (st == NULL) {
    kiln_error_release(&err);
    remove_dir(dir);
    return;
  }
  /* 25 cells of "aaaa" with 3 of "bbbb" among them.  */
  for (uint64_t n = 1; n <= 25; n++) {
    add_cell(st, "aaaa", n, n % 5 == 0 ? "error" : "ok", n % 5 == 0 ? "ValueError" : NULL);
    if (n % 8 == 0)
      add_cell(st, "bbbb", n / 8, "crashed", NULL);
  }
  store_sync(st);

  /* Pages of 10: 10, 10, 5, each continuing below the last, none
     overlapping, the last saying there is no more.  */
  uint64_t expect = 25;
  int64_t before = 0;
  size_t pages = 0, sizes[4] = { 0 };
  do {
    struct collected c = { 0 };
    int64_t next = store_history_page(st, "aaaa", before, 10, collect, &c, &err);
    CHECK(next >= 0);
    if (next < 0 || pages == 4)
      break;
    sizes[pages++] = c.n;
    for (size_t i = 0; i < c.n; i++) {
      CHECK(strcmp(c.sessions[i], "aaaa") == 0);
      CHECK(c.counts[i] == expect);
      char code[32];
      snprintf(code, sizeof code, "aaaa-cell-%llu", (unsigned long long)expect);
      CHECK(strcmp(c.codes[i], code) == 0);
      CHECK(strcmp(c.status[i], expect % 5 == 0 ? "error" : "ok") == 0);
      CHECK(strcmp(c.error_type[i], expect % 5 == 0 ? "ValueError" : "") == 0);
      CHECK(c.out[i] == expect * 10 && c.err[i] == expect);
      if (i > 0)
        CHECK(c.ids[i] < c.ids[i - 1]);
      expect--;
    }
    if (next > 0)
      CHECK(c.n == 10 && next == c.ids[c.n - 1]);
    before = next;
  } while (before > 0);
  CHECK(pages == 3 && sizes[0] == 10 && sizes[1] == 10 && sizes[2] == 5);
  CHECK(expect == 0);

  /* The other session's three, newest first, and nothing else.  */
  struct collected c = { 0 };
  CHECK(store_history_page(st, "bbbb", 0, 10, collect, &c, &err) == 0);
  CHECK(c.n == 3);
  for (size_t i = 0; i < c.n; i++) {
    CHECK(strcmp(c.sessions[i], "bbbb") == 0);
    CHECK(c.counts[i] == 3 - i);
    CHECK(strcmp(c.status[i], "crashed") == 0);
  }
  /* A page exactly as long as what is left says there is no more.  */
  struct collected exact = { 0 };
  CHECK(store_history_page(st, "bbbb", 0, 3, collect, &exact, &err) == 0 && exact.n == 3);
  /* A session nobody ran has no history.  */
  struct collected none = { 0 };
  CHECK(store_history_page(st, "cccc", 0, 10, collect, &none, &err) == 0 && none.n == 0);

  /* Every session: all 28, newest first, the sessions interleaved.  */
  struct collected all = { 0 };
  CHECK(store_history_page(st, NULL, 0, 64, collect, &all, &err) == 0);
  CHECK(all.n == 28);
  CHECK(strcmp(all.codes[0], "aaaa-cell-25") == 0);
  CHECK(strcmp(all.codes[1], "bbbb-cell-3") == 0);
  CHECK(strcmp(all.codes[2], "aaaa-cell-24") == 0);
  CHECK(strcmp(all.codes[27], "aaaa-cell-1") == 0);

  /* A forgotten session's history is gone; the other's stays.  */
  store_history_forget(st, "bbbb");
  store_sync(st);
  struct collected gone = { 0 };
  CHECK(store_history_page(st, "bbbb", 0, 10, collect, &gone, &err) == 0 && gone.n == 0);
  struct collected kept = { 0 };
  CHECK(store_history_page(st, "aaaa", 0, 64, collect, &kept, &err) == 0 && kept.n == 25);
  store_close(st);
  kiln_error_release(&err);
  remove_dir(dir);
}

static void
history_queued_before_close_is_committed(void)
{
  char *dir = make_dir();
  kiln_error_t err = NULL;
  struct store *st = store_open(dir, STORE_THREADED, &err);
  CHECK(st != NULL);
  if (st) {
    for (uint64_t n = 1; n <= 5; n++)
      add_cell(st, "aaaa", n, "ok", NULL);
    /* No sync: closing runs what is queued.  */
    store_close(st);
  }
  CHECK(raw_int(dir, "SELECT COUNT(*) FROM history WHERE session_id = 'aaaa'") == 5);
  kiln_error_release(&err);
  remove_dir(dir);
}

static const struct test_case cases[] = {
  { "a new database is made at the current version, readable by its owner alone",
    a_new_database_is_made_at_the_current_version },
  { "a version 1 database is migrated to the current version, keeping its history",
    a_version_1_database_is_migrated_forward_keeping_its_history },
  { "a database of a newer kiln is refused", a_database_of_a_newer_kiln_is_refused },
  { "a file that is not a database is refused", a_file_that_is_not_a_database_is_refused },
  { "reading a missing database is refused and creates nothing",
    reading_a_missing_database_is_refused_and_creates_nothing },
  { "the key changes with everything that decides the code",
    the_key_changes_with_everything_that_decides_the_code },
  { "a stored entry comes back as it went in", a_stored_entry_comes_back_as_it_went_in },
  { "the least recently used entry is evicted first",
    the_least_recently_used_entry_is_evicted_first },
  { "an entry larger than the whole cache is not stored",
    an_entry_larger_than_the_whole_cache_is_not_stored },
  { "history comes in pages, newest first, by session",
    history_comes_in_pages_newest_first_by_session },
  { "history queued before close is committed", history_queued_before_close_is_committed },
};

int
main(void)
{
  return RUN(cases);
}
