/* The daemon's process: where it listens, what it reaps, when it exits.
   What it serves is in fronts.c, what it keeps in zygotes.c.  */
#define _GNU_SOURCE
#include "daemon.h"
#include "internal.h"
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
          dmn_zygote_lost(z, "died");
      } else
        known = dmn_compiler_reaped(z, pid);
    for (struct child **pp = &d->children; *pp && !known;) {
      struct child *ch = *pp;
      if (ch->pid != pid) {
        pp = &ch->next;
        continue;
      }
      known = true;
      *pp = ch->next;
      if (ch->spare)
        dmn_spare_reaped(d, ch);
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
    int64_t compiled = dmn_compiler_deadline(z);
    if (compiled >= 0 && (t < 0 || compiled < t))
      t = compiled;
  }
  int64_t stores = dmn_stores_deadline(d);
  if (stores >= 0 && (t < 0 || stores < t))
    t = stores;
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
      dmn_zygote_free(z);
      continue;
    }
    if (z->sock < 0 && z->restart_at && now >= z->restart_at) {
      z->restart_at = 0;
      dmn_zygote_start(z);
    }
    dmn_compiler_tick(z, now);
  }
  dmn_stores_tick(d, now);
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
    dmn_conn_drop(d->conns);
  while (d->zygotes)
    dmn_zygote_free(d->zygotes);
  dmn_stores_free(d);
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
  struct daemon d = { .listen_fd = -1, .idle_s = idle_s, .synced = { -1, -1 } };
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
      || loop_add(d.loop, d.listen_fd, EPOLLIN, dmn_on_listen, &d, &err) < 0
      || dmn_stores_init(&d, &err) < 0) {
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
