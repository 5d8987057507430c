#define _GNU_SOURCE
#include "daemon.h"
#include "cgroups.h"
#include "handoff.h"
#include "link.h"
#include "log.h"
#include "loop.h"
#include "paths.h"
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* A front's frames are its configuration and spawn requests.  */
#define CONN_MAX_FRAME (1u << 20)
#define READ_CHUNK     (64u << 10)
/* A front that does not take a worker's fds within this long is dropped
   rather than let it stall every other front.  */
#define SEND_TIMEOUT_S 2
#define MAX_BACKOFF_NS (10 * 1000000000LL)
#define CG_NAME_MAX    80

struct conn;

/* A worker's init: the daemon's child (the daemon is their subreaper),
   holding a uid slot and the session's cgroups until it is reaped.  */
struct child {
  pid_t pid;
  struct conn *conn; /* NULL once its front has gone */
  int uid_slot;
  char cg[CG_NAME_MAX];
  bool cg_made;
  struct child *next;
};

/* A spawn request the zygote has not answered yet.  */
struct pending {
  struct conn *conn; /* NULL once its front has gone */
  char cg[CG_NAME_MAX];
  char *packages; /* the session's installed packages, or NULL */
  int uid_slot;
  bool cg_made;
};

/* One zygote per distinct configuration: fronts started with the same
   options share it.  */
struct zygote {
  struct daemon *d;
  uint8_t key[crypto_generichash_BYTES];
  struct kiln_config cfg;
  struct sbx_config sbx;
  pid_t pid;
  int sock;
  bool ready, ever_ready;
  struct link_in in;
  struct buf outq;
  struct buf ready_frame; /* its ZYGOTE_READY, sent to each front */
  struct pending *q;
  size_t nq, qcap, nsent;
  int failures;
  int64_t restart_at;
  int64_t unused_since; /* when its last front went; 0 while one uses it */
  struct zygote *next;
};

struct conn {
  struct daemon *d;
  int fd;
  struct zygote *z; /* once its configuration has come */
  struct buf in;
  bool told_ready;
  struct conn *next;
};

struct early {
  pid_t pid;
};

struct daemon {
  struct loop *loop;
  int listen_fd;
  struct cg_host cg;
  struct id_slots uids; /* unique across every front */
  struct zygote *zygotes;
  struct conn *conns;
  struct child *children;
  pid_t early[16]; /* inits reaped before their zygote reported them */
  size_t nearly;
  struct cg_graveyard cg_dead; /* sessions' groups that still had tasks */
  double idle_s;
  int64_t idle_since; /* 0 while a front is connected */
};

char *
daemon_socket_path(kiln_error_t *err)
{
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  cleanup_free char *dir = xdg && xdg[0] == '/' ? xasprintf("%s/kiln", xdg)
                                                : xasprintf("/tmp/kiln-%u", (unsigned)geteuid());
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    kiln_error_make(err, errno, "mkdir %s", dir);
    return NULL;
  }
  /* In /tmp anyone could have made it first: it must be ours and
     closed to everyone else, or another user could serve kiln's daemon
     to this one.  */
  struct stat st;
  if (lstat(dir, &st) < 0) {
    kiln_error_make(err, errno, "stat %s", dir);
    return NULL;
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
    kiln_error_make(err, 0,
                    "%s is not a directory of this user's, closed to others (mode 0700): the "
                    "daemon's socket cannot be kept there",
                    dir);
    return NULL;
  }
  /* The build's identity: the binary's inode and modification time.  */
  struct stat self;
  if (stat("/proc/self/exe", &self) < 0) {
    kiln_error_make(err, errno, "stat /proc/self/exe");
    return NULL;
  }
  uint8_t h[8];
  crypto_generichash_state gs;
  crypto_generichash_init(&gs, NULL, 0, sizeof h);
  crypto_generichash_update(&gs, (const uint8_t *)&self.st_dev, sizeof self.st_dev);
  crypto_generichash_update(&gs, (const uint8_t *)&self.st_ino, sizeof self.st_ino);
  crypto_generichash_update(&gs, (const uint8_t *)&self.st_mtim, sizeof self.st_mtim);
  crypto_generichash_update(&gs, (const uint8_t *)KILN_VERSION, sizeof KILN_VERSION);
  crypto_generichash_final(&gs, h, sizeof h);
  char hex[2 * sizeof h + 1];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  return xasprintf("%s/daemon-%s.sock", dir, hex);
}

