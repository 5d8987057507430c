/* Opening the database, its schema and migrations, and the writer
   thread (store.h says why there is one).  */
#define _GNU_SOURCE
#include "store_internal.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long a connection waits for another's lock (another kiln on the
   same KILN_HOME, `kiln cache clear` while one serves) before failing.  */
#define BUSY_TIMEOUT_MS 5000

/* Migration N takes a database of version N-1 to version N.  Each runs in
   one transaction with the user_version update, so a crash leaves the
   database at one version or the next, never between.  Never edit one
   that has shipped: add the next.  */
static const char *const migrations[] = {
  /* 1: the execution history.  */
  "CREATE TABLE history ("
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
  "CREATE INDEX history_by_session ON history (session_id, id);",
  /* 2: the code cache and its counters.  */
  "CREATE TABLE code_cache ("
  "  key BLOB PRIMARY KEY,"
  "  python_magic BLOB NOT NULL,"
  "  runtime TEXT NOT NULL,"
  "  code BLOB NOT NULL,"
  "  size INTEGER NOT NULL,"
  "  hits INTEGER NOT NULL DEFAULT 0,"
  "  created_ms INTEGER NOT NULL,"
  "  last_used INTEGER NOT NULL) WITHOUT ROWID;"
  "CREATE INDEX code_cache_lru ON code_cache (last_used);"
  "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
  /* 3: hibernated sessions and their snapshots: small ones inline, large
     ones in a file named by their hash.  */
  "CREATE TABLE sessions ("
  "  id TEXT PRIMARY KEY,"
  "  created_ms INTEGER NOT NULL,"
  "  last_used_ms INTEGER NOT NULL,"
  "  hibernated_ms INTEGER NOT NULL,"
  "  execution_count INTEGER NOT NULL,"
  "  snapshot BLOB,"
  "  snapshot_file TEXT,"
  "  snapshot_hash BLOB,"
  "  snapshot_size INTEGER NOT NULL DEFAULT 0,"
  "  lost TEXT NOT NULL DEFAULT '',"
  "  dropped TEXT NOT NULL DEFAULT '',"
  "  note TEXT NOT NULL DEFAULT '');",
  /* 4: what ran: a Python cell or a shell command.  */
  "ALTER TABLE history ADD COLUMN kind TEXT NOT NULL DEFAULT 'python';",
  /* 5: the images a hibernated session keeps in its directory.  */
  "ALTER TABLE sessions ADD COLUMN artifacts TEXT NOT NULL DEFAULT '';",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");

int
store_exec(sqlite3 *db, const char *sql)
{
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    log_msg(LOG_ERROR, "store: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

void
store_counter_add(sqlite3 *db, const char *name, int64_t delta)
{
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO counters (name, value) VALUES (?1, ?2)"
                         " ON CONFLICT (name) DO UPDATE SET value = value + ?2",
                         -1, &st, NULL)
      != SQLITE_OK) {
    log_msg(LOG_ERROR, "store: counter %s: %s", name, sqlite3_errmsg(db));
    return;
  }
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, delta);
  if (sqlite3_step(st) != SQLITE_DONE)
    log_msg(LOG_ERROR, "store: counter %s: %s", name, sqlite3_errmsg(db));
  sqlite3_finalize(st);
}

static int
user_version(sqlite3 *db)
{
  sqlite3_stmt *st = NULL;
  int v = -1;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK
      && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return v;
}

