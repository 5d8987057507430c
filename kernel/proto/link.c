#define _GNU_SOURCE
#include "link.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

ssize_t
link_in_read(int fd, struct link_in *l)
{
  uint8_t chunk[64 << 10];
  int fds[FRAME_MAX_FDS];
  size_t nfds = 0;
  ssize_t r = frame_recv_some(fd, chunk, sizeof chunk, fds, &nfds, NULL);
  int e = errno;
  for (size_t i = 0; i < nfds; i++) {
    if (r > 0 && l->nfds < FRAME_MAX_FDS)
      l->fds[l->nfds++] = fds[i];
    else
      close(fds[i]);
  }
  if (r > 0)
    buf_append(&l->buf, chunk, (size_t)r);
  errno = e;
  return r;
}

int
link_in_next(struct link_in *l, uint32_t max, struct frame *f, uint8_t **payload, struct buf *raw,
             kiln_error_t *err)
{
  if (raw && l->buf.len >= FRAME_HDR_SIZE) {
    uint16_t type;
    int64_t len = frame_header_decode(l->buf.data, &type, max);
    if (len >= 0 && l->buf.len >= FRAME_HDR_SIZE + (size_t)len) {
      raw->len = 0;
      buf_append(raw, l->buf.data, FRAME_HDR_SIZE + (size_t)len);
    }
  }
  int n = link_next_frame(&l->buf, max, f, payload, err);
  if (n <= 0)
    return n;
  f->nfds = 0;
  if (f->type == FRAME_SPAWNED) {
    memcpy(f->fds, l->fds, l->nfds * sizeof *l->fds);
    f->nfds = l->nfds;
    l->nfds = 0;
  }
  return 1;
}

void
link_in_reset(struct link_in *l)
{
  for (size_t i = 0; i < l->nfds; i++)
    close(l->fds[i]);
  l->nfds = 0;
  buf_free(&l->buf);
}

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

int
link_exec_self(pid_t *pid, const posix_spawn_file_actions_t *fa, char *const argv[])
{
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, dflt;
  sigemptyset(&none);
  sigemptyset(&dflt);
  sigaddset(&dflt, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &dflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  int rc = posix_spawn(pid, link_kiln_exe(), fa, &attr, argv, environ);
  posix_spawnattr_destroy(&attr);
  return rc;
}

int
link_spawn_self(const char *name, const char *command, int child_fd, pid_t *pid, int *sock,
                kiln_error_t *err)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return kiln_error_make(err, errno, "socketpair for the %s", name);
  /* Exec, not fork: the front may run threads (the store's writer, an
     HTTP or ZeroMQ library), and only a fresh image is safe to
     initialise CPython in.  posix_spawn is vfork-like, safe with
     threads.  The child's socket is CHILD_FD, stdin /dev/null, and its
     stdout is its stderr: stdout is the MCP channel.  The front's signal
     mask (SIGCHLD and the stop signals blocked for the signalfd) must
     not reach it or anything it starts.  */
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, sv[1], child_fd);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, 2, 1);
  cleanup_free char *argv0 = xasprintf("kiln-%s", name);
  char *argv[] = { argv0, (char *)command, NULL };
  int rc = link_exec_self(pid, &fa, argv);
  posix_spawn_file_actions_destroy(&fa);
  close(sv[1]);
  if (rc != 0) {
    close(sv[0]);
    return kiln_error_make(err, rc, "start the %s from %s", name, link_kiln_exe());
  }
  *sock = sv[0];
  set_nonblock(*sock, true);
  return 0;
}
