#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

void
xoom(void)
{
  static const char msg[] = "kiln: out of memory\n";
  (void)!write(2, msg, sizeof msg - 1);
  abort();
}

void *
xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    xoom();
  return p;
}

void *
xzalloc(size_t n)
{
  void *p = calloc(1, n ? n : 1);
  if (p == NULL)
    xoom();
  return p;
}

void *
xrealloc(void *p, size_t n)
{
  p = realloc(p, n ? n : 1);
  if (p == NULL)
    xoom();
  return p;
}

char *
xstrdup(const char *s)
{
  char *p = strdup(s);
  if (p == NULL)
    xoom();
  return p;
}

char *
xstrndup(const char *s, size_t n)
{
  char *p = xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *
xasprintf(const char *fmt, ...)
{
  char *s = NULL;
  va_list ap;
  va_start(ap, fmt);
  int r = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (r < 0)
    xoom();
  return s;
}

void
buf_append(struct buf *b, const void *data, size_t n)
{
  if (n == 0)
    return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, n);
  b->len += n;
}

void
buf_consume(struct buf *b, size_t n)
{
  if (n > 0 && n < b->len)
    memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void
buf_free(struct buf *b)
{
  free(b->data);
  *b = (struct buf){ 0 };
}

int64_t
now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
set_nonblock(int fd, bool on)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0)
    return -1;
  fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  return fcntl(fd, F_SETFL, fl);
}

int
set_cloexec(int fd, bool on)
{
  int fl = fcntl(fd, F_GETFD);
  if (fl < 0)
    return -1;
  fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
  return fcntl(fd, F_SETFD, fl);
}

int
read_full(int fd, void *buf, size_t n)
{
  char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0) {
      errno = ECONNRESET;
      return -1;
    }
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

int
write_full(int fd, const void *buf, size_t n)
{
  const char *p = buf;
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int
cmp_int(const void *a, const void *b)
{
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

void
close_fds_except(int first, const int *keep, size_t nkeep)
{
  int sorted[16];
  if (nkeep > 16)
    abort();
  memcpy(sorted, keep, nkeep * sizeof *keep);
  qsort(sorted, nkeep, sizeof *sorted, cmp_int);
  unsigned lo = (unsigned)first;
  for (size_t i = 0; i < nkeep; i++) {
    if (sorted[i] < first)
      continue;
    if ((unsigned)sorted[i] > lo)
      syscall(SYS_close_range, lo, (unsigned)sorted[i] - 1, 0);
    lo = (unsigned)sorted[i] + 1;
  }
  syscall(SYS_close_range, lo, ~0U, 0);
}

int
mkdir_p(const char *path, mode_t mode)
{
  cleanup_free char *p = xstrdup(path);
  for (char *c = p + 1; *c; c++) {
    if (*c != '/')
      continue;
    *c = '\0';
    if (mkdir(p, mode) < 0 && errno != EEXIST)
      return -1;
    *c = '/';
  }
  if (mkdir(p, mode) < 0 && errno != EEXIST)
    return -1;
  return 0;
}

void
random_bytes(void *buf, size_t n)
{
  char *p = buf;
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      abort();
    p += r;
    n -= (size_t)r;
  }
}

const char *
signal_name(int sig)
{
  static char buf[32];
  const char *abbrev = sigabbrev_np(sig);
  if (abbrev != NULL) {
    snprintf(buf, sizeof buf, "SIG%s", abbrev);
    return buf;
  }
  snprintf(buf, sizeof buf, "signal %d", sig);
  return buf;
}
