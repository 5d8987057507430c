#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "records.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Removes the cgroups named NAME, now or, while killed tasks are still
   leaving them, on a later tick.  */
void
front_cg_forget(struct front *f, const char *name)
{
  cg_forget(&f->cfg->sbx->cg, &f->cg_dead, name);
}

static void
reap(struct front *f)
{
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0)
      return;
    if (pid == f->zygote_pid) {
      f->zygote_pid = 0;
      if (f->zygote >= 0)
        zygote_lost(f, "died");
      continue;
    }
    if (pid == f->compiler.pid) {
      compiler_reaped(f);
      continue;
    }
    if (f->install.pid > 0 && pid == f->install.pid) {
      install_reaped(f, status);
      continue;
    }
    struct worker *w = f->workers;
    while (w && w->pid != pid)
      w = w->next;
    if (w) {
      worker_reaped(w, status);
      continue;
    }
    /* Either a worker the zygote has not reported yet, or a process a
       cell started whose parent died (the front is their subreaper).  */
    if (f->nearly == sizeof f->early / sizeof f->early[0])
      memmove(f->early, f->early + 1, (--f->nearly) * sizeof *f->early);
    f->early[f->nearly++] = (struct early_exit){ pid, status };
  }
}

static void
on_signal(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)events;
  struct front *f = data;
  struct signalfd_siginfo si;
  while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGCHLD)
      reap(f);
    else if (si.ssi_signo == SIGHUP && f->hangup)
      f->hangup(f->hangup_ctx);
    else if (si.ssi_signo == SIGINT && f->interrupt)
      f->interrupt(f->interrupt_ctx);
    else
      loop_stop(loop);
  }
}

static int64_t
next_deadline(void *data)
{
  struct front *f = data;
  int64_t d = f->cg_dead.n ? now_ns() + 20 * 1000000 : -1;
  if (f->refill_asked || f->refill_due)
    d = now_ns();
  if (f->zygote_restart_at && (d < 0 || f->zygote_restart_at < d))
    d = f->zygote_restart_at;
  int64_t c = compiler_deadline(f);
  if (c >= 0 && (d < 0 || c < d))
    d = c;
  int64_t h = hibernate_next(f);
  if (h >= 0 && (d < 0 || h < d))
    d = h;
  int64_t in = install_deadline(f);
  if (in >= 0 && (d < 0 || in < d))
    d = in;
  for (struct worker *w = f->workers; w; w = w->next) {
    if (w->kill_at && !w->killed && (d < 0 || w->kill_at < d))
      d = w->kill_at;
    int64_t stall = w->in_progress_ns ? w->in_progress_ns + FRAME_STALL_NS + 1 : -1;
    if (stall > 0 && (d < 0 || stall < d))
      d = stall;
  }
  for (struct session *s = f->sessions; s; s = s->next) {
    if (s->state != S_RUNNING)
      continue;
    int64_t t = s->kill_ns ? s->kill_ns : s->deadline_ns;
    if (d < 0 || t < d)
      d = t;
    int64_t due = s->running ? watch_due(s->running) : -1;
    if (due >= 0 && due < d)
      d = due;
  }
  return d;
}

