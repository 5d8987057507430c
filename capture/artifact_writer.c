#define _GNU_SOURCE
#include "artifact_writer.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum job_state {
  J_QUEUED,
  J_WRITING, /* its temporary file is being written, the lock released */
  J_DONE,    /* written (or failed): waiting for the loop */
  J_DROPPED, /* the loop no longer wants it */
};

struct art_job {
  struct art_job *next;
  char *path;
  uint8_t *data;
  size_t len;
  enum job_state state;
  int errnum;
};

struct art_writer {
  struct loop *loop;
  art_done_fn done;
  void *ctx;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* Signalled when a write ends, for a drop waiting on it.  */
  pthread_cond_t written;
  /* Under MU: jobs to write, jobs finished (for the loop), and stop.  */
  struct art_job *todo, *todo_tail, *finished;
  struct art_job *current; /* the job being written, if any */
  bool stop;
  int efd;
};

static void
job_free(struct art_job *j)
{
  free(j->path);
  free(j->data);
  free(j);
}

/* Writes J's bytes to a temporary name beside its path; returns 0 or an
   errno, the temporary file removed on failure.  */
static int
write_tmp(const struct art_job *j, const char *tmp)
{
  int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return errno;
  int e = write_full(fd, j->data, j->len) < 0 ? errno : 0;
  if (close(fd) < 0 && e == 0)
    e = errno;
  if (e)
    unlink(tmp);
  return e;
}

static void *
run(void *arg)
{
  struct art_writer *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (w->todo == NULL && !w->stop)
      pthread_cond_wait(&w->cv, &w->mu);
    if (w->stop)
      break;
    struct art_job *j = w->todo;
    w->todo = j->next;
    if (w->todo == NULL)
      w->todo_tail = NULL;
    if (j->state == J_DROPPED) {
      job_free(j);
      continue;
    }
    j->state = J_WRITING;
    w->current = j;
    pthread_mutex_unlock(&w->mu);
    cleanup_free char *tmp = xasprintf("%s.part", j->path);
    int e = write_tmp(j, tmp);
    pthread_mutex_lock(&w->mu);
    w->current = NULL;
    pthread_cond_broadcast(&w->written);
    /* Renamed into place only while still wanted, under the lock the
       loop's drop takes: a dropped job leaves no file either way.  The
       drop waited for this write, so the file is gone before the loop
       goes on (and may remove the directory it was in).  */
    if (j->state == J_DROPPED) {
      if (e == 0)
        unlink(tmp);
      job_free(j);
      continue;
    }
    if (e == 0 && rename(tmp, j->path) < 0) {
      e = errno;
      unlink(tmp);
    }
    j->errnum = e;
    j->state = J_DONE;
    j->next = w->finished;
    w->finished = j;
    uint64_t one = 1;
    (void)!write(w->efd, &one, sizeof one);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void
on_event(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)loop;
  (void)events;
  struct art_writer *w = data;
  uint64_t n;
  (void)!read(fd, &n, sizeof n);
  pthread_mutex_lock(&w->mu);
  struct art_job *list = w->finished;
  w->finished = NULL;
  pthread_mutex_unlock(&w->mu);
  while (list) {
    struct art_job *j = list;
    list = j->next;
    /* The callback may drop other jobs, never this one: it is done.  */
    w->done(w->ctx, j, j->errnum);
    job_free(j);
  }
}

struct art_writer *
art_writer_new(struct loop *loop, art_done_fn done, void *ctx, kiln_error_t *err)
{
  struct art_writer *w = xzalloc(sizeof *w);
  w->loop = loop;
  w->done = done;
  w->ctx = ctx;
  w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->efd < 0) {
    kiln_error_make(err, errno, "eventfd");
    free(w);
    return NULL;
  }
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  pthread_cond_init(&w->written, NULL);
  int rc = pthread_create(&w->thread, NULL, run, w);
  if (rc != 0) {
    kiln_error_make(err, rc, "start the artifact writer");
    close(w->efd);
    free(w);
    return NULL;
  }
  if (loop_add(loop, w->efd, EPOLLIN, on_event, w, err) < 0) {
    art_writer_free(w);
    return NULL;
  }
  return w;
}

struct art_job *
art_write(struct art_writer *w, const char *path, uint8_t *data, size_t len)
{
  struct art_job *j = xzalloc(sizeof *j);
  j->path = xstrdup(path);
  j->data = data;
  j->len = len;
  pthread_mutex_lock(&w->mu);
  if (w->todo_tail)
    w->todo_tail->next = j;
  else
    w->todo = j;
  w->todo_tail = j;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return j;
}

const uint8_t *
art_job_data(const struct art_job *job, size_t *len)
{
  *len = job->len;
  return job->data;
}

void
art_drop(struct art_writer *w, struct art_job *job)
{
  pthread_mutex_lock(&w->mu);
  if (job->state == J_DONE) {
    /* Finished, not yet seen by the loop: take it off that list.  */
    for (struct art_job **pp = &w->finished; *pp; pp = &(*pp)->next)
      if (*pp == job) {
        *pp = job->next;
        break;
      }
    if (job->errnum == 0)
      unlink(job->path);
    job_free(job);
  } else if (job->state == J_WRITING) {
    /* Its temporary file exists now: wait for the write to end (one
       image, bounded by the artifact limits), after which the thread
       removes the file and frees the job.  Until then the directory it
       is in could not be removed.  */
    job->state = J_DROPPED;
    while (w->current == job)
      pthread_cond_wait(&w->written, &w->mu);
  } else
    /* Queued: the thread frees it without writing.  */
    job->state = J_DROPPED;
  pthread_mutex_unlock(&w->mu);
}

void
art_writer_free(struct art_writer *w)
{
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  /* Whatever was never written is dropped; finished jobs the loop never
     saw are the caller's to account for before this (the front drops
     every artifact first).  */
  for (struct art_job *j = w->todo, *n; j; j = n) {
    n = j->next;
    job_free(j);
  }
  for (struct art_job *j = w->finished, *n; j; j = n) {
    n = j->next;
    job_free(j);
  }
  loop_del(w->loop, w->efd);
  close(w->efd);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  pthread_cond_destroy(&w->written);
  free(w);
}
