#define _GNU_SOURCE
#include "handoff.h"
#include "internal.h"
#include "log.h"
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

void
zygote_spawnq_push(struct front *f, struct session *s)
{
  if (f->nspawn == f->spawn_cap) {
    f->spawn_cap = f->spawn_cap ? f->spawn_cap * 2 : 16;
    f->spawnq = xrealloc(f->spawnq, f->spawn_cap * sizeof *f->spawnq);
  }
  f->spawnq[f->nspawn++] = (struct spawn_req){ .s = s, .uid_slot = -1 };
}

void
zygote_uid_release(struct front *f, int slot)
{
  id_slot_release(&f->uids, slot);
}

/* Gives back what a spawn request holds when no worker will take it
   over: its uid and its cgroups.  */
static void
spawn_req_release(struct front *f, struct spawn_req *r)
{
  zygote_uid_release(f, r->uid_slot);
  r->uid_slot = -1;
  if (r->cg_made)
    front_cg_forget(f, r->cg);
  r->cg_made = false;
}

void
zygote_release_spawns(struct front *f)
{
  for (size_t i = 0; i < f->nspawn; i++)
    spawn_req_release(f, &f->spawnq[i]);
  f->nspawn = f->spawn_sent = 0;
}

void
zygote_send_spawns(struct front *f)
{
  if (!f->zygote_ready)
    return;
  const struct sbx_config *sbx = f->cfg->sbx;
  for (; f->spawn_sent < f->nspawn; f->spawn_sent++) {
    struct spawn_req *r = &f->spawnq[f->spawn_sent];
    kiln_error_t err = NULL;
    /* The session's cgroups exist before its middle process joins them
       (a failure surfaces as the spawn's failure).  Each worker gets its
       own, named by the session and a serial, so a replacement never
       shares one with the processes of its predecessor.  A request sent
       again to a restarted zygote keeps its name, groups and uid.  */
    if (r->cg[0] == '\0')
      snprintf(r->cg, sizeof r->cg, "%s.%llu", r->s ? r->s->id : "closed",
               (unsigned long long)++f->spawn_serial);
    /* The daemon makes the cgroups and picks the uid: they must be
       unique across every front it serves.  */
    bool own = f->cfg->daemon_socket == NULL;
    if (own && r->s && !r->cg_made && sbx->jail && sbx->cg.version) {
      if (cg_session_create(&sbx->cg, r->cg, &sbx->cg_limits, &err) < 0)
        log_error(LOG_WARN, &err, "cgroups for a session");
      else
        r->cg_made = true;
    }
    if (own && r->uid_slot < 0)
      r->uid_slot = id_slot_take(&f->uids);
    if (r->asked_ns == 0)
      r->asked_ns = now_ns();
    struct fbuf fb;
    fbuf_init(&fb, FRAME_SPAWN);
    fbuf_put_str(&fb, TAG_SESSION_ID, r->cg);
    /* Its installed packages, shown read-only in its jail.  */
    if (r->s) {
      cleanup_free char *pkg = install_session_dir(f, r->s->id);
      fbuf_put_str(&fb, TAG_PATH, pkg);
    }
    /* With every slot taken (more live workers than slots), the spawn
       is refused by the zygote for uid 0, never run as a shared uid.  */
    fbuf_put_u64(&fb, TAG_UID,
                 r->uid_slot < 0 ? 0 : (uint64_t)(sbx->uid_base + (uid_t)r->uid_slot));
    fbuf_finish(&fb);
    buf_append(&f->zoutq, fb.data, fb.len);
    fbuf_free(&fb);
  }
  if (link_flush(f->zygote, &f->zoutq) == 0 && f->zoutq.len)
    loop_mod(f->loop, f->zygote, EPOLLIN | EPOLLOUT, NULL);
}