/* ---- uid slots and cgroups ---------------------------------------- */

static void
pending_release(struct daemon *d, struct pending *p)
{
  id_slot_release(&d->uids, p->uid_slot);
  p->uid_slot = -1;
  if (p->cg_made)
    cg_forget(&d->cg, &d->cg_dead, p->cg);
  p->cg_made = false;
  free(p->packages);
  p->packages = NULL;
}

/* ---- sending to a front ------------------------------------------- */

/* Sends the LEN bytes of one frame at DATA, with NFDS descriptors.  A
   front's socket is blocking with a send timeout (SEND_TIMEOUT_S).
   Returns 0, or -1 when the front is gone or stuck.  */
static int
send_raw(int fd, const void *data, size_t len, const int *fds, size_t nfds)
{
  const struct fbuf frame = { .data = (uint8_t *)data, .len = len };
  return frame_send(fd, &frame, fds, nfds, NULL);
}

static void
send_message(struct conn *c, enum frame_type type, const char *msg)
{
  struct fbuf fb;
  fbuf_init(&fb, type);
  fbuf_put_str(&fb, TAG_MESSAGE, msg);
  fbuf_finish(&fb);
  (void)send_raw(c->fd, fb.data, fb.len, NULL, 0);
  fbuf_free(&fb);
}

/* ---- zygotes ------------------------------------------------------ */

static void zygote_lost(struct zygote *z, const char *why);
static void conn_drop(struct conn *c);

static void
zygote_send_spawns(struct zygote *z)
{
  if (!z->ready)
    return;
  for (; z->nsent < z->nq; z->nsent++) {
    struct pending *p = &z->q[z->nsent];
    struct fbuf fb;
    fbuf_init(&fb, FRAME_SPAWN);
    fbuf_put_str(&fb, TAG_SESSION_ID, p->cg);
    if (p->packages)
      fbuf_put_str(&fb, TAG_PATH, p->packages);
    fbuf_put_u64(&fb, TAG_UID,
                 p->uid_slot < 0 ? 0 : (uint64_t)(z->sbx.uid_base + (uid_t)p->uid_slot));
    fbuf_finish(&fb);
    buf_append(&z->outq, fb.data, fb.len);
    fbuf_free(&fb);
  }
  if (link_flush(z->sock, &z->outq) == 0 && z->outq.len)
    loop_mod(z->d->loop, z->sock, EPOLLIN | EPOLLOUT, NULL);
}

static struct pending
zygote_pop(struct zygote *z)
{
  struct pending p = z->q[0];
  memmove(z->q, z->q + 1, (z->nq - 1) * sizeof *z->q);
  z->nq--;
  z->nsent--;
  return p;
}

static void
spawned(struct zygote *z, const struct frame *fr, const uint8_t *raw, size_t rawlen)
{
  struct daemon *d = z->d;
  uint64_t pid = 0;
  bool ok = fr->type == FRAME_SPAWNED && fr->nfds == 4
            && frame_get_u64(fr, TAG_PID, false, &pid, NULL) == 0 && pid > 1;
  if (z->nsent == 0) {
    for (size_t i = 0; i < fr->nfds; i++)
      close(fr->fds[i]);
    if (ok)
      kill((pid_t)pid, SIGKILL);
    return;
  }
  struct pending p = zygote_pop(z);
  if (!ok) {
    for (size_t i = 0; i < fr->nfds; i++)
      close(fr->fds[i]);
    pending_release(d, &p);
    if (p.conn && send_raw(p.conn->fd, raw, rawlen, NULL, 0) < 0)
      conn_drop(p.conn);
    return;
  }
  free(p.packages);
  struct child *ch = xzalloc(sizeof *ch);
  ch->pid = (pid_t)pid;
  ch->conn = p.conn;
  ch->uid_slot = p.uid_slot;
  ch->cg_made = p.cg_made;
  snprintf(ch->cg, sizeof ch->cg, "%s", p.cg);
  ch->next = d->children;
  d->children = ch;
  /* Reaped already (a worker that fails at once): its places are free,
     and its front learns why from the status pipe.  */
  for (size_t i = 0; i < d->nearly; i++)
    if (d->early[i] == ch->pid) {
      d->early[i] = d->early[--d->nearly];
      ch->pid = -1;
      break;
    }
  int fds[FRAME_MAX_FDS];
  size_t nfds = 4;
  memcpy(fds, fr->fds, 4 * sizeof *fds);
  /* The front signals its worker through a pidfd: it is not the init's
     parent, so a bare pid could name another process by then.  */
  int pidfd = ch->pid > 0 ? (int)syscall(SYS_pidfd_open, ch->pid, 0) : -1;
  if (pidfd >= 0)
    fds[nfds++] = pidfd;
  if (ch->conn == NULL || send_raw(ch->conn->fd, raw, rawlen, fds, nfds) < 0) {
    if (ch->pid > 0)
      kill(ch->pid, SIGKILL);
    if (ch->conn)
      conn_drop(ch->conn);
  }
  for (size_t i = 0; i < nfds; i++)
    close(fds[i]);
  if (ch->pid < 0) {
    /* Released as if reaped now.  */
    ch->pid = 0;
  }
}