static void
tick(int64_t now, void *data)
{
  struct front *f = data;
  /* Asked during one turn, done in the tick of the next: the turn in
     between lets every transport write the reply that asked.  */
  if (f->refill_due) {
    f->refill_due = false;
    spares_refill(f);
  }
  if (f->refill_asked) {
    f->refill_asked = false;
    f->refill_due = true;
  }
  if (f->cg_dead.n)
    cg_graveyard_retry(&f->cfg->sbx->cg, &f->cg_dead);
  zygote_tick(f, now);
  compiler_tick(f, now);
  hibernate_tick(f, now);
  install_tick(f, now);
  for (struct worker *w = f->workers; w; w = w->next) {
    if (w->kill_at && !w->killed && now >= w->kill_at)
      worker_kill(w);
    worker_check_stall(w, now);
  }
  for (struct session *s = f->sessions; s; s = s->next) {
    if (s->state != S_RUNNING)
      continue;
    if (s->running)
      watch_flush(s->running, now, false);
    if (s->kill_ns == 0 && now >= s->deadline_ns)
      session_interrupt(s, now, false);
    else if (s->kill_ns != 0 && now >= s->kill_ns) {
      struct request *c = s->running;
      cleanup_free char *why
          = s->cancel_interrupt ? xasprintf(
                "was killed: the cell did not stop within %g s of the interrupt asked for",
                f->cfg->grace_s)
                                : xasprintf("was killed: the cell did not stop within %g s of the "
                                            "interrupt at its %g s deadline",
                                            f->cfg->grace_s, c->timeout_s);
      struct worker *w = s->w;
      session_lose(s, REPLY_KILLED, "Timeout", why);
      if (w)
        worker_kill(w);
    }
  }
}

/* "PID STARTTIME" of process PID (start time in clock ticks since boot,
   from /proc), or NULL when it is gone: a pid and its start time name a
   process for good, where a pid alone may be reused.  Allocated.  */
char *
front_instance_of(long pid)
{
  cleanup_free char *path = xasprintf("/proc/%ld/stat", pid);
  FILE *fp = fopen(path, "re");
  if (fp == NULL)
    return NULL;
  char line[1024];
  char *got = fgets(line, sizeof line, fp);
  fclose(fp);
  /* The command name may hold spaces and parentheses: fields count from
     the last ')'.  Start time is field 22, the 20th after it.  */
  char *p = got ? strrchr(line, ')') : NULL;
  if (p == NULL)
    return NULL;
  unsigned long long start = 0;
  int field = 2;
  for (char *save = NULL, *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
    if (++field == 22) {
      start = strtoull(tok, NULL, 10);
      break;
    }
  return field == 22 ? xasprintf("%ld %llu", pid, start) : NULL;
}

/* Removes the session directories of fronts that are gone (killed before
   they could remove their own): their workers died with them, and what
   is left (artifacts) belongs to no one.  Directories without an owner
   or of a live front are left alone.  */
static void
reap_stale_sessions(struct front *f)
{
  cleanup_free char *sessions = xasprintf("%s/sessions", f->cfg->home);
  DIR *d = opendir(sessions);
  if (d == NULL)
    return;
  struct dirent *de;
  size_t reaped = 0;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.' || session_find(f, de->d_name))
      continue;
    cleanup_free char *owner_path = xasprintf("%s/%s/" OWNER_FILE, sessions, de->d_name);
    char owner[64] = "";
    int fd = open(owner_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, owner, sizeof owner - 1) : -1;
    if (fd >= 0)
      close(fd);
    if (n <= 0)
      continue;
    owner[n] = '\0';
    cleanup_free char *now = front_instance_of(strtol(owner, NULL, 10));
    if (now && strcmp(now, owner) == 0)
      continue;
    cleanup_free char *dir = xasprintf("%s/%s", sessions, de->d_name);
    cleanup_free char *art = xasprintf("%s/artifacts", dir);
    DIR *a = opendir(art);
    struct dirent *ae;
    while (a && (ae = readdir(a)) != NULL)
      if (ae->d_name[0] != '.') {
        cleanup_free char *file = xasprintf("%s/%s", art, ae->d_name);
        unlink(file);
      }
    if (a)
      closedir(a);
    rmdir(art);
    cell_outputs_remove(dir);
    unlink(owner_path);
    if (rmdir(dir) == 0)
      reaped++;
  }
  closedir(d);
  /* A session's installed packages go with its directory: one with
     none (its front died; the sweep above removed it) is nobody's.  A
     session's directory is made before its packages'; a hibernated
     session's stays; a daemon's spares' are the daemon's.  */
  cleanup_free char *packages = xasprintf("%s/packages/sessions", f->cfg->home);
  d = opendir(packages);
  while (d && (de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.' || strncmp(de->d_name, "spare-", 6) == 0
        || session_find(f, de->d_name))
      continue;
    cleanup_free char *dir = xasprintf("%s/%s", sessions, de->d_name);
    if (access(dir, F_OK) == 0 || errno != ENOENT)
      continue;
    install_session_forget(f, de->d_name);
    reaped++;
  }
  if (d)
    closedir(d);
  if (reaped)
    log_msg(LOG_INFO,
            "removed %zu session and packages directories left by kiln processes that are gone",
            reaped);
}

