#define _GNU_SOURCE
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void
worker_watch_out(struct worker *w)
{
  struct front *f = w->front;
  uint32_t ev = EPOLLIN | (w->outq.len ? EPOLLOUT : 0);
  loop_mod(f->loop, w->ctl, ev, NULL);
}

void
worker_send(struct worker *w, const struct fbuf *fb)
{
  buf_append(&w->outq, fb->data, fb->len);
  if (link_flush(w->ctl, &w->outq) < 0) {
    worker_fault(w, "the worker's control socket is closed");
    return;
  }
  if (w->outq.len)
    worker_watch_out(w);
}

int
worker_send_fd(struct worker *w, const struct fbuf *fb, int fd)
{
  if (fd < 0) {
    worker_send(w, fb);
    return 0;
  }
  /* The fd travels with the frame's first bytes, so nothing may be
     queued before them.  */
  if (w->outq.len)
    return -1;
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = { .iov_base = fb->data, .iov_len = fb->len };
  struct msghdr msg = {
    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf
  };
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t r;
  do
    r = sendmsg(w->ctl, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return -1;
    worker_fault(w, "the worker's control socket is closed");
    return -1;
  }
  if ((size_t)r < fb->len) {
    buf_append(&w->outq, fb->data + r, fb->len - (size_t)r);
    worker_watch_out(w);
  }
  return 0;
}

/* Reads what a pipe holds into its output buffer.  At most
   READS_PER_EVENT chunks unless DRAIN, which reads until the pipe is
   empty (bounded by a large multiple, since a background process could
   write forever).  */
void
worker_read_pipe(struct worker *w, int *fd, struct output *o, bool drain)
{
  char chunk[READ_CHUNK];
  int limit = drain ? 4096 : READS_PER_EVENT;
  for (int i = 0; i < limit && *fd >= 0; i++) {
    ssize_t r = read(*fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return;
    if (r == 0) {
      /* Every writer is gone (the worker and what it started).  */
      loop_del(w->front->loop, *fd);
      close(*fd);
      *fd = -1;
      return;
    }
    output_add(o, chunk, (size_t)r);
    if (w->session)
      watch_feed(w->session, o == &w->cap_err, chunk, (size_t)r, now_ns());
  }
}

void
on_worker_pipe(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)loop;
  (void)events;
  struct worker *w = data;
  if (fd == w->out)
    worker_read_pipe(w, &w->out, &w->cap_out, false);
  else if (fd == w->err)
    worker_read_pipe(w, &w->err, &w->cap_err, false);
}

/* Kills W's whole process group.  Reaping and the final reply happen
   when SIGCHLD says it is gone.  */
void
worker_kill(struct worker *w)
{
  if (w->pid > 0 && w->pidfd < 0 && !w->front->cfg->daemon_socket)
    kill(-w->pid, SIGKILL);
  worker_signal(w, SIGKILL, false, 0);
  w->killed = true;
}

/* A worker from the daemon has ended when its status pipe says so: the
   init writes the worker's wait status there and exits, or, killed
   itself, closes it with nothing written (the status of a SIGKILL).  */
static void
on_worker_status(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)events;
  struct worker *w = data;
  int32_t real;
  ssize_t r = read(fd, &real, sizeof real);
  if (r < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  loop_del(loop, fd);
  close(fd);
  w->status = -1;
  worker_reaped(w, r == (ssize_t)sizeof real ? real : SIGKILL);
}

int
worker_watch_status(struct worker *w, kiln_error_t *err)
{
  return loop_add(w->front->loop, w->status, EPOLLIN, on_worker_status, w, err);
}

void
worker_signal(struct worker *w, int sig, bool queued, int value)
{
  if (w->front->cfg->daemon_socket) {
    if (w->pidfd < 0)
      return;
    siginfo_t si = { .si_signo = sig, .si_code = SI_QUEUE };
    si.si_pid = getpid();
    si.si_uid = getuid();
    si.si_value.sival_int = value;
    syscall(SYS_pidfd_send_signal, w->pidfd, sig, queued ? &si : NULL, 0);
    return;
  }
  if (w->pid <= 0)
    return;
  if (queued)
    sigqueue(w->pid, sig, (union sigval){ .sival_int = value });
  else
    kill(w->pid, sig);
}

void
worker_fault(struct worker *w, const char *fmt, ...)
{
  if (w->fault == NULL) {
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&w->fault, fmt, ap) < 0)
      xoom();
    va_end(ap);
  }
  if (w->ctl >= 0)
    loop_del(w->front->loop, w->ctl);
  worker_kill(w);
}

static void
worker_close_fds(struct worker *w)
{
  struct loop *loop = w->front->loop;
  int *fds[] = { &w->ctl, &w->out, &w->err, &w->status };
  for (size_t i = 0; i < 4; i++)
    if (*fds[i] >= 0) {
      loop_del(loop, *fds[i]);
      close(*fds[i]);
      *fds[i] = -1;
    }
  if (w->pidfd >= 0)
    close(w->pidfd);
  w->pidfd = -1;
}

