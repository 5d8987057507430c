/* The fronts the daemon serves: their configurations and spawn
   requests in, the zygote's frames and workers out.  */
#define _GNU_SOURCE
#include "internal.h"
#include "handoff.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- sending to a front ------------------------------------------- */

/* Sends the LEN bytes of one frame at DATA, with NFDS descriptors.  A
   front's socket is blocking with a send timeout (SEND_TIMEOUT_S).
   Returns 0, or -1 when the front is gone or stuck.  */
int
dmn_send_raw(int fd, const void *data, size_t len, const int *fds, size_t nfds)
{
  const struct fbuf frame = { .data = (uint8_t *)data, .len = len };
  return frame_send(fd, &frame, fds, nfds, NULL);
}

void
dmn_send_message(struct conn *c, enum frame_type type, const char *msg)
{
  struct fbuf fb;
  fbuf_init(&fb, type);
  fbuf_put_str(&fb, TAG_MESSAGE, msg);
  fbuf_finish(&fb);
  (void)dmn_send_raw(c->fd, fb.data, fb.len, NULL, 0);
  fbuf_free(&fb);
}

/* ---- fronts ------------------------------------------------------- */

static bool
cg_name_ok(const char *s, size_t n)
{
  if (n == 0 || n >= CG_NAME_MAX || s[0] == '.')
    return false;
  for (size_t i = 0; i < n; i++)
    if (!(s[i] == '.' || s[i] == '-' || s[i] == '_' || (s[i] >= '0' && s[i] <= '9')
          || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
      return false;
  return true;
}

static void
conn_spawn(struct conn *c, const struct frame *fr)
{
  struct zygote *z = c->z;
  cleanup_free char *name = NULL, *packages = NULL;
  size_t n = 0;
  if (frame_get_str(fr, TAG_SESSION_ID, false, &name, &n, NULL) < 0 || !cg_name_ok(name, n)
      || frame_get_str(fr, TAG_PATH, true, &packages, NULL, NULL) < 0
      || (packages && packages[0] != '/')) {
    dmn_send_message(c, FRAME_SPAWN_FAILED, "a malformed spawn request");
    return;
  }
  /* A fresh session takes a spare worker when one is ready.  */
  if (packages && dmn_spare_take(z, c, packages))
    return;
  dmn_pending_push(z, c, name, steal_pointer(&packages));
  dmn_zygote_send_spawns(z);
}

static void
conn_frame(struct conn *c, const struct frame *fr)
{
  if (fr->type == FRAME_STORE_OPEN) {
    if (c->z || c->store)
      dmn_conn_drop(c);
    else
      dmn_store_open(c, fr);
    return;
  }
  bool store_frame = fr->type == FRAME_STORE_WRITE || fr->type == FRAME_STORE_SYNC;
  if (c->store || store_frame) {
    /* A store link carries the store's frames only, once it is open.  */
    if (c->store && store_frame)
      dmn_store_frame(c, fr);
    else
      dmn_conn_drop(c);
    return;
  }
  if (fr->type == FRAME_CONFIG || fr->type == FRAME_COMPILER_CONFIG) {
    if (c->z) {
      dmn_conn_drop(c);
      return;
    }
    kiln_error_t err = NULL;
    c->z = dmn_zygote_for(c->d, fr, &err);
    if (c->z == NULL) {
      dmn_send_message(c, fr->type == FRAME_CONFIG ? FRAME_ZYGOTE_FAILED : FRAME_COMPILER_FAILED,
                       err->msg);
      kiln_error_release(&err);
      dmn_conn_drop(c);
      return;
    }
    if (fr->type == FRAME_COMPILER_CONFIG)
      dmn_compiler_attach(c->z, c);
    else if (c->z->ready) {
      c->told_ready = true;
      if (dmn_send_raw(c->fd, c->z->ready_frame.data, c->z->ready_frame.len, NULL, 0) < 0)
        dmn_conn_drop(c);
    }
  } else if (fr->type == FRAME_SPAWN) {
    if (c->z == NULL || c->compiling) {
      dmn_conn_drop(c);
      return;
    }
    conn_spawn(c, fr);
  } else if (fr->type == FRAME_COMPILE) {
    if (c->z == NULL || !c->compiling) {
      dmn_conn_drop(c);
      return;
    }
    dmn_compiler_request(c->z, c, fr);
  }
  /* Anything else is not the zygote protocol's: ignored, as the zygote
     ignores it.  */
}

static void
on_conn(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)loop;
  (void)events;
  struct conn *c = data;
  uint8_t chunk[READ_CHUNK];
  int fds[FRAME_MAX_FDS];
  size_t nfds = 0;
  ssize_t r = frame_recv_some(fd, chunk, sizeof chunk, fds, &nfds, NULL);
  for (size_t i = 0; i < nfds; i++)
    close(fds[i]);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (r <= 0) {
    dmn_conn_drop(c);
    return;
  }
  buf_append(&c->in, chunk, (size_t)r);
  for (;;) {
    struct frame fr;
    uint8_t *payload = NULL;
    kiln_error_t err = NULL;
    int n = link_next_frame(&c->in, c->compiling || c->store ? COMPILE_MAX_FRAME : CONN_MAX_FRAME,
                            &fr, &payload, &err);
    if (n < 0) {
      log_error(LOG_WARN, &err, "a front broke the protocol");
      free(payload);
      dmn_conn_drop(c);
      return;
    }
    if (n == 0)
      return;
    /* conn_frame may drop C: nothing after it touches C unless it is
       still listed.  */
    struct daemon *d = c->d;
    conn_frame(c, &fr);
    free(payload);
    bool alive = false;
    for (struct conn *k = d->conns; k; k = k->next)
      alive |= k == c;
    if (!alive)
      return;
  }
}

void
dmn_conn_drop(struct conn *c)
{
  struct daemon *d = c->d;
  struct conn **pp = &d->conns;
  while (*pp && *pp != c)
    pp = &(*pp)->next;
  if (*pp == NULL)
    return;
  *pp = c->next;
  loop_del(d->loop, c->fd);
  close(c->fd);
  /* Its workers end with it: nothing else would ever talk to them.  */
  for (struct child *ch = d->children; ch; ch = ch->next)
    if (ch->conn == c) {
      ch->conn = NULL;
      if (ch->pid > 0)
        kill(ch->pid, SIGKILL);
    }
  for (struct zygote *z = d->zygotes; z; z = z->next) {
    for (size_t i = 0; i < z->nq; i++)
      if (z->q[i].conn == c)
        z->q[i].conn = NULL;
    dmn_compiler_forget(z, c);
  }
  struct zygote *z = c->z;
  dmn_store_release(c);
  buf_free(&c->in);
  free(c);
  if (z) {
    bool used = false;
    for (struct conn *k = d->conns; k; k = k->next)
      used |= k->z == z;
    if (!used)
      z->unused_since = now_ns();
  }
  if (d->conns == NULL)
    d->idle_since = now_ns();
}

void
dmn_on_listen(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)events;
  struct daemon *d = data;
  for (;;) {
    int s = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0)
      return;
    /* The socket's mode already keeps other users out; the peer's uid
       is checked too, since the directory is all that guards the mode.  */
    struct ucred uc;
    socklen_t ul = sizeof uc;
    if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || uc.uid != geteuid()) {
      log_msg(LOG_WARN, "refused a connection from uid %d: the daemon serves uid %d only",
              ul == sizeof uc ? (int)uc.uid : -1, (int)geteuid());
      close(s);
      continue;
    }
    struct timeval tv = { .tv_sec = SEND_TIMEOUT_S };
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct conn *c = xzalloc(sizeof *c);
    c->d = d;
    c->fd = s;
    c->id = ++d->next_conn_id;
    kiln_error_t err = NULL;
    if (loop_add(loop, s, EPOLLIN, on_conn, c, &err) < 0) {
      log_error(LOG_ERROR, &err, "watch a front");
      close(s);
      free(c);
      continue;
    }
    c->next = d->conns;
    d->conns = c;
    d->idle_since = 0;
  }
}