/* The sessions the front can hold open at once: --max-sessions, unless
   the open-file limit allows fewer.  Raises the soft limit to the hard
   one first; says so when --max-sessions had to be lowered.  */
static size_t
sessions_within_fd_limit(const struct kiln_config *cfg)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    return cfg->max_sessions;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur == RLIM_INFINITY)
    return cfg->max_sessions;
  size_t budget = rl.rlim_cur > FDS_RESERVED ? (size_t)rl.rlim_cur - FDS_RESERVED : 0;
  size_t by_fds = budget / FDS_PER_WORKER;
  by_fds = by_fds > cfg->spares ? by_fds - cfg->spares : 0;
  if (by_fds >= cfg->max_sessions)
    return cfg->max_sessions;
  log_msg(LOG_WARN,
          "--max-sessions %zu needs about %zu open files, over this process's limit of %llu "
          "(ulimit -n): at most %zu sessions will be open at once",
          cfg->max_sessions, (cfg->max_sessions + cfg->spares) * FDS_PER_WORKER + FDS_RESERVED,
          (unsigned long long)rl.rlim_cur, by_fds);
  return by_fds;
}

struct front *
front_new(const struct kiln_config *cfg, struct loop *loop, front_ready_cb ready, void *ctx,
          kiln_error_t *err)
{
  if (mkdir_p(cfg->home, 0700) < 0) {
    kiln_error_make(err, errno, "create KILN_HOME %s", cfg->home);
    return NULL;
  }
  /* Workers are double-forked from the zygote so that they end up as the
     front's children: the front alone waits for, signals and reaps them,
     and anything a cell leaves behind is reparented here too.  Workers
     from a daemon are the daemon's children instead, and the daemon this
     front may start must not become its child.  */
  if (!cfg->daemon_socket && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
    kiln_error_make(err, errno, "prctl PR_SET_CHILD_SUBREAPER");
    return NULL;
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    kiln_error_make(err, errno, "signalfd");
    return NULL;
  }
  struct front *f = xzalloc(sizeof *f);
  f->cfg = cfg;
  metrics_init(&f->metrics);
  limits_derive(cfg, &f->limits);
  f->max_sessions = sessions_within_fd_limit(cfg);
  f->packages = packages_scan(cfg->venv);
  cleanup_free char *me = front_instance_of((long)getpid());
  snprintf(f->instance, sizeof f->instance, "%s", me ? me : "0 0");
  f->loop = loop;
  f->ready_cb = ready;
  f->ready_ctx = ctx;
  f->zygote = -1;
  f->sigfd = sigfd;
  if (loop_add(loop, sigfd, EPOLLIN, on_signal, f, err) < 0) {
    close(sigfd);
    free(f->packages);
    free(f);
    return NULL;
  }
  f->writer = art_writer_new(loop, artifact_written, f, err);
  if (f->writer == NULL) {
    loop_del(loop, sigfd);
    close(sigfd);
    free(f->packages);
    free(f);
    return NULL;
  }
  loop_set_timers(loop, next_deadline, tick, f);
  f->compiler.fd = -1;
  zygote_start(f);
  spares_refill(f);
  if (f->zygote < 0 && f->zygote_restart_at == 0) {
    kiln_error_make(err, 0,
                    cfg->daemon_socket ? "could not reach the kiln daemon at %s"
                                       : "could not start the zygote",
                    cfg->daemon_socket);
    front_free(f);
    return NULL;
  }
  /* After the zygote exists (it is exec'd, so nothing would cross a fork
     anyway): the writer thread starts here.  A front on the daemon
     leaves the writing to it.  */
  f->store = front_store_open(cfg);
  if (f->store == NULL)
    f->store = store_open(cfg->home, STORE_THREADED, err);
  if (f->store == NULL) {
    kiln_error_wrap(err, "the database");
    front_free(f);
    return NULL;
  }
  hibernate_load(f);
  /* After the hibernated sessions are known: their directories (their
     images) are theirs, whoever made them.  */
  reap_stale_sessions(f);
  /* A front on the daemon links to the daemon's helper.  */
  compiler_start(f);
  f->started = true;
  return f;
}