static void
zygote_frame(struct zygote *z, struct frame *fr, const uint8_t *raw, size_t rawlen)
{
  switch (fr->type) {
  case FRAME_ZYGOTE_READY:
    z->ready = true;
    z->ever_ready = true;
    z->failures = 0;
    buf_free(&z->ready_frame);
    buf_append(&z->ready_frame, raw, rawlen);
    for (struct conn *c = z->d->conns, *next; c; c = next) {
      next = c->next;
      if (c->z == z && !c->told_ready) {
        c->told_ready = true;
        if (send_raw(c->fd, raw, rawlen, NULL, 0) < 0)
          conn_drop(c);
      }
    }
    zygote_send_spawns(z);
    break;
  case FRAME_SPAWNED:
  case FRAME_SPAWN_FAILED:
    spawned(z, fr, raw, rawlen);
    break;
  case FRAME_ZYGOTE_FAILED: {
    cleanup_free char *msg = NULL;
    frame_get_str(fr, TAG_MESSAGE, true, &msg, NULL, NULL);
    cleanup_free char *why = xasprintf("failed to start: %s", msg ? msg : "unknown error");
    zygote_lost(z, why);
    break;
  }
  default:
    break;
  }
}

static void
on_zygote(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)loop;
  struct zygote *z = data;
  if (events & EPOLLOUT) {
    if (link_flush(fd, &z->outq) < 0) {
      zygote_lost(z, "closed its socket");
      return;
    }
    if (z->outq.len == 0)
      loop_mod(z->d->loop, fd, EPOLLIN, NULL);
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    return;
  ssize_t r = link_in_read(fd, &z->in);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return;
  if (r <= 0) {
    zygote_lost(z, "exited");
    return;
  }
  /* Each frame is passed on to fronts as it came: RAW keeps its bytes.  */
  struct buf raw = { 0 };
  for (;;) {
    struct frame fr;
    uint8_t *payload = NULL;
    kiln_error_t err = NULL;
    int n = link_in_next(&z->in, CONN_MAX_FRAME, &fr, &payload, &raw, &err);
    if (n < 0) {
      log_error(LOG_ERROR, &err, "zygote protocol error");
      free(payload);
      zygote_lost(z, "broke the protocol");
      break;
    }
    if (n == 0)
      break;
    bool lost = fr.type == FRAME_ZYGOTE_FAILED;
    zygote_frame(z, &fr, raw.data, raw.len);
    free(payload);
    if (lost)
      break;
  }
  buf_free(&raw);
}

static void
zygote_start(struct zygote *z)
{
  kiln_error_t err = NULL;
  if (link_spawn_self("zygote", ZYGOTE_COMMAND, ZYGOTE_FD, &z->pid, &z->sock, &err) < 0) {
    log_error(LOG_ERROR, &err, "the zygote");
    z->sock = -1;
    z->restart_at = now_ns() + MAX_BACKOFF_NS;
    return;
  }
  struct fbuf fb;
  hof_encode(&z->cfg, &fb);
  buf_append(&z->outq, fb.data, fb.len);
  fbuf_free(&fb);
  if (loop_add(z->d->loop, z->sock, EPOLLIN | EPOLLOUT, on_zygote, z, &err) < 0) {
    log_error(LOG_ERROR, &err, "watch the zygote");
    kill(z->pid, SIGKILL);
    close(z->sock);
    z->sock = -1;
    z->restart_at = now_ns() + MAX_BACKOFF_NS;
  }
}

