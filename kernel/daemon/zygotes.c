/* The zygotes the daemon keeps, one per distinct configuration, and the
   spawn requests it relays to them.  */
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

/* ---- uid slots and cgroups ---------------------------------------- */

void
dmn_pending_release(struct daemon *d, struct pending *p)
{
  id_slot_release(&d->uids, p->uid_slot);
  p->uid_slot = -1;
  if (p->cg_made)
    cg_forget(&d->cg, &d->cg_dead, p->cg);
  p->cg_made = false;
  /* A spare's packages directory is the daemon's own.  */
  if (p->spare && p->packages)
    rmdir(p->packages);
  free(p->packages);
  p->packages = NULL;
}

struct pending *
dmn_pending_push(struct zygote *z, struct conn *c, const char *name, char *packages)
{
  struct daemon *d = z->d;
  if (z->nq == z->qcap) {
    z->qcap = z->qcap ? z->qcap * 2 : 8;
    z->q = xrealloc(z->q, z->qcap * sizeof *z->q);
  }
  struct pending *p = &z->q[z->nq++];
  memset(p, 0, sizeof *p);
  p->conn = c;
  snprintf(p->cg, sizeof p->cg, "%s", name);
  p->packages = packages;
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
  return p;
}

/* ---- zygotes ------------------------------------------------------ */

void
dmn_zygote_send_spawns(struct zygote *z)
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
  if (p.spare)
    z->spares_asked--;
  if (!ok) {
    for (size_t i = 0; i < fr->nfds; i++)
      close(fr->fds[i]);
    dmn_pending_release(d, &p);
    if (p.conn && dmn_send_raw(p.conn->fd, raw, rawlen, NULL, 0) < 0)
      dmn_conn_drop(p.conn);
    return;
  }
  struct child *ch = xzalloc(sizeof *ch);
  ch->pid = (pid_t)pid;
  ch->conn = p.conn;
  ch->uid_slot = p.uid_slot;
  ch->cg_made = p.cg_made;
  snprintf(ch->cg, sizeof ch->cg, "%s", p.cg);
  ch->next = d->children;
  d->children = ch;
  /* Reaped already (a worker that fails at once): its front learns why
     from the status pipe, and its places are freed at the next tick
     (release_unreaped: a pid of 0).  */
  bool gone = false;
  for (size_t i = 0; i < d->nearly && !gone; i++)
    if (d->early[i] == ch->pid) {
      d->early[i] = d->early[--d->nearly];
      gone = true;
    }
  if (p.spare && !gone) {
    ch->spare = true;
    dmn_spare_keep(z, ch, raw, rawlen, fr->fds, p.packages);
    return;
  }
  if (p.spare)
    rmdir(p.packages);
  free(p.packages);
  dmn_hand_over(d, ch, raw, rawlen, fr->fds, gone);
  dmn_spares_refill(z);
}

