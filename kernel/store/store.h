/* kiln's one database, $KILN_HOME/kiln.db (SQLite, WAL): the execution
   history, the code cache and hibernated sessions.  Opened by the front
   after the zygote exists, or by the daemon for the fronts it serves;
   no handle ever crosses a fork.

   Two connections.  Writes go to one writer thread, which runs every
   job queued since its last turn in a single transaction: the loop never
   waits for a commit, a WAL checkpoint or a large blob, and a burst of
   cells costs one commit, not one each.  Reads (a cache lookup, a page
   of history) run on the caller's thread through a connection of their
   own: in WAL mode a reader never waits for the writer, and each read is
   one indexed lookup bounded by its LIMIT.

   A front on the daemon (STORE_LINKED) reads the same way, but its
   writer thread sends its writes to the daemon (link.c), which owns the
   database: one writer for every kernel of a KILN_HOME, so no kernel
   waits for another's lock, and one place that migrates and evicts.  */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The schema this kiln writes; older databases are migrated forward on
   open, newer ones refused.  */
#define STORE_SCHEMA_VERSION 5
#define STORE_FILE           "kiln.db"
/* BLAKE2b-256, libsodium's crypto_generichash.  */
#define STORE_KEY_BYTES 32

struct store;

enum store_mode {
  STORE_THREADED, /* a server's: writes queued for the writer thread */
  STORE_DIRECT,   /* the command line's: each write runs at once, on the caller's thread */
  STORE_READ,     /* read only: writes are dropped, and no migration is made */
  STORE_LINKED,   /* read here, writes sent to the daemon that owns it (store_open_linked) */
};

/* Opens DIR/kiln.db in MODE, creating or migrating it (except to read:
   a database of another version is then refused).  NULL with ERR.  */
struct store *store_open(const char *dir, enum store_mode mode, kiln_error_t *err);

/* Opens DIR/kiln.db as the daemon's at FD (a connected socket, taken:
   closed on failure too) owns it: the daemon is asked to open it for
   writing, and once it has, it is opened here to read.  Writes go to
   the daemon in order.  Should its link fail, they are written here,
   and nothing queued is lost; RECONNECT(CTX) (may be NULL) is then
   asked for a new socket, at most every STORE_RELINK_MS, and the writes
   go to the daemon on it again once it answers.  NULL with ERR when the
   daemon refuses or does not answer within STORE_LINK_TIMEOUT_MS.  */
#define STORE_LINK_TIMEOUT_MS 10000
#define STORE_RELINK_MS       1000
struct store *store_open_linked(const char *dir, int fd, int (*reconnect)(void *ctx), void *ctx,
                                kiln_error_t *err);

/* The daemon's side of a store link.  FR is a front's FRAME_STORE_WRITE:
   the write it carries is queued on ST.  Returns 0, or -1 with ERR when
   FR is malformed (nothing is queued then).  Paths a write names must
   be under HOME (ST's KILN_HOME, a real path) once resolved.  */
struct frame;
int store_apply(struct store *st, const char *home, const struct frame *fr, kiln_error_t *err);

/* Whether FR is a FRAME_STORE_WRITE that expires history (1), or
   another (0), or a malformed one (-1 with ERR).  For 1: its cut-off in
   *BEFORE_MS and the live sessions of the front that sent it in *LIVE
   (N of them; the array allocated, the strings FR's).  The daemon adds
   the live sessions of its other fronts on the same store before it
   expires anything: history expires for sessions no front has open.  */
int store_expire_parse(const struct frame *fr, int64_t *before_ms, const char ***live, size_t *n,
                       kiln_error_t *err);

/* Calls FN(CTX) on the writer thread once every write queued on ST
   before it is committed (or given up): how the daemon answers a
   FRAME_STORE_SYNC without waiting.  At once on a store without a
   writer thread.  */
void store_notify(struct store *st, void (*fn)(void *ctx), void *ctx);

/* Runs the queued writes, stops the writer thread and closes both
   connections.  Safe on NULL.  */
void store_close(struct store *st);

/* Waits until every write queued before the call is committed (by the
   daemon, for a linked store).  */
void store_sync(struct store *st);

/* The schema version of an open database (PRAGMA user_version).  */
int store_schema_version(struct store *st);

/* PRAGMA integrity_check's first line ("ok" when sound), allocated.  */
char *store_integrity_check(struct store *st);

/* ---- history (history.c) ----------------------------------------- */

/* One executed cell, as recorded.  Strings are borrowed by the call
   that takes the row.  */
struct history_row {
  const char *session_id;
  uint64_t execution_count;
  const char *kind; /* "python" or "shell"; NULL reads as "python" */
  const char *code;
  size_t code_len;
  int64_t started_ms; /* Unix time in milliseconds */
  double duration_ms;
  const char *status;     /* ok, error, interrupted, killed, crashed, cancelled, closed */
  const char *error_type; /* NULL unless status is error */
  uint64_t stdout_bytes, stderr_bytes;
  const char *artifacts; /* comma-separated names, "" for none */
};

/* Queues ROW (copied) for the writer.  */
void store_history_add(struct store *st, const struct history_row *row);