static void
zygote_lost(struct zygote *z, const char *why)
{
  struct daemon *d = z->d;
  if (z->sock >= 0) {
    loop_del(d->loop, z->sock);
    close(z->sock);
    z->sock = -1;
  }
  if (z->pid > 0)
    kill(z->pid, SIGKILL);
  z->pid = 0;
  z->ready = false;
  link_in_reset(&z->in);
  buf_free(&z->outq);
  z->nsent = 0;
  z->failures++;
  log_msg(LOG_ERROR, "the zygote %s", why);
  if (!z->ever_ready) {
    /* It never started: its fronts are told, as their own zygote's
       failure would tell them, and it is not started again until a
       front asks for it.  */
    for (size_t i = 0; i < z->nq; i++) {
      if (z->q[i].conn)
        send_message(z->q[i].conn, FRAME_SPAWN_FAILED, why);
      pending_release(d, &z->q[i]);
    }
    z->nq = 0;
    for (struct conn *c = d->conns; c; c = c->next)
      if (c->z == z) {
        send_message(c, FRAME_ZYGOTE_FAILED, why);
        c->z = NULL;
      }
    z->restart_at = 0;
    return;
  }
  int64_t backoff = 100 * 1000000LL;
  for (int i = 1; i < z->failures && backoff < MAX_BACKOFF_NS; i++)
    backoff *= 2;
  z->restart_at = now_ns() + (backoff > MAX_BACKOFF_NS ? MAX_BACKOFF_NS : backoff);
}

/* The canonical form of a configuration: its values with every pointer
   replaced by the string it points to, hashed.  */
static void
config_key(const struct kiln_config *cfg, const struct sbx_config *sbx, uint8_t *key)
{
  struct kiln_config c = *cfg;
  struct sbx_config x = *sbx;
  const char *strs[] = { c.preload, c.home, c.venv, c.runtime_dir, x.root_dir };
  c.preload = c.home = c.venv = c.runtime_dir = NULL;
  c.daemon_socket = NULL;
  c.sbx = NULL;
  memset(&c.http, 0, sizeof c.http);
  memset(&c.packages, 0, sizeof c.packages);
  x.root_dir = NULL;
  memset(x.owned, 0, sizeof x.owned);
  memset(&x.cg, 0, sizeof x.cg);
  const char *expose[8];
  memcpy(expose, x.expose, sizeof expose);
  memset(x.expose, 0, sizeof x.expose);
  crypto_generichash_state gs;
  crypto_generichash_init(&gs, NULL, 0, crypto_generichash_BYTES);
  crypto_generichash_update(&gs, (const uint8_t *)&c, sizeof c);
  crypto_generichash_update(&gs, (const uint8_t *)&x, sizeof x);
  for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
    uint32_t n = strs[i] ? (uint32_t)strlen(strs[i]) : UINT32_MAX;
    crypto_generichash_update(&gs, (const uint8_t *)&n, sizeof n);
    if (strs[i])
      crypto_generichash_update(&gs, (const uint8_t *)strs[i], n);
  }
  for (size_t i = 0; i < x.nexpose && i < 8; i++)
    crypto_generichash_update(&gs, (const uint8_t *)expose[i], strlen(expose[i]) + 1);
  crypto_generichash_final(&gs, key, crypto_generichash_BYTES);
}

/* Frees what hof_decode allocated in CFG and SBX, except the cgroup
   host, which is the daemon's.  */
static void
decoded_free(struct kiln_config *cfg, struct sbx_config *sbx)
{
  free(cfg->preload);
  free(cfg->home);
  free(cfg->venv);
  free(cfg->runtime_dir);
  free(sbx->root_dir);
  for (size_t i = 0; i < 8; i++)
    free((char *)sbx->expose[i]);
}

/* The zygote for the configuration in FR, started if there is none:
   NULL with ERR when FR is not a configuration of this build.  */