void
dmn_hand_over(struct daemon *d, struct child *ch, const uint8_t *raw, size_t rawlen,
              const int *four, bool gone)
{
  int fds[FRAME_MAX_FDS];
  size_t nfds = 4;
  memcpy(fds, four, 4 * sizeof *fds);
  /* The front signals its worker through a pidfd: it is not the init's
     parent, so a bare pid could name another process by then.  */
  int pidfd = gone ? -1 : (int)syscall(SYS_pidfd_open, ch->pid, 0);
  if (pidfd >= 0)
    fds[nfds++] = pidfd;
  /* And its cgroups' counters, which only the daemon can name: the front
     tells a session killed for memory from any other SIGKILL.  */
  if (pidfd >= 0 && ch->cg_made && cg_session_event_fds(&d->cg, ch->cg, fds + nfds) == 0)
    nfds += 2;
  if (ch->conn == NULL || dmn_send_raw(ch->conn->fd, raw, rawlen, fds, nfds) < 0) {
    if (!gone)
      kill(ch->pid, SIGKILL);
    if (ch->conn)
      dmn_conn_drop(ch->conn);
  }
  for (size_t i = 0; i < nfds; i++)
    close(fds[i]);
  if (gone)
    ch->pid = 0;
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
      if (c->z == z && !c->compiling && !c->told_ready) {
        c->told_ready = true;
        if (dmn_send_raw(c->fd, raw, rawlen, NULL, 0) < 0)
          dmn_conn_drop(c);
      }
    }
    dmn_zygote_send_spawns(z);
    dmn_spares_refill(z);
    break;
  case FRAME_SPAWNED:
  case FRAME_SPAWN_FAILED:
    spawned(z, fr, raw, rawlen);
    break;
  case FRAME_ZYGOTE_FAILED: {
    cleanup_free char *msg = NULL;
    frame_get_str(fr, TAG_MESSAGE, true, &msg, NULL, NULL);
    cleanup_free char *why = xasprintf("failed to start: %s", msg ? msg : "unknown error");
    dmn_zygote_lost(z, why);
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
      dmn_zygote_lost(z, "closed its socket");
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
    dmn_zygote_lost(z, "exited");
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
      dmn_zygote_lost(z, "broke the protocol");
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

int
dmn_helper_spawn(struct zygote *z, const char *name, const char *command, int child_fd, pid_t *pid,
                 int *sock, struct buf *outq, loop_fd_cb cb, kiln_error_t *err)
{
  if (link_spawn_self(name, command, child_fd, pid, sock, err) < 0) {
    *pid = 0;
    *sock = -1;
    return -1;
  }
  struct fbuf fb;
  hof_encode(&z->cfg, &fb);
  buf_append(outq, fb.data, fb.len);
  fbuf_free(&fb);
  if (loop_add(z->d->loop, *sock, EPOLLIN | EPOLLOUT, cb, z, err) < 0) {
    /* Reaped as any child is.  */
    kill(*pid, SIGKILL);
    close(*sock);
    *sock = -1;
    buf_free(outq);
    return -1;
  }
  return 0;
}

void
dmn_zygote_start(struct zygote *z)
{
  kiln_error_t err = NULL;
  if (dmn_helper_spawn(z, "zygote", ZYGOTE_COMMAND, ZYGOTE_FD, &z->pid, &z->sock, &z->outq,
                       on_zygote, &err)
      < 0) {
    log_error(LOG_ERROR, &err, "the zygote");
    z->restart_at = now_ns() + MAX_BACKOFF_NS;
  }
}

void
dmn_zygote_lost(struct zygote *z, const char *why)
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
        dmn_send_message(z->q[i].conn, FRAME_SPAWN_FAILED, why);
      dmn_pending_release(d, &z->q[i]);
    }
    z->nq = 0;
    z->spares_asked = 0;
    /* A compile link's helper is not the zygote: it goes on.  */
    for (struct conn *c = d->conns; c; c = c->next)
      if (c->z == z && !c->compiling) {
        dmn_send_message(c, FRAME_ZYGOTE_FAILED, why);
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
struct zygote *
dmn_zygote_for(struct daemon *d, const struct frame *fr, kiln_error_t *err)
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
        dmn_zygote_start(z);
      }
      dmn_spares_refill(z);
      return z;
    }
  struct zygote *z = xzalloc(sizeof *z);
  z->d = d;
  memcpy(z->key, key, sizeof key);
  z->cfg = cfg;
  z->sbx = sbx;
  z->cfg.sbx = &z->sbx;
  z->sock = -1;
  z->comp.fd = -1;
  z->next = d->zygotes;
  d->zygotes = z;
  dmn_spares_reap_stale(z);
  dmn_zygote_start(z);
  return z;
}

/* Stops Z and forgets it.  Its workers stay: they are their fronts'.  */
void
dmn_zygote_free(struct zygote *z)
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
  dmn_compiler_free(z);
  dmn_spares_free(z);
  for (size_t i = 0; i < z->nq; i++)
    dmn_pending_release(d, &z->q[i]);
  free(z->q);
  link_in_reset(&z->in);
  buf_free(&z->outq);
  buf_free(&z->ready_frame);
  decoded_free(&z->cfg, &z->sbx);
  free(z);
}