bool
worker_cg_events(struct worker *w, uint64_t *oom_kills, bool *pids)
{
  *oom_kills = 0;
  *pids = false;
  if (w->cg_made)
    cg_session_events(&w->front->cfg->sbx->cg, w->cg, oom_kills, pids);
  else if (w->cg_events[0] >= 0)
    cg_events_at(w->cg_events, oom_kills, pids);
  else
    return false;
  metrics_count_ooms(w, *oom_kills);
  return true;
}

void
worker_free(struct worker *w)
{
  struct front *f = w->front;
  for (struct worker **pp = &f->workers; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      break;
    }
  worker_close_fds(w);
  for (size_t i = 0; i < 2; i++)
    if (w->cg_events[i] >= 0)
      close(w->cg_events[i]);
  f->held_bytes -= w->in.len;
  /* Its processes are gone with its init: what it held is free again.  */
  if (w->cg_made)
    front_cg_forget(f, w->cg);
  zygote_uid_release(f, w->uid_slot);
  buf_free(&w->in);
  buf_free(&w->outq);
  output_free(&w->cap_out);
  output_free(&w->cap_err);
  free(w->fault);
  free(w);
}

static void
handle_worker_frame(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  switch (fr->type) {
  case FRAME_WORKER_READY:
    if (w->ready || s == NULL || s->state != S_STARTING) {
      worker_fault(w, "the worker said it was ready twice");
      return;
    }
    w->ready = true;
    if (w->asked_ns)
      histogram_observe(&w->front->metrics.spawn_seconds, (double)(now_ns() - w->asked_ns) / 1e9);
    s->state = S_IDLE;
    if (s->restore_pending)
      restore_start(s);
    else
      session_dispatch(s);
    return;
  case FRAME_WORKER_FAILED: {
    cleanup_free char *msg = NULL;
    kiln_error_t err = NULL;
    if (frame_get_str(fr, TAG_MESSAGE, true, &msg, NULL, &err) < 0) {
      msg = xasprintf("(its report was malformed: %s)", err->msg);
      kiln_error_release(&err);
    }
    if (w->ready) {
      worker_fault(w, "the worker sent a start-up failure after start-up");
      return;
    }
    cleanup_free char *text
        = xasprintf("the session's worker could not start: %s", msg ? msg : "unknown error");
    log_msg(LOG_ERROR, "%s", text);
    worker_fault(w, "%s", text);
    if (s) {
      w->session = NULL;
      s->w = NULL;
      s->state = S_LOST;
      session_fail_queue(s, "WorkerStartError", text);
    }
    return;
  }
  case FRAME_MARK: {
    /* The worker flushed before marking and waits for MARKED: what it
       printed up to here is in the pipe, and nothing after it yet (but
       what other threads or processes of the cell write meanwhile).  A
       mark between cells is answered and dropped.  */
    struct request *c = w->session ? w->session->running : NULL;
    if (c && c->kind == REQ_CELL) {
      if (c->u.cell.nmarks >= MAX_MARKS) {
        worker_fault(w, "the worker sent more than %d marks in one cell", MAX_MARKS);
        return;
      }
      worker_read_pipe(w, &w->out, &w->cap_out, true);
      c->u.cell.marks = xrealloc(c->u.cell.marks, (c->u.cell.nmarks + 1) * sizeof *c->u.cell.marks);
      c->u.cell.marks[c->u.cell.nmarks++] = (struct cell_mark){ .at = w->cap_out.total };
    }
    struct fbuf fb;
    fbuf_init(&fb, FRAME_MARKED);
    fbuf_finish(&fb);
    worker_send(w, &fb);
    fbuf_free(&fb);
    return;
  }
  case FRAME_INPUT:
    reply_input(w, fr);
    return;
  case FRAME_DISPLAY:
    reply_display(w, fr);
    return;
  case FRAME_DONE:
    reply_done(w, fr);
    return;
  case FRAME_SNAPSHOT_DONE:
    hibernate_done(w, fr);
    return;
  case FRAME_RESTORED:
    restore_done(w, fr);
    return;
  case FRAME_FILE_RESULT:
    reply_file_result(w, fr);
    return;
  case FRAME_SHELL_DONE:
    reply_shell_done(w, fr);
    return;
  default:
    worker_fault(w, "the worker sent an unexpected frame (type %u)", fr->type);
  }
}