static struct zygote *
zygote_for(struct daemon *d, const struct frame *fr, kiln_error_t *err)
{
  struct kiln_config cfg;
  struct sbx_config sbx;
  memset(&cfg, 0, sizeof cfg);
  memset(&sbx, 0, sizeof sbx);
  if (hof_decode(fr, &cfg, &sbx, err) < 0) {
    decoded_free(&cfg, &sbx);
    return NULL;
  }
  cfg.daemon_socket = NULL;
  free(sbx.cg.dirs[0]);
  free(sbx.cg.dirs[1]);
  free(sbx.cg.dirs[2]);
  free(sbx.cg.why);
  /* The front's own cgroup is not where its sessions' go: the daemon's
     is, and the daemon makes and removes them.  */
  sbx.cg = d->cg;
  cfg.sbx = NULL;
  uint8_t key[crypto_generichash_BYTES];
  config_key(&cfg, &sbx, key);
  for (struct zygote *z = d->zygotes; z; z = z->next)
    if (memcmp(z->key, key, sizeof key) == 0) {
      decoded_free(&cfg, &sbx);
      z->unused_since = 0;
      if (z->sock < 0 && z->restart_at == 0) {
        z->failures = 0;
        zygote_start(z);
      }
      return z;
    }
  struct zygote *z = xzalloc(sizeof *z);
  z->d = d;
  memcpy(z->key, key, sizeof key);
  z->cfg = cfg;
  z->sbx = sbx;
  z->cfg.sbx = &z->sbx;
  z->sock = -1;
  z->next = d->zygotes;
  d->zygotes = z;
  zygote_start(z);
  return z;
}

/* Stops Z and forgets it.  Its workers stay: they are their fronts'.  */
static void
zygote_free(struct zygote *z)
{
  struct daemon *d = z->d;
  for (struct zygote **pp = &d->zygotes; *pp; pp = &(*pp)->next)
    if (*pp == z) {
      *pp = z->next;
      break;
    }
  if (z->sock >= 0) {
    loop_del(d->loop, z->sock);
    close(z->sock);
  }
  if (z->pid > 0)
    kill(z->pid, SIGKILL);
  for (size_t i = 0; i < z->nq; i++)
    pending_release(d, &z->q[i]);
  free(z->q);
  link_in_reset(&z->in);
  buf_free(&z->outq);
  buf_free(&z->ready_frame);
  decoded_free(&z->cfg, &z->sbx);
  free(z);
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
  struct daemon *d = c->d;
  struct zygote *z = c->z;
  cleanup_free char *name = NULL, *packages = NULL;
  size_t n = 0;
  if (frame_get_str(fr, TAG_SESSION_ID, false, &name, &n, NULL) < 0 || !cg_name_ok(name, n)
      || frame_get_str(fr, TAG_PATH, true, &packages, NULL, NULL) < 0
      || (packages && packages[0] != '/')) {
    send_message(c, FRAME_SPAWN_FAILED, "a malformed spawn request");
    return;
  }
  if (z->nq == z->qcap) {
    z->qcap = z->qcap ? z->qcap * 2 : 8;
    z->q = xrealloc(z->q, z->qcap * sizeof *z->q);
  }
  struct pending *p = &z->q[z->nq++];
  memset(p, 0, sizeof *p);
  p->conn = c;
  snprintf(p->cg, sizeof p->cg, "%s", name);
  p->packages = steal_pointer(&packages);
  p->uid_slot = -1;
  const struct sbx_config *sbx = &z->sbx;
  if (sbx->jail && sbx->cg.version) {
    kiln_error_t err = NULL;
    if (cg_session_create(&sbx->cg, p->cg, &sbx->cg_limits, &err) < 0)
      log_error(LOG_WARN, &err, "cgroups for a session");
    else
      p->cg_made = true;
  }
  /* Unique across every front: two sessions never share a uid.  */
  p->uid_slot = id_slot_take(&d->uids);
  zygote_send_spawns(z);
}