static void
spawn_arrived(struct front *f, struct frame *fr)
{
  struct spawn_req req = { .uid_slot = -1 };
  bool expected = f->nspawn > 0 && f->spawn_sent > 0;
  if (expected) {
    req = f->spawnq[0];
    memmove(f->spawnq, f->spawnq + 1, (f->nspawn - 1) * sizeof *f->spawnq);
    f->nspawn--;
    f->spawn_sent--;
  }
  struct session *s = req.s;
  uint64_t pid = 0;
  kiln_error_t err = NULL;
  cleanup_free char *msg = NULL;
  /* The daemon adds a pidfd of the init, unless it was gone already, and
     then its cgroups' counter files when it made them
     (cg_session_event_fds).  */
  bool daemon = f->cfg->daemon_socket != NULL;
  bool ok = fr->type == FRAME_SPAWNED
            && (fr->nfds == 4 || (daemon && (fr->nfds == 5 || fr->nfds == 7)))
            && frame_get_u64(fr, TAG_PID, false, &pid, &err) == 0 && pid > 1;
  if (!ok || !expected) {
    for (size_t i = 0; i < fr->nfds; i++)
      close(fr->fds[i]);
    spawn_req_release(f, &req);
    if (err)
      msg = xstrdup(err->msg);
    else if (frame_get_str(fr, TAG_MESSAGE, true, &msg, NULL, &err) < 0)
      msg = xstrdup(err->msg);
    kiln_error_release(&err);
    cleanup_free char *text
        = xasprintf("the zygote could not start a worker: %s", msg ? msg : "malformed reply");
    log_msg(LOG_ERROR, "%s", text);
    if (s) {
      s->state = S_LOST;
      session_fail_queue(s, "WorkerStartError", text);
    }
    return;
  }
  struct worker *w = xzalloc(sizeof *w);
  w->front = f;
  w->pid = (pid_t)pid;
  w->ctl = fr->fds[0];
  w->out = fr->fds[1];
  w->err = fr->fds[2];
  w->status = fr->fds[3];
  w->pidfd = fr->nfds >= 5 ? fr->fds[4] : -1;
  w->cg_events[0] = fr->nfds == 7 ? fr->fds[5] : -1;
  w->cg_events[1] = fr->nfds == 7 ? fr->fds[6] : -1;
  /* The worker now holds the request's cgroups and uid.  */
  snprintf(w->cg, sizeof w->cg, "%s", req.cg);
  w->cg_made = req.cg_made;
  w->uid_slot = req.uid_slot;
  w->asked_ns = req.asked_ns;
  output_init(&w->cap_out, f->cfg->max_output);
  output_init(&w->cap_err, f->cfg->max_output);
  w->next = f->workers;
  f->workers = w;
  if (set_nonblock(w->status, true) < 0 || set_nonblock(w->ctl, true) < 0
      || set_nonblock(w->out, true) < 0 || set_nonblock(w->err, true) < 0
      || loop_add(f->loop, w->ctl, EPOLLIN, worker_on_ctl, w, &err) < 0
      || loop_add(f->loop, w->out, EPOLLIN, on_worker_pipe, w, &err) < 0
      || loop_add(f->loop, w->err, EPOLLIN, on_worker_pipe, w, &err) < 0
      || (daemon && worker_watch_status(w, &err) < 0)) {
    /* It cannot be watched, so it cannot serve: kill it; its session
       gets a fresh worker on its next request, when it is reaped.  */
    if (err)
      log_error(LOG_ERROR, &err, "watch a new worker");
    else
      log_msg(LOG_ERROR, "watch a new worker: %s", strerror(errno));
    if (s) {
      w->session = s;
      s->w = w;
    }
    worker_fault(w, "the front could not watch the worker's sockets");
    return;
  }

  /* It may already have been reaped (a start-up failure is quick).  */
  for (size_t i = 0; i < f->nearly; i++)
    if (f->early[i].pid == w->pid) {
      int status = f->early[i].status;
      f->early[i] = f->early[--f->nearly];
      if (s) {
        w->session = s;
        s->w = w;
      }
      worker_reaped(w, status);
      return;
    }
  if (s == NULL) {
    /* Its session was closed while the worker was being made.  */
    worker_kill(w);
    return;
  }
  w->session = s;
  s->w = w;
}

static void
zygote_ready(struct front *f, struct frame *fr)
{
  cleanup_free char *version = NULL, *preloaded = NULL, *failed = NULL, *protections = NULL;
  kiln_error_t err = NULL;
  if (frame_get_str(fr, TAG_PYTHON_VERSION, true, &version, NULL, &err) < 0
      || frame_get_str(fr, TAG_PRELOADED, true, &preloaded, NULL, &err) < 0
      || frame_get_str(fr, TAG_PRELOAD_FAILED, true, &failed, NULL, &err) < 0
      || frame_get_str(fr, TAG_PROTECTIONS, true, &protections, NULL, &err) < 0) {
    cleanup_free char *why = xasprintf("broke the protocol: %s", err->msg);
    kiln_error_release(&err);
    zygote_lost(f, why);
    return;
  }
  f->zygote_ready = true;
  f->zygote_failures = 0;
  if (version)
    snprintf(f->python_version, sizeof f->python_version, "%s", version);
  if (!f->zygote_ever_ready) {
    f->zygote_ever_ready = true;
    struct front_info info = {
      .python_version = version ? version : "?",
      .preloaded = preloaded ? preloaded : "",
      .preload_failed = failed ? failed : "",
      .protections = protections,
    };
    if (f->ready_cb)
      f->ready_cb(f->ready_ctx, &info, NULL);
  }
  zygote_send_spawns(f);
}

