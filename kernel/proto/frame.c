#define _GNU_SOURCE
#include "frame.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

static void
put_le16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void
put_le32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t
get_le16(const uint8_t *p)
{
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t
get_le32(const uint8_t *p)
{
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void
fbuf_reserve(struct fbuf *fb, size_t more)
{
  if (fb->len + more <= fb->cap)
    return;
  size_t cap = fb->cap ? fb->cap : 256;
  while (cap < fb->len + more)
    cap *= 2;
  fb->data = xrealloc(fb->data, cap);
  fb->cap = cap;
}

void
fbuf_init(struct fbuf *fb, enum frame_type type)
{
  fb->data = NULL;
  fb->len = fb->cap = 0;
  fbuf_reserve(fb, FRAME_HDR_SIZE);
  memset(fb->data, 0, FRAME_HDR_SIZE);
  put_le16(fb->data + 4, (uint16_t)type);
  fb->len = FRAME_HDR_SIZE;
}

void
fbuf_free(struct fbuf *fb)
{
  free(fb->data);
  fb->data = NULL;
  fb->len = fb->cap = 0;
}

void
fbuf_put(struct fbuf *fb, enum frame_tag tag, const void *data, size_t len)
{
  if (len > UINT32_MAX)
    abort();
  fbuf_reserve(fb, 6 + len);
  put_le16(fb->data + fb->len, (uint16_t)tag);
  put_le32(fb->data + fb->len + 2, (uint32_t)len);
  if (len)
    memcpy(fb->data + fb->len + 6, data, len);
  fb->len += 6 + len;
}

void
fbuf_put_str(struct fbuf *fb, enum frame_tag tag, const char *s)
{
  fbuf_put(fb, tag, s, strlen(s));
}

void
fbuf_put_u64(struct fbuf *fb, enum frame_tag tag, uint64_t v)
{
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(v >> (8 * i));
  fbuf_put(fb, tag, b, 8);
}

void
fbuf_finish(struct fbuf *fb)
{
  put_le32(fb->data, (uint32_t)(fb->len - FRAME_HDR_SIZE));
}

int64_t
frame_header_decode(const uint8_t hdr[FRAME_HDR_SIZE], uint16_t *type, uint32_t max_payload)
{
  uint32_t len = get_le32(hdr);
  *type = get_le16(hdr + 4);
  if (len > max_payload || get_le16(hdr + 6) != 0)
    return -1;
  return len;
}

int
frame_parse_fields(struct frame *f, const uint8_t *payload, size_t len, kiln_error_t *err)
{
  size_t off = 0;
  f->nfields = 0;
  while (off < len) {
    if (len - off < 6)
      return kiln_error_make(err, 0, "truncated field header in frame type %u", f->type);
    uint16_t tag = get_le16(payload + off);
    uint32_t flen = get_le32(payload + off + 2);
    off += 6;
    if (flen > len - off)
      return kiln_error_make(err, 0, "field %u runs past the end of frame type %u", tag, f->type);
    if (f->nfields == FRAME_MAX_FIELDS)
      return kiln_error_make(err, 0, "too many fields in frame type %u", f->type);
    for (size_t i = 0; i < f->nfields; i++)
      if (f->fields[i].tag == tag)
        return kiln_error_make(err, 0, "field %u repeated in frame type %u", tag, f->type);
    f->fields[f->nfields++] = (struct field){ .tag = tag, .len = flen, .data = payload + off };
    off += flen;
  }
  return 0;
}

const struct field *
frame_get(const struct frame *f, enum frame_tag tag)
{
  for (size_t i = 0; i < f->nfields; i++)
    if (f->fields[i].tag == tag)
      return &f->fields[i];
  return NULL;
}

int
frame_get_u64(const struct frame *f, enum frame_tag tag, bool optional, uint64_t *out,
              kiln_error_t *err)
{
  const struct field *fl = frame_get(f, tag);
  if (fl == NULL)
    return optional ? 0 : kiln_error_make(err, 0, "frame type %u lacks field %u", f->type, tag);
  if (fl->len != 8)
    return kiln_error_make(err, 0, "field %u of frame type %u has size %u, not 8", tag, f->type,
                           fl->len);
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | fl->data[i];
  *out = v;
  return 0;
}

int
frame_get_str(const struct frame *f, enum frame_tag tag, bool optional, char **out, size_t *len,
              kiln_error_t *err)
{
  const struct field *fl = frame_get(f, tag);
  *out = NULL;
  if (len)
    *len = 0;
  if (fl == NULL)
    return optional ? 0 : kiln_error_make(err, 0, "frame type %u lacks field %u", f->type, tag);
  if (memchr(fl->data, '\0', fl->len) != NULL)
    return kiln_error_make(err, 0, "field %u of frame type %u holds a NUL byte", tag, f->type);
  *out = xstrndup((const char *)fl->data, fl->len);
  if (len)
    *len = fl->len;
  return 0;
}

int
frame_send(int fd, const struct fbuf *fb, const int *fds, size_t nfds, kiln_error_t *err)
{
  union {
    char buf[CMSG_SPACE(sizeof(int) * FRAME_MAX_FDS)];
    struct cmsghdr align;
  } u;
  size_t off = 0;
  if (nfds > FRAME_MAX_FDS)
    abort();
  while (off < fb->len) {
    struct iovec iov = { .iov_base = fb->data + off, .iov_len = fb->len - off };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    /* The fds ride with the first byte so the receiver gets them with
       the header.  */
    if (off == 0 && nfds > 0) {
      memset(&u, 0, sizeof u);
      msg.msg_control = u.buf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t r = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return kiln_error_make(err, errno, "send frame");
    off += (size_t)r;
  }
  return 0;
}

/* One recvmsg (FLAGS added to MSG_CMSG_CLOEXEC), retried on EINTR.  Fds
   that arrive with the bytes are appended to FDS (count in *NFDS, at most
   FRAME_MAX_FDS; with FDS NULL or full, extra ones are closed).  Returns
   bytes read, 0 at EOF, -1 with errno.  */
static ssize_t
recv_with_fds(int fd, uint8_t *buf, size_t cap, int flags, int *fds, size_t *nfds, pid_t *sender)
{
  union {
    char buf[CMSG_SPACE(sizeof(int) * FRAME_MAX_FDS * 2) + CMSG_SPACE(sizeof(struct ucred))];
    struct cmsghdr align;
  } u;
  struct iovec iov = { .iov_base = buf, .iov_len = cap };
  struct msghdr msg
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  ssize_t r;
  do
    r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | flags);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return -1;
  if (sender)
    *sender = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS
        && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
      struct ucred cred;
      memcpy(&cred, CMSG_DATA(c), sizeof cred);
      if (sender)
        *sender = cred.pid;
      continue;
    }
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int got[FRAME_MAX_FDS * 2];
    if (n > sizeof got / sizeof got[0])
      n = sizeof got / sizeof got[0];
    memcpy(got, CMSG_DATA(c), n * sizeof(int));
    for (size_t i = 0; i < n; i++) {
      if (fds != NULL && *nfds < FRAME_MAX_FDS)
        fds[(*nfds)++] = got[i];
      else
        close(got[i]);
    }
  }
  return r;
}