static void
conn_frame(struct conn *c, const struct frame *fr)
{
  if (fr->type == FRAME_CONFIG) {
    if (c->z) {
      conn_drop(c);
      return;
    }
    kiln_error_t err = NULL;
    c->z = zygote_for(c->d, fr, &err);
    if (c->z == NULL) {
      send_message(c, FRAME_ZYGOTE_FAILED, err->msg);
      kiln_error_release(&err);
      conn_drop(c);
      return;
    }
    if (c->z->ready) {
      c->told_ready = true;
      if (send_raw(c->fd, c->z->ready_frame.data, c->z->ready_frame.len, NULL, 0) < 0)
        conn_drop(c);
    }
  } else if (fr->type == FRAME_SPAWN) {
    if (c->z == NULL) {
      conn_drop(c);
      return;
    }
    conn_spawn(c, fr);
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
    conn_drop(c);
    return;
  }
  buf_append(&c->in, chunk, (size_t)r);
  for (;;) {
    struct frame fr;
    uint8_t *payload = NULL;
    kiln_error_t err = NULL;
    int n = link_next_frame(&c->in, CONN_MAX_FRAME, &fr, &payload, &err);
    if (n < 0) {
      log_error(LOG_WARN, &err, "a front broke the protocol");
      free(payload);
      conn_drop(c);
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

static void
conn_drop(struct conn *c)
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
  for (struct zygote *z = d->zygotes; z; z = z->next)
    for (size_t i = 0; i < z->nq; i++)
      if (z->q[i].conn == c)
        z->q[i].conn = NULL;
  struct zygote *z = c->z;
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

static void
on_listen(struct loop *loop, int fd, uint32_t events, void *data)
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

/* ---- reaping, timers ---------------------------------------------- */

static void
reap(struct daemon *d)
{
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0)
      return;
    bool known = false;
    for (struct zygote *z = d->zygotes; z && !known; z = z->next)
      if (z->pid == pid) {
        known = true;
        z->pid = 0;
        if (z->sock >= 0)
          zygote_lost(z, "died");
      }
    for (struct child **pp = &d->children; *pp && !known;) {
      struct child *ch = *pp;
      if (ch->pid != pid) {
        pp = &ch->next;
        continue;
      }
      known = true;
      *pp = ch->next;
      id_slot_release(&d->uids, ch->uid_slot);
      if (ch->cg_made)
        cg_forget(&d->cg, &d->cg_dead, ch->cg);
      free(ch);
    }
    /* An init its zygote has not reported yet, or a process a cell
       started whose parent died (the daemon is their subreaper).  */
    if (!known) {
      if (d->nearly == sizeof d->early / sizeof d->early[0])
        memmove(d->early, d->early + 1, (--d->nearly) * sizeof *d->early);
      d->early[d->nearly++] = pid;
    }
  }
}

/* Children released without a reap (their init was gone before the
   daemon knew it): their places are freed here.  */
static void
release_unreaped(struct daemon *d)
{
  for (struct child **pp = &d->children; *pp;) {
    struct child *ch = *pp;
    if (ch->pid != 0) {
      pp = &ch->next;
      continue;
    }
    *pp = ch->next;
    id_slot_release(&d->uids, ch->uid_slot);
    if (ch->cg_made)
      cg_forget(&d->cg, &d->cg_dead, ch->cg);
    free(ch);
  }
}

static int64_t
next_deadline(void *data)
{
  struct daemon *d = data;
  int64_t t = -1;
  if (d->conns == NULL && d->idle_since)
    t = d->idle_since + (int64_t)(d->idle_s * 1e9);
  for (struct zygote *z = d->zygotes; z; z = z->next) {
    if (z->sock < 0 && z->restart_at && (t < 0 || z->restart_at < t))
      t = z->restart_at;
    int64_t expiry = z->unused_since + (int64_t)(d->idle_s * 1e9);
    if (z->unused_since && (t < 0 || expiry < t))
      t = expiry;
  }
  if (d->cg_dead.n) {
    int64_t soon = now_ns() + 20 * 1000000;
    if (t < 0 || soon < t)
      t = soon;
  }
  return t;
}

static void
tick(int64_t now, void *data)
{
  struct daemon *d = data;
  release_unreaped(d);
  if (d->cg_dead.n)
    cg_graveyard_retry(&d->cg, &d->cg_dead);
  for (struct zygote *z = d->zygotes, *next; z; z = next) {
    next = z->next;
    /* Kept warm for the next front with its options, for as long as the
       daemon itself waits for one.  */
    if (z->unused_since && z->nq == 0 && now - z->unused_since >= (int64_t)(d->idle_s * 1e9)) {
      log_msg(LOG_INFO, "a zygote unused for %.0f s is stopped", d->idle_s);
      zygote_free(z);
      continue;
    }
    if (z->sock < 0 && z->restart_at && now >= z->restart_at) {
      z->restart_at = 0;
      zygote_start(z);
    }
  }
  if (d->conns == NULL && d->idle_since && now - d->idle_since >= (int64_t)(d->idle_s * 1e9)) {
    log_msg(LOG_INFO, "no front for %.0f s: the daemon exits", d->idle_s);
    loop_stop(d->loop);
  }
}

static void
on_signal(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)events;
  struct daemon *d = data;
  struct signalfd_siginfo si;
  while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGCHLD)
      reap(d);
    else if (si.ssi_signo != SIGHUP)
      loop_stop(loop);
  }
}