void
zygote_lost(struct front *f, const char *why)
{
  if (f->zygote >= 0) {
    loop_del(f->loop, f->zygote);
    close(f->zygote);
    f->zygote = -1;
  }
  if (f->zygote_pid > 0)
    kill(f->zygote_pid, SIGKILL);
  f->zygote_ready = false;
  link_in_reset(&f->zin);
  buf_free(&f->zoutq);
  /* Requests the dead zygote had not answered are sent again.  */
  f->spawn_sent = 0;
  f->zygote_failures++;
  log_msg(LOG_ERROR, "the zygote %s", why);
  /* A daemon that closed the link before its zygote was ready may have
     been exiting for idleness just then: a new one is asked, a few
     times, before the front gives up.  */
  bool retry = f->cfg->daemon_socket && f->daemon_since == 0 && f->zygote_failures <= 3;
  if (!f->zygote_ever_ready && !retry) {
    /* It never started: a broken installation, not bad luck.  */
    kiln_error_t err = NULL;
    kiln_error_make(&err, 0, "the zygote %s", why);
    if (f->ready_cb)
      f->ready_cb(f->ready_ctx, NULL, err);
    kiln_error_release(&err);
    return;
  }
  if (f->zygote_failures > ZYGOTE_MAX_RESTARTS) {
    /* It keeps dying: the sessions waiting for a worker are told so
       instead of waiting through every back-off.  It is still restarted,
       so that later requests can succeed once the cause is gone.  */
    for (size_t i = 0; i < f->nspawn; i++) {
      spawn_req_release(f, &f->spawnq[i]);
      if (f->spawnq[i].s) {
        f->spawnq[i].s->state = S_LOST;
        session_fail_queue(f->spawnq[i].s, "WorkerStartError",
                           "the zygote keeps dying; no worker can be started");
      }
    }
    f->nspawn = 0;
  }
  /* Back off: 0.1 s after the first death, doubling to 10 s, so that a
     zygote that dies at once does not make the front spin.  */
  int64_t backoff = 100 * 1000000LL;
  for (int i = 1; i < f->zygote_failures && backoff < ZYGOTE_MAX_BACKOFF_NS; i++)
    backoff *= 2;
  if (backoff > ZYGOTE_MAX_BACKOFF_NS)
    backoff = ZYGOTE_MAX_BACKOFF_NS;
  f->zygote_restart_at = now_ns() + backoff;
}

/* Called by the front's timer: restarts a lost zygote once its back-off
   has passed.  */
void
zygote_tick(struct front *f, int64_t now)
{
  if (f->zygote < 0 && f->zygote_restart_at && now >= f->zygote_restart_at) {
    f->zygote_restart_at = 0;
    zygote_start(f);
  }
}

static void
on_zygote(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)loop;
  struct front *f = data;
  if (events & EPOLLOUT) {
    if (link_flush(fd, &f->zoutq) < 0) {
      zygote_lost(f, "closed its socket");
      return;
    }
    if (f->zoutq.len == 0)
      loop_mod(f->loop, fd, EPOLLIN, NULL);
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    return;
  ssize_t r = link_in_read(fd, &f->zin);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return;
  if (r <= 0) {
    zygote_lost(f, "exited");
    return;
  }
  for (;;) {
    struct frame fr;
    uint8_t *payload = NULL;
    kiln_error_t err = NULL;
    int n = link_in_next(&f->zin, ZYGOTE_MAX_FRAME, &fr, &payload, NULL, &err);
    if (n < 0) {
      log_error(LOG_ERROR, &err, "zygote protocol error");
      free(payload);
      zygote_lost(f, "broke the protocol");
      return;
    }
    if (n == 0)
      break;
    switch (fr.type) {
    case FRAME_ZYGOTE_READY:
      zygote_ready(f, &fr);
      break;
    case FRAME_SPAWNED:
    case FRAME_SPAWN_FAILED:
      spawn_arrived(f, &fr);
      break;
    case FRAME_ZYGOTE_FAILED: {
      cleanup_free char *msg = NULL;
      if (frame_get_str(&fr, TAG_MESSAGE, true, &msg, NULL, &err) < 0) {
        msg = xstrdup(err->msg);
        kiln_error_release(&err);
      }
      cleanup_free char *why = xasprintf("failed to start: %s", msg ? msg : "unknown error");
      free(payload);
      zygote_lost(f, why);
      return;
    }
    default:
      break;
    }
    free(payload);
  }
}

void
zygote_start(struct front *f)
{
  kiln_error_t err = NULL;
  if (f->cfg->daemon_socket) {
    int rc = daemon_link_start(f);
    if (rc == 0)
      return;
    if (rc < 0) {
      /* From front_new, the caller says so; later, as a zygote's loss.  */
      if (f->started)
        zygote_lost(f, "could not be reached through the kiln daemon");
      return;
    }
  } else {
    pid_t pid;
    int sock;
    if (link_spawn_self("zygote", ZYGOTE_COMMAND, ZYGOTE_FD, &pid, &sock, &err) < 0) {
      log_error(LOG_ERROR, &err, "the zygote");
      return;
    }
    f->zygote_pid = pid;
    f->zygote = sock;
  }
  f->zygote_started_ns = now_ns();
  struct fbuf fb;
  hof_encode(f->cfg, &fb);
  buf_append(&f->zoutq, fb.data, fb.len);
  fbuf_free(&fb);
  if (loop_add(f->loop, f->zygote, EPOLLIN | EPOLLOUT, on_zygote, f, &err) < 0) {
    log_msg(LOG_ERROR, "watch the zygote: %s", err->msg);
    kiln_error_release(&err);
    if (f->zygote_pid > 0)
      kill(f->zygote_pid, SIGKILL);
    close(f->zygote);
    f->zygote = -1;
  }
}