void
worker_on_ctl(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)loop;
  struct worker *w = data;
  if (events & EPOLLOUT) {
    if (link_flush(fd, &w->outq) < 0) {
      worker_fault(w, "the worker's control socket is closed");
      return;
    }
    if (w->outq.len == 0)
      worker_watch_out(w);
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    return;
  uint8_t chunk[READ_CHUNK];
  for (int i = 0; i < READS_PER_EVENT; i++) {
    int fds[FRAME_MAX_FDS];
    size_t nfds = 0;
    pid_t sender = 0;
    ssize_t r = frame_recv_some(fd, chunk, sizeof chunk, fds, &nfds, &sender);
    for (size_t k = 0; k < nfds; k++)
      close(fds[k]);
    if (nfds) {
      worker_fault(w, "the worker sent file descriptors");
      return;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (r <= 0) {
      /* EOF on the control socket: either the worker died (its init
         reports how and exits, SIGCHLD follows) or the cell closed
         fd 3.  Either way it is finished; the init gets a moment to
         report before it is killed, and the reply waits for SIGCHLD.  */
      loop_del(w->front->loop, fd);
      if (!w->killed && w->kill_at == 0)
        w->kill_at = now_ns() + EOF_GRACE_NS;
      return;
    }
    /* The control socket is the worker's own fd 3, so anything the cell
       starts inherits it.  The zygote made it with SO_PASSCRED, so every
       byte says who wrote it.  The first writer is the worker (its READY,
       or its init's report that it could not start); bytes from any other
       process (a child of the cell answering while the worker is
       stopped, say) end the session.  */
    if (w->peer_pid == 0)
      w->peer_pid = sender;
    else if (sender != w->peer_pid) {
      worker_fault(w, "a process other than the worker (host pid %d) wrote on its control socket",
                   (int)sender);
      return;
    }
    /* The front holds every worker's partial frame in its own memory,
       outside any session's cgroup: all of them together are bounded, and
       the worker whose bytes would pass the bound is the one stopped.  */
    struct front *f = w->front;
    if (f->held_bytes + (size_t)r > f->limits.held_max) {
      worker_fault(w,
                   "the front holds %zu bytes of partial frames from its workers, its limit: "
                   "this worker's frame (%zu bytes so far) would pass it",
                   f->held_bytes, w->in.len + (size_t)r);
      return;
    }
    f->held_bytes -= w->in.len;
    buf_append(&w->in, chunk, (size_t)r);
    f->held_bytes += w->in.len;
    if (w->in.len > (size_t)w->front->limits.worker_frame + FRAME_HDR_SIZE) {
      worker_fault(w, "the worker sent more than a frame's worth of data at once");
      return;
    }
    for (;;) {
      struct frame fr;
      uint8_t *payload = NULL;
      kiln_error_t err = NULL;
      size_t before = w->in.len;
      int n = link_next_frame(&w->in, w->front->limits.worker_frame, &fr, &payload, &err);
      f->held_bytes -= before - w->in.len;
      if (n < 0) {
        worker_fault(w, "the worker broke the protocol: %s", err->msg);
        kiln_error_release(&err);
        free(payload);
        return;
      }
      if (n == 0)
        break;
      handle_worker_frame(w, &fr);
      free(payload);
      if (w->fault || w->killed || w->session == NULL)
        return;
    }
    /* Part of a frame is held for this worker: it must keep coming, or
       the front would hold the memory for as long as the worker likes
       (see worker_check_stall).  */
    w->in_progress_ns = w->in.len ? now_ns() : 0;
  }
}

void
worker_check_stall(struct worker *w, int64_t now)
{
  if (w->in_progress_ns && !w->fault && !w->killed && now - w->in_progress_ns > FRAME_STALL_NS)
    worker_fault(w, "the worker stopped in the middle of a frame (%zu bytes held for %lld s)",
                 w->in.len, (long long)((now - w->in_progress_ns) / 1000000000));
}

/* Describes a wait status for a reply: "was killed by SIGSEGV".  */
static char *
describe_exit(int status)
{
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    if (sig == SIGKILL)
      return xasprintf("was killed by SIGKILL (signal 9; the system may have run out of memory)");
    return xasprintf("was killed by %s (signal %d)", signal_name(sig), sig);
  }
  return xasprintf("exited with code %d", WEXITSTATUS(status));
}

/* The worker process W is gone: STATUS is its wait status.  */
void
worker_reaped(struct worker *w, int status)
{
  struct session *s = w->session;
  /* A DONE frame sent just before exiting is still worth reading.  */
  if (w->ctl >= 0 && !w->fault && s && s->running)
    worker_on_ctl(w->front->loop, w->ctl, EPOLLIN, w);
  s = w->session;
  if (w->out >= 0)
    worker_read_pipe(w, &w->out, &w->cap_out, true);
  if (w->err >= 0)
    worker_read_pipe(w, &w->err, &w->cap_err, true);
  /* The init reports the worker's own status; if it has none (it was
     killed itself), its status is the session's.  */
  int32_t real;
  if (w->status >= 0 && read(w->status, &real, sizeof real) == (ssize_t)sizeof real)
    status = real;
  struct front *f = w->front;
  const struct sbx_config *sbx = f->cfg->sbx;
  uint64_t oom_kills = 0;
  bool pids = false;
  worker_cg_events(w, &oom_kills, &pids);
  if (s) {
    cleanup_free char *why
        = w->fault ? xasprintf("was stopped: %s", w->fault)
          : oom_kills > 0 && WIFSIGNALED(status)
              ? xasprintf("was killed: the session ran out of memory (its limit is %zu MiB)",
                          sbx->cg_limits.memory >> 20)
              : describe_exit(status);
    session_lose(s, REPLY_CRASHED, "WorkerCrashed", why);
  }
  worker_free(w);
  /* A session that was being hibernated to make room for another may
     have died instead.  */
  hibernate_place_freed(f);
}
