#define _GNU_SOURCE
#include "internal.h"
#include "records.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Writes as much of Q to FD as it takes without blocking.  Returns 0, or
   -1 when the peer is gone.  */
int
link_flush(int fd, struct buf *q)
{
  while (q->len > 0) {
    ssize_t r = send(fd, q->data, q->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (r < 0)
      return -1;
    buf_consume(q, (size_t)r);
  }
  return 0;
}

/* Extracts the next whole frame from IN into F (fields point into
   *PAYLOAD, a copy the caller frees).  Returns 1 for a frame, 0 when more
   bytes are needed, -1 with ERR for a malformed one.  */
int
link_next_frame(struct buf *in, uint32_t max, struct frame *f, uint8_t **payload, kiln_error_t *err)
{
  if (in->len < FRAME_HDR_SIZE)
    return 0;
  int64_t len = frame_header_decode(in->data, &f->type, max);
  if (len < 0)
    return kiln_error_make(err, 0, "frame of type %u over the %u-byte limit", f->type, max);
  if (in->len < FRAME_HDR_SIZE + (size_t)len)
    return 0;
  *payload = xmalloc((size_t)len);
  memcpy(*payload, in->data + FRAME_HDR_SIZE, (size_t)len);
  buf_consume(in, FRAME_HDR_SIZE + (size_t)len);
  return frame_parse_fields(f, *payload, (size_t)len, err) < 0 ? -1 : 1;
}