/* Calls FN for at most LIMIT rows of SESSION_ID (every session when
   NULL), newest first, starting below BEFORE (a row id; 0 for the
   newest).  Returns the id to pass as BEFORE for the next page (0 when
   there is none), or -1 with ERR.  The row and its strings are valid
   only during FN; ID is the row's id.  */
int64_t store_history_page(struct store *st, const char *session_id, int64_t before, size_t limit,
                           void (*fn)(void *ctx, int64_t id, const struct history_row *row),
                           void *ctx, kiln_error_t *err);

/* Deletes the history older than BEFORE_MS (Unix ms) of every session
   that is neither hibernated (in the sessions table) nor one of the N
   ids in LIVE: sessions closed or lost long ago.  Queued.  */
void store_history_expire(struct store *st, int64_t before_ms, const char *const *live, size_t n);

/* Deletes the history of SESSION_ID.  Queued for the writer.  */
void store_history_forget(struct store *st, const char *session_id);

/* ---- code cache (cache.c) ---------------------------------------- */

/* What, besides a cell's source, decides its compiled form: the
   compiler's Python magic number, kiln's runtime version, the compile
   flags and the optimisation level.  Part of every key.  */
struct cache_salt {
  uint8_t magic[16];
  size_t magic_len;
  const char *runtime; /* kiln's version */
  uint64_t flags;
  int optimize;
};

/* KEY = BLAKE2b-256 over SALT and SOURCE (LEN bytes).  */
void cache_key(const struct cache_salt *salt, const char *source, size_t len,
               uint8_t key[STORE_KEY_BYTES]);

/* The cached value of KEY (allocated, the caller frees it; its length
   in *LEN), or NULL on a miss.  A hit is counted and the entry's last
   use moved forward (queued for the writer).  */
uint8_t *cache_get(struct store *st, const uint8_t key[STORE_KEY_BYTES], size_t *len);

/* Counts a miss (queued).  */
void cache_count_miss(struct store *st);

/* Stores DATA (LEN bytes, copied) under KEY, evicting the least recently
   used entries while the cache holds more than MAX_BYTES.  SALT says
   which Python and runtime made it (kept for `kiln cache stats`).
   Queued for the writer.  */
void cache_put(struct store *st, const uint8_t key[STORE_KEY_BYTES], const struct cache_salt *salt,
               const uint8_t *data, size_t len, uint64_t max_bytes);

struct cache_stats {
  uint64_t entries, bytes;
  uint64_t hits, misses, evictions; /* since the database was made */
  uint64_t other_versions; /* entries another Python or kiln made, never used by this one */
};
/* OTHER_VERSIONS counts the entries whose runtime does not start with
   RUNTIME, or whose magic is not MAGIC (MAGIC_LEN 0: not compared).  */
int cache_stats(struct store *st, const char *runtime, const uint8_t *magic, size_t magic_len,
                struct cache_stats *out, kiln_error_t *err);

/* Empties the cache (counters kept), at once, on a STORE_DIRECT store.
   Returns the entries removed, or -1 with ERR.  */
int64_t cache_clear(struct store *st, kiln_error_t *err);

/* ---- hibernated sessions (sessions.c) ---------------------------- */

/* Snapshots up to this size are kept in the database; larger ones in a
   file beside it (the WAL stays small).  */
#define STORE_SNAPSHOT_INLINE_MAX (4u << 20)

/* A hibernated session, as recorded.  Strings borrowed.  */
struct session_row {
  const char *id;
  int64_t created_ms, last_used_ms, hibernated_ms;
  uint64_t execution_count;
  bool has_snapshot;
  uint64_t snapshot_size;
  uint8_t snapshot_hash[STORE_KEY_BYTES];
  const char *lost;      /* "name (why); ..." */
  const char *dropped;   /* "name, ..." */
  const char *note;      /* why there is no snapshot, or "" */
  const char *artifacts; /* its images, as the front records them, or "" */
  const char *file;      /* the snapshot's file, or NULL (inline, or none) */
};

/* Records ROW, its snapshot being the file TMP_PATH (NULL: none): the
   writer syncs it, then keeps it inline when it is small (and removes
   the file) or renames it into DIR as snapshot-HASH, and only then
   commits the row, so that a crash leaves the previous snapshot or this
   one, never half of one.  Queued.  */
void store_session_hibernated(struct store *st, const struct session_row *row, const char *tmp_path,
                              const char *dir);

/* Loads the row of ID into *ROW (strings allocated into *STRS, which the
   caller frees) and its snapshot: *BLOB (allocated) when inline, or
   *FILE (allocated path) when in a file; both NULL without one.
   Returns 0, 1 when there is no such session, -1 with ERR.  */
int store_session_get(struct store *st, const char *id, struct session_row *row, char **strs,
                      uint8_t **blob, size_t *blob_len, char **file, kiln_error_t *err);

/* Calls FN for every recorded session.  */
int store_sessions_each(struct store *st, void (*fn)(void *ctx, const struct session_row *row),
                        void *ctx, kiln_error_t *err);

/* Forgets session ID: its row and snapshot file; with HISTORY, its
   history too.  Queued.  */
void store_session_forget(struct store *st, const char *id, bool history);

#endif
