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
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void
buf_free(struct buf *b)
{
  free(b->data);
  *b = (struct buf){ 0 };
}

char *
base64_encode(const uint8_t *data, size_t n)
{
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = xmalloc((n + 2) / 3 * 4 + 1);
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
    out[o++] = alphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  return out;
}

uint8_t *
base64_decode(const char *text, size_t n, size_t *len)
{
  uint8_t *out = xmalloc(n / 4 * 3 + 3);
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  for (size_t i = 0; i < n; i++) {
    char c = text[i];
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+' || c == '-')
      v = 62;
    else if (c == '/' || c == '_')
      v = 63;
    else if (c == '=') {
      pad++;
      continue;
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    else {
      free(out);
      return NULL;
    }
    if (pad) { /* data after padding */
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  if (bits >= 6 || pad > 2) {
    free(out);
    return NULL;
  }
  *len = o;
  return out;
}

int64_t
now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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

/* Returns the length of the valid UTF-8 sequence at S (at most N bytes
   available), or 0 if it is invalid or truncated.  */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80)
    return 1;
  else if (c >= 0xc2 && c <= 0xdf)
    len = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
      || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

char *
utf8_sanitize(const char *s, size_t n, size_t *out_len)
{
  const unsigned char *u = (const unsigned char *)s;
  /* Every invalid byte becomes three: size for the worst case.  */
  char *out = xmalloc(n * 3 + 1);
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t l = utf8_seq_len(u + i, n - i);
    if (l == 0) {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
      continue;
    }
    memcpy(out + o, s + i, l);
    o += l;
    i += l;
  }
  out[o] = '\0';
  if (out_len)
    *out_len = o;
  return out;
}

size_t
utf8_boundary_before(const char *s, size_t n)
{
  const unsigned char *u = (const unsigned char *)s;
  /* Step back over at most three continuation bytes to the lead byte.  */
  size_t i = n;
  for (int k = 0; k < 3 && i > 0 && (u[i - 1] & 0xc0) == 0x80; k++)
    i--;
  if (i == 0)
    return n;
  unsigned char lead = u[i - 1];
  size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if (lead < 0x80 || (lead & 0xc0) == 0x80)
    return n;
  return (n - (i - 1) >= need) ? n : i - 1;
}