/* ---- start and stop ----------------------------------------------- */

/* Whether a daemon answers at PATH.  */
static bool
serving(const char *path)
{
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return false;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  bool ok = connect(s, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(s);
  return ok;
}

static int
listen_at(const char *path, kiln_error_t *err)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof sa.sun_path)
    return kiln_error_make(err, 0, "the socket path %s is too long", path);
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0)
    return kiln_error_make(err, errno, "socket");
  unlink(path);
  /* Made 0600 from the start: a chmod after bind would leave a moment
     in which it is not.  */
  mode_t old = umask(0177);
  int rc = bind(s, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (rc < 0 || listen(s, 128) < 0) {
    kiln_error_make(err, errno, "listen on %s", path);
    close(s);
    return -1;
  }
  return s;
}

static void
daemon_free(struct daemon *d)
{
  for (struct child *ch = d->children; ch; ch = ch->next)
    if (ch->pid > 0)
      kill(ch->pid, SIGKILL);
  while (d->conns)
    conn_drop(d->conns);
  while (d->zygotes)
    zygote_free(d->zygotes);
  /* Everything it started is gone once its inits are: wait for them,
     so that their cgroups can go too.  */
  for (int i = 0; i < 100 && (d->children || d->cg_dead.n); i++) {
    reap(d);
    release_unreaped(d);
    cg_graveyard_retry(&d->cg, &d->cg_dead);
    if (d->children || d->cg_dead.n)
      usleep(20000);
  }
  for (struct child *ch = d->children, *next; ch; ch = next) {
    next = ch->next;
    free(ch);
  }
  cg_graveyard_free(&d->cg_dead);
  cg_host_free(&d->cg);
}

int
daemon_main(const char *socket_path, double idle_s)
{
  prctl(PR_SET_NAME, "kiln-daemon", 0, 0, 0);
  if (chdir("/") < 0)
    return 1;
  /* One daemon per path: whoever holds the lock serves, and a second
     one started in the same moment waits, then finds it serving.  */
  cleanup_free char *lock_path = xasprintf("%s.lock", socket_path);
  cleanup_close int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0 || flock(lock, LOCK_EX) < 0) {
    log_msg(LOG_ERROR, "kiln daemon: lock %s: %s", lock_path, strerror(errno));
    return 1;
  }
  if (serving(socket_path))
    return 0;
  struct daemon d = { .listen_fd = -1, .idle_s = idle_s };
  kiln_error_t err = NULL;
  /* Workers are double-forked from the zygotes so that their inits end
     up as the daemon's children, reaped here.  */
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
    log_msg(LOG_ERROR, "kiln daemon: PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
    return 1;
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);
  cleanup_close int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (geteuid() == 0) {
    char tag[32];
    snprintf(tag, sizeof tag, "kiln-%d", (int)getpid());
    cg_host_probe(&d.cg, tag);
  }
  d.loop = loop_new(&err);
  if (sigfd < 0 || d.loop == NULL || loop_add(d.loop, sigfd, EPOLLIN, on_signal, &d, &err) < 0
      || (d.listen_fd = listen_at(socket_path, &err)) < 0
      || loop_add(d.loop, d.listen_fd, EPOLLIN, on_listen, &d, &err) < 0) {
    log_msg(LOG_ERROR, "kiln daemon: %s", err ? err->msg : strerror(errno));
    kiln_error_release(&err);
    if (d.loop)
      loop_free(d.loop);
    cg_host_free(&d.cg);
    return 1;
  }
  d.idle_since = now_ns();
  loop_set_timers(d.loop, next_deadline, tick, &d);
  log_msg(LOG_INFO, "kiln daemon serving %s", socket_path);
  int rc = loop_run(d.loop, &err) < 0 ? 1 : 0;
  /* The path goes first: a front that connects from now on starts a
     new daemon instead of waiting on this one.  */
  unlink(socket_path);
  close(d.listen_fd);
  daemon_free(&d);
  loop_free(d.loop);
  return rc;
}