ssize_t
frame_recv_some(int fd, uint8_t *buf, size_t cap, int *fds, size_t *nfds, pid_t *sender)
{
  return recv_with_fds(fd, buf, cap, MSG_DONTWAIT, fds, nfds, sender);
}

static int
recv_exact(int fd, uint8_t *buf, size_t n, struct frame *f, kiln_error_t *err)
{
  for (size_t off = 0; off < n;) {
    ssize_t r = recv_with_fds(fd, buf + off, n - off, 0, f->fds, &f->nfds, NULL);
    if (r < 0)
      return kiln_error_make(err, errno, "receive frame");
    if (r == 0)
      return kiln_error_make(err, ECONNRESET, "receive frame: peer closed the socket");
    off += (size_t)r;
  }
  return 0;
}

int
frame_recv(int fd, struct frame *f, uint8_t **buf, uint32_t max_payload, kiln_error_t *err)
{
  uint8_t hdr[FRAME_HDR_SIZE];
  *buf = NULL;
  f->nfds = 0;
  f->nfields = 0;
  if (recv_exact(fd, hdr, sizeof hdr, f, err) < 0)
    return -1;
  int64_t len = frame_header_decode(hdr, &f->type, max_payload);
  if (len < 0)
    return kiln_error_make(err, 0, "frame of type %u is over the %u-byte limit", f->type,
                           max_payload);
  *buf = xmalloc((size_t)len);
  if (recv_exact(fd, *buf, (size_t)len, f, err) < 0)
    return -1;
  return frame_parse_fields(f, *buf, (size_t)len, err);
}

void
frame_fail_exit(int fd, enum frame_type type, kiln_error_t *err, const char *fallback)
{
  struct fbuf fb;
  fbuf_init(&fb, type);
  fbuf_put_str(&fb, TAG_MESSAGE, (err && *err) ? (*err)->msg : fallback);
  fbuf_finish(&fb);
  frame_send(fd, &fb, NULL, 0, NULL);
  _exit(127);
}