static int
db_connect(const char *path, bool read_only, sqlite3 **out, kiln_error_t *err)
{
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  /* Each connection is used by one thread only; SQLite's own mutexes
     would guard nothing.  */
  flags |= SQLITE_OPEN_NOMUTEX;
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, flags, NULL);
  if (rc != SQLITE_OK) {
    kiln_error_make(err, 0, "open %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return -1;
  }
  sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
  sqlite3_extended_result_codes(db, 1);
  /* WAL: readers never wait for the writer, and a crash mid-commit
     leaves the last committed state.  NORMAL syncs at checkpoints, not
     at every commit: a power cut may lose the last commits, never the
     database's integrity.  */
  const char *pragmas = read_only ? "PRAGMA foreign_keys=ON;"
                                  : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                    " PRAGMA foreign_keys=ON;";
  char *msg = NULL;
  if (sqlite3_exec(db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
    kiln_error_make(err, 0, "%s: %s", path, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return -1;
  }
  *out = db;
  return 0;
}

/* Takes DB from its version to STORE_SCHEMA_VERSION, one migration per
   transaction.  */
static int
migrate(sqlite3 *db, const char *path, kiln_error_t *err)
{
  int from = -1;
  for (;;) {
    /* IMMEDIATE: two kilns opening one new database must not both
       migrate it; the second waits, then sees the new version.  */
    if (store_exec(db, "BEGIN IMMEDIATE") < 0)
      return kiln_error_make(err, 0, "%s: cannot lock it to migrate", path);
    int v = user_version(db);
    if (v < 0 || v > STORE_SCHEMA_VERSION) {
      store_exec(db, "ROLLBACK");
      if (v < 0)
        return kiln_error_make(err, 0, "%s: cannot read its schema version", path);
      return kiln_error_make(err, 0,
                             "%s has schema version %d, newer than this kiln's %d: it was made by"
                             " a newer kiln",
                             path, v, STORE_SCHEMA_VERSION);
    }
    if (from < 0)
      from = v;
    if (v == STORE_SCHEMA_VERSION) {
      /* A new database is made, not migrated: nothing to say.  */
      if (from > 0 && from < v)
        log_msg(LOG_INFO, "store: %s migrated from schema version %d to %d", path, from, v);
      return store_exec(db, "COMMIT");
    }
    cleanup_free char *bump = xasprintf("PRAGMA user_version = %d", v + 1);
    char *msg = NULL;
    if (sqlite3_exec(db, migrations[v], NULL, NULL, &msg) != SQLITE_OK
        || sqlite3_exec(db, bump, NULL, NULL, &msg) != SQLITE_OK
        || sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
      kiln_error_make(err, 0, "%s: migrating to schema version %d: %s", path, v + 1,
                      msg ? msg : sqlite3_errmsg(db));
      sqlite3_free(msg);
      store_exec(db, "ROLLBACK");
      return -1;
    }
  }
}

/* Files to remove once the running turn commits: the thread's own, since
   only the thread running jobs (the writer, or the caller of a direct
   store) uses it.  */
static _Thread_local char **after_commit;
static _Thread_local size_t nafter_commit;

void
store_unlink_after_commit(const char *path)
{
  after_commit = xrealloc(after_commit, (nafter_commit + 1) * sizeof *after_commit);
  after_commit[nafter_commit++] = xstrdup(path);
}

/* Removes the files the turn's jobs named when it COMMITTED, and forgets
   them either way.  */
static void
after_commit_run(bool committed)
{
  for (size_t i = 0; i < nafter_commit; i++) {
    if (committed)
      unlink(after_commit[i]);
    free(after_commit[i]);
  }
  free(after_commit);
  after_commit = NULL;
  nafter_commit = 0;
}

static void
jobs_free(struct store_job *jobs)
{
  while (jobs) {
    struct store_job *next = jobs->next;
    if (jobs->type && jobs->type->free)
      jobs->type->free(jobs->arg);
    free(jobs);
    jobs = next;
  }
}

sqlite3 *
store_writer_db(struct store *st)
{
  if (st->wr == NULL && st->mode == STORE_LINKED) {
    kiln_error_t err = NULL;
    if (db_connect(st->path, false, &st->wr, &err) < 0 || migrate(st->wr, st->path, &err) < 0) {
      log_error(LOG_ERROR, &err, "store: its daemon is gone and kiln.db cannot be written here");
      sqlite3_close(st->wr);
      st->wr = NULL;
    }
  }
  return st->wr;
}

/* Runs JOBS on the writer's connection in one transaction.  A job that
   fails logs and is skipped; the others still commit.  */
static void
run_jobs(struct store *st, struct store_job *jobs)
{
  sqlite3 *db = store_writer_db(st);
  if (db == NULL)
    return;
  bool in_tx = store_exec(db, "BEGIN IMMEDIATE") == 0;
  for (struct store_job *j = jobs; j; j = j->next)
    if (j->type)
      j->type->run(db, j->arg);
  bool committed = in_tx && store_exec(db, "COMMIT") == 0;
  if (in_tx && !committed)
    store_exec(db, "ROLLBACK");
  after_commit_run(committed);
}

/* The writer's turn: every job queued since the last, in one
   transaction here, or sent to the daemon (a linked store's, until its
   link fails: the rest are then run here).  */
static void *
writer_main(void *arg)
{
  struct store *st = arg;
  pthread_mutex_lock(&st->mu);
  for (;;) {
    while (st->head == NULL && !st->stop)
      pthread_cond_wait(&st->cv, &st->mu);
    if (st->head == NULL && st->stop)
      break;
    struct store_job *jobs = st->head;
    st->head = st->tail = NULL;
    pthread_mutex_unlock(&st->mu);

    uint64_t n = 0;
    for (struct store_job *j = jobs; j; j = j->next)
      n++;
    struct store_job *rest = jobs;
    if (st->mode == STORE_LINKED && st->link < 0)
      store_relink(st);
    if (st->mode == STORE_LINKED && st->link >= 0)
      rest = store_link_send(st, jobs);
    if (rest)
      run_jobs(st, rest);
    jobs_free(jobs);

    pthread_mutex_lock(&st->mu);
    st->done += n;
    pthread_cond_broadcast(&st->idle);
  }
  pthread_mutex_unlock(&st->mu);
  return NULL;
}

static void
enqueue(struct store *st, const struct store_job_type *type, void *arg)
{
  struct store_job *j = xzalloc(sizeof *j);
  j->type = type;
  j->arg = arg;
  pthread_mutex_lock(&st->mu);
  if (st->tail)
    st->tail->next = j;
  else
    st->head = j;
  st->tail = j;
  st->queued++;
  pthread_cond_signal(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

void
store_queue(struct store *st, const struct store_job_type *type, void *arg)
{
  if (st->mode == STORE_DIRECT || st->mode == STORE_READ) {
    if (st->mode == STORE_DIRECT) {
      /* Outside a transaction each statement commits by itself.  */
      type->run(st->wr, arg);
      after_commit_run(true);
    }
    if (type->free)
      type->free(arg);
    return;
  }
  enqueue(st, type, arg);
}

void
store_sync(struct store *st)
{
  if (st == NULL || (st->mode != STORE_THREADED && st->mode != STORE_LINKED))
    return;
  /* A linked store's writes are committed when its daemon says so: a
     sync point asks it.  */
  if (st->mode == STORE_LINKED)
    enqueue(st, NULL, NULL);
  pthread_mutex_lock(&st->mu);
  uint64_t want = st->queued;
  while (st->done < want)
    pthread_cond_wait(&st->idle, &st->mu);
  pthread_mutex_unlock(&st->mu);
}

struct notify {
  void (*fn)(void *ctx);
  void *ctx;
};

static void
notify_run(sqlite3 *db, void *arg)
{
  (void)db;
  (void)arg;
}

/* After the turn that holds it commits: called from jobs_free.  */
static void
notify_free(void *arg)
{
  struct notify *n = arg;
  n->fn(n->ctx);
  free(n);
}

static const struct store_job_type notify_job = { .run = notify_run, .free = notify_free };

void
store_notify(struct store *st, void (*fn)(void *ctx), void *ctx)
{
  struct notify *n = xmalloc(sizeof *n);
  n->fn = fn;
  n->ctx = ctx;
  store_queue(st, &notify_job, n);
}

struct store *
store_open_mode(const char *dir, enum store_mode mode, int link, kiln_error_t *err)
{
  /* A linked store reads what its daemon writes.  */
  bool read_only = mode == STORE_READ || mode == STORE_LINKED;
  cleanup_free char *path = xasprintf("%s/%s", dir, STORE_FILE);
  if (mode == STORE_READ && access(path, F_OK) < 0) {
    kiln_error_make(err, 0, "there is no %s: kiln serve has not run with KILN_HOME %s", path, dir);
    return NULL;
  }
  if (!read_only) {
    /* It holds every cell's code: the owner's alone.  */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      kiln_error_make(err, errno, "open %s", path);
      return NULL;
    }
    close(fd);
  }
  struct store *st = xzalloc(sizeof *st);
  st->mode = mode;
  st->path = steal_pointer(&path);
  st->link = -1;
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);
  pthread_cond_init(&st->idle, NULL);
  if (!read_only
      && (db_connect(st->path, false, &st->wr, err) < 0 || migrate(st->wr, st->path, err) < 0))
    goto fail;
  if (mode == STORE_DIRECT)
    st->rd = st->wr;
  else if (db_connect(st->path, read_only, &st->rd, err) < 0)
    goto fail;
  if (read_only) {
    int v = user_version(st->rd);
    /* A file SQLite cannot read (not a database, or damaged) is not one
       that a migration would mend: say what SQLite says.  */
    if (v < 0) {
      kiln_error_make(err, 0, "%s: %s", st->path, sqlite3_errmsg(st->rd));
      goto fail;
    }
    if (v != STORE_SCHEMA_VERSION) {
      kiln_error_make(err, 0,
                      "%s has schema version %d and this kiln reads %d: start `kiln serve` once"
                      " to migrate it",
                      st->path, v, STORE_SCHEMA_VERSION);
      goto fail;
    }
  }
  if (mode == STORE_THREADED || mode == STORE_LINKED) {
    st->link = link;
    link = -1;
    int rc = pthread_create(&st->thread, NULL, writer_main, st);
    if (rc != 0) {
      kiln_error_make(err, rc, "start the store's writer");
      goto fail;
    }
    st->thread_started = true;
  }
  return st;
fail:
  if (link >= 0)
    close(link);
  if (st->link >= 0)
    close(st->link);
  if (st->rd != st->wr)
    sqlite3_close(st->rd);
  sqlite3_close(st->wr);
  free(st->path);
  free(st);
  return NULL;
}

struct store *
store_open(const char *dir, enum store_mode mode, kiln_error_t *err)
{
  if (mode == STORE_LINKED) {
    kiln_error_make(err, 0, "a linked store is opened with its daemon's link");
    return NULL;
  }
  return store_open_mode(dir, mode, -1, err);
}

void
store_close(struct store *st)
{
  if (st == NULL)
    return;
  if (st->thread_started) {
    /* What the daemon has is committed before the link closes.  */
    store_sync(st);
    pthread_mutex_lock(&st->mu);
    st->stop = true;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->thread, NULL);
  }
  sqlite3_finalize(st->get_code);
  if (st->rd != st->wr)
    sqlite3_close(st->rd);
  sqlite3_close(st->wr);
  pthread_mutex_destroy(&st->mu);
  pthread_cond_destroy(&st->cv);
  pthread_cond_destroy(&st->idle);
  if (st->link >= 0)
    close(st->link);
  free(st->path);
  free(st);
}

int
store_schema_version(struct store *st)
{
  return user_version(st->rd);
}

char *
store_integrity_check(struct store *st)
{
  sqlite3_stmt *q = NULL;
  char *out = NULL;
  if (sqlite3_prepare_v2(st->rd, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK
      && sqlite3_step(q) == SQLITE_ROW)
    out = xstrdup((const char *)sqlite3_column_text(q, 0));
  else
    out = xasprintf("integrity_check failed: %s", sqlite3_errmsg(st->rd));
  sqlite3_finalize(q);
  return out;
}
