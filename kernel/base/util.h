/* Small helpers shared by every process: allocation that aborts on out of
   memory, cleanup attributes, fd and time utilities.  */
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

/* Out of memory is not recoverable anywhere in kiln: every allocation goes
   through these, which abort with a message instead of returning NULL.  */
_Noreturn void xoom(void);
void *xmalloc(size_t n);
void *xzalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated string; the caller frees it.  */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void
cleanup_freep(void *p)
{
  free(*(void **)p);
}
static inline void
cleanup_closep(int *fd)
{
  if (*fd >= 0)
    close(*fd);
}
#define cleanup_free  __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))

/* Hands ownership of *PP to the caller and leaves NULL behind, so that a
   cleanup attribute on the source does not free it.  */
static inline void *
steal_pointer(void *pp)
{
  void **p = pp;
  void *v = *p;
  *p = NULL;
  return v;
}
static inline int
steal_fd(int *fd)
{
  int v = *fd;
  *fd = -1;
  return v;
}

/* A growable byte buffer: frame reassembly and write queues.  The buffer
   owns DATA; buf_free releases it.  */
struct buf {
  uint8_t *data;
  size_t len, cap;
};
void buf_append(struct buf *b, const void *data, size_t n);
/* Drops the first N bytes.  */
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

/* Monotonic clock in nanoseconds.  */
int64_t now_ns(void);
/* The wall clock, in milliseconds since the Unix epoch.  */
int64_t wall_ms(void);

int set_nonblock(int fd, bool on);
int set_cloexec(int fd, bool on);

/* Reads or writes exactly N bytes on a blocking fd, retrying on EINTR and
   short transfers.  Returns 0, or -1 with errno set (EPIPE-like errors, and
   0 bytes read at EOF gives errno = ECONNRESET).  */
int read_full(int fd, void *buf, size_t n);
int write_full(int fd, const void *buf, size_t n);

/* Closes every fd >= FIRST except those listed in KEEP.  */
void close_fds_except(int first, const int *keep, size_t nkeep);

/* Creates PATH and any missing parents with MODE, like `mkdir -p`.
   Returns 0, or -1 with errno.  */
int mkdir_p(const char *path, mode_t mode);

/* Fills BUF with N random bytes from the kernel.  */
void random_bytes(void *buf, size_t n);

/* The name of a signal ("SIGSEGV"), or "signal N" in a static buffer.  */
const char *signal_name(int sig);

/* base64.h and utf8.h were part of this header.  */
#include "base64.h"
#include "utf8.h"

#endif
