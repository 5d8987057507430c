/* The store's insides: its two connections and the writer's queue.  */
#ifndef KILN_STORE_INTERNAL_H
#define KILN_STORE_INTERNAL_H

#include "store.h"

#include "frame.h"

#include <pthread.h>
#include <sqlite3.h>

/* What a linked store sends its daemon for each kind of write (the KIND
   field of a FRAME_STORE_WRITE).  Never renumber one: a front and its
   daemon are one build, but a log may quote them.  */
enum store_op {
  STORE_OP_HISTORY_ADD = 1,
  STORE_OP_HISTORY_FORGET = 2,
  STORE_OP_HISTORY_EXPIRE = 3,
  STORE_OP_CACHE_TOUCH = 4,
  STORE_OP_CACHE_MISS = 5,
  STORE_OP_CACHE_PUT = 6,
  STORE_OP_SESSION_HIBERNATED = 7,
  STORE_OP_SESSION_FORGET = 8,
};

/* A kind of write.  RUN does it on the writer's connection, inside its
   turn's transaction; FREE (may be NULL) releases its argument after it
   ran, was sent, or was dropped.  A linked store instead puts the
   argument into a FRAME_STORE_WRITE with ENCODE (its KIND field
   included), and calls SENT (may be NULL) once the daemon has it: what
   the write hands over (a snapshot file) is then the daemon's.  */
struct store_job_type {
  void (*run)(sqlite3 *db, void *arg);
  void (*free)(void *arg);
  void (*encode)(struct fbuf *fb, const void *arg);
  void (*sent)(void *arg);
};

struct store_job {
  struct store_job *next;
  const struct store_job_type *type; /* NULL: a linked store's sync point */
  void *arg;
};

struct store {
  sqlite3 *rd;            /* the caller's thread: reads */
  sqlite3_stmt *get_code; /* RD's cache lookup, prepared at its first use */
  sqlite3 *wr; /* the writer's: the thread's, or RD itself (direct); NULL to read, or while
                  a linked store's daemon has its writes */
  enum store_mode mode;
  char *path;                  /* the database's */
  int link;                    /* a linked store's socket to its daemon; -1 once it is gone */
  int (*reconnect)(void *ctx); /* a new socket to the daemon, or -1 */
  void *reconnect_ctx;
  int64_t relink_at; /* not asked again before this (now_ns) */
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;   /* jobs queued, or stop */
  pthread_cond_t idle; /* a turn ended */
  struct store_job *head, *tail;
  uint64_t queued, done; /* jobs ever queued / committed (or given up) */
  bool stop;
};

/* store_open, and a linked store's writer thread sending on LINK
   (taken; -1 for none).  */
struct store *store_open_mode(const char *dir, enum store_mode mode, int link, kiln_error_t *err);

/* Queues a write of TYPE with ARG (taken) for the writer thread, or
   runs it at once (direct), or drops it (read).  */
void store_queue(struct store *st, const struct store_job_type *type, void *arg);

/* The writer's connection of ST, opened and migrated now if it has none
   (a linked store whose daemon is gone): NULL when it cannot be.  */
sqlite3 *store_writer_db(struct store *st);

/* link.c: a linked store's writer turn.  Sends the jobs from JOB on, up
   to a sync point (answered before it returns) or the end; returns the
   first job not sent (NULL: all were), and leaves ST->link -1 when the
   link failed.  */
struct store_job *store_link_send(struct store *st, struct store_job *job);

/* A linked store whose link failed links to its daemon again when
   RECONNECT gives a socket and the daemon answers on it (on the writer
   thread, between turns).  */
void store_relink(struct store *st);

/* Counts a hit of KEY and moves its last use forward (queued), as
   cache_get does: how a daemon takes a linked store's hit.  */
void cache_touch(struct store *st, const uint8_t key[STORE_KEY_BYTES]);

/* Removes PATH once the transaction of the job that asks commits, and
   not at all if it rolls back: a file a committed row may still name is
   never removed first.  For jobs only.  */
void store_unlink_after_commit(const char *path);

/* Runs SQL (no results) on DB; logs and returns -1 on failure.  */
int store_exec(sqlite3 *db, const char *sql);

/* Adds DELTA to counter NAME (the counters table), on the writer.  */
void store_counter_add(sqlite3 *db, const char *name, int64_t delta);

#endif
