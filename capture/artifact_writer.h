/* Writes artifacts to disk on a thread of their own, so that a cell's
   images (up to tens of MiB) never stall the front's loop.  The loop
   queues a job and keeps serving; the bytes stay readable from memory
   until the file is complete (written to a temporary name, renamed when
   whole), and the loop learns of each completion through an eventfd on
   its epoll set.  A job dropped before it completes leaves no file.  */
#ifndef KILN_ARTIFACT_WRITER_H
#define KILN_ARTIFACT_WRITER_H

#include "error.h"
#include "loop.h"

#include <stddef.h>
#include <stdint.h>

struct art_writer;
struct art_job;

/* Called on the loop for each finished job: ERRNUM 0 when the file is in
   place, else why it is not (the job is then freed by the writer).  */
typedef void (*art_done_fn)(void *ctx, struct art_job *job, int errnum);

/* Starts the thread and watches its eventfd on LOOP.  NULL with ERR.  */
struct art_writer *art_writer_new(struct loop *loop, art_done_fn done, void *ctx,
                                  kiln_error_t *err);

/* Queues DATA (LEN bytes, taken over: freed by the writer) for PATH
   (copied).  Returns the job, owned by the writer, valid until its done
   callback returns or art_drop is called.  */
struct art_job *art_write(struct art_writer *w, const char *path, uint8_t *data, size_t len);

/* The bytes of JOB, borrowed: valid until the job is done or dropped.  */
const uint8_t *art_job_data(const struct art_job *job, size_t *len);

/* Drops JOB: when this returns, no file of JOB's exists, not even a
   temporary one (a write in progress is waited for, so that the
   directory it was in can be removed next).  JOB is not used after
   this.  */
void art_drop(struct art_writer *w, struct art_job *job);

/* Stops the thread; queued jobs are dropped (no files are left).  */
void art_writer_free(struct art_writer *w);

#endif