/* Sends SIGKILL to every direct child.  Workers' descendants are
   reparented to the front as their parents die, so repeating this until
   no child is left catches everything a cell started.  */
static void
kill_children(void)
{
  DIR *d = opendir("/proc/self/task");
  if (d == NULL)
    return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    cleanup_free char *path = xasprintf("/proc/self/task/%s/children", de->d_name);
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
      continue;
    int pid;
    while (fscanf(fp, "%d", &pid) == 1)
      if (pid > 1)
        kill(pid, SIGKILL);
    fclose(fp);
  }
  closedir(d);
}

void
front_free(struct front *f)
{
  if (f == NULL)
    return;
  f->closing = true;
  install_free_all(f);
  while (f->sessions) {
    struct session *s = f->sessions;
    front_close_session(f, s->id, NULL);
  }
  while (f->spares) {
    struct session *s = f->spares;
    f->spares = s->next;
    for (size_t i = 0; i < f->nspawn; i++)
      if (f->spawnq[i].s == s)
        f->spawnq[i].s = NULL;
    session_drop_worker(s);
    session_free(s);
  }
  f->nspares = 0;
  for (struct worker *w = f->workers; w; w = w->next)
    worker_kill(w);
  if (f->zygote_pid > 0)
    kill(f->zygote_pid, SIGKILL);
  if (f->zygote >= 0) {
    loop_del(f->loop, f->zygote);
    close(f->zygote);
  }
  compiler_free(f);
  int64_t give_up = now_ns() + 5 * (int64_t)1000000000;
  for (;;) {
    kill_children();
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == ECHILD)
      break;
    if (pid == 0) {
      if (now_ns() > give_up)
        break;
      struct timespec ts = { 0, 2000000 };
      nanosleep(&ts, NULL);
    }
  }
  /* Spawns the zygote never answered hold cgroups no worker will take
     over; whatever their middle process started was killed above.  */
  zygote_release_spawns(f);
  while (f->workers) {
    worker_free(f->workers);
  }
  for (int i = 0; i < 100 && f->cg_dead.n; i++) {
    cg_graveyard_retry(&f->cfg->sbx->cg, &f->cg_dead);
    struct timespec ts = { 0, 5000000 };
    if (f->cg_dead.n)
      nanosleep(&ts, NULL);
  }
  cg_graveyard_free(&f->cg_dead);
  /* Every session's artifacts were dropped with it: no job is left that
     anyone holds.  */
  art_writer_free(f->writer);
  /* The history of every cell answered is committed before kiln exits.  */
  store_close(f->store);
  loop_del(f->loop, f->sigfd);
  close(f->sigfd);
  link_in_reset(&f->zin);
  buf_free(&f->zoutq);
  free(f->spawnq);
  free(f->packages);
  free(f);
}

void
front_on_hangup(struct front *f, void (*fn)(void *ctx), void *ctx)
{
  f->hangup = fn;
  f->hangup_ctx = ctx;
}

void
front_on_interrupt(struct front *f, void (*fn)(void *ctx), void *ctx)
{
  f->interrupt = fn;
  f->interrupt_ctx = ctx;
}
