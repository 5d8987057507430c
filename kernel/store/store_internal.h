/* The store's insides: its two connections and the writer's queue.  */
#ifndef KILN_STORE_INTERNAL_H
#define KILN_STORE_INTERNAL_H

#include "store.h"

#include <pthread.h>
#include <sqlite3.h>

/* A write, run by the writer thread inside its turn's transaction.  RUN
   gets the writer's connection; FREE (may be NULL) releases ARG after
   it ran, or when the store closes without running it.  */
struct store_job {
  struct store_job *next;
  void (*run)(sqlite3 *db, void *arg);
  void (*free)(void *arg);
  void *arg;
};

struct store {
  sqlite3 *rd; /* the caller's thread: reads */
  sqlite3 *wr; /* the writer's: the thread's, or RD itself (direct); NULL to read */
  enum store_mode mode;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;   /* jobs queued, or stop */
  pthread_cond_t idle; /* a turn ended */
  struct store_job *head, *tail;
  uint64_t queued, done; /* jobs ever queued / committed (or given up) */
  bool stop;
};

/* Queues RUN(ARG) for the writer thread, or runs it at once (direct), or
   drops it (read); ARG is freed after.  */
void store_queue(struct store *st, void (*run)(sqlite3 *db, void *arg), void (*free_arg)(void *arg),
                 void *arg);

/* Removes PATH once the transaction of the job that asks commits, and
   not at all if it rolls back: a file a committed row may still name is
   never removed first.  For jobs only.  */
void store_unlink_after_commit(const char *path);

/* Runs SQL (no results) on DB; logs and returns -1 on failure.  */
int store_exec(sqlite3 *db, const char *sql);

/* Adds DELTA to counter NAME (the counters table), on the writer.  */
void store_counter_add(sqlite3 *db, const char *name, int64_t delta);

#endif
