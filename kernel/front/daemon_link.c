/* The front's link to a shared daemon (kernel/daemon), in place of a
   zygote of its own.  The daemon speaks the zygote's protocol, so once
   connected the link is the zygote link (zygote_link.c); what differs is
   getting there: a daemon that does not answer yet is started, detached
   from this process, and asked again until it answers.  A second link
   carries the front's store writes to the daemon, which owns the store
   (front_store_open, kernel/store/link.c).  */
#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How often a front asks a daemon that does not answer yet, and for how
   long in all (a cold daemon answers at once; its zygote's readiness
   comes later, through the link).  */
#define DAEMON_RETRY_NS   (20 * 1000000LL)
#define DAEMON_GIVE_UP_NS (10 * 1000000000LL)
/* A daemon started but still not answering is started again after this
   long (the one before may have lost a race with one exiting).  */
#define DAEMON_RESPAWN_NS (1000 * 1000000LL)

int
daemon_link_connect(const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof sa.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return -1;
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(s);
    errno = e;
    return -1;
  }
  return s;
}

/* Starts `kiln daemon --socket PATH --background`: it forks and its
   parent exits at once, so the daemon belongs to neither this process
   nor its process group (Jupyter signals a kernel's whole group).  Its
   log is PATH.log.  */
static void
start_daemon(const char *path)
{
  cleanup_free char *logp = xasprintf("%s.log", path);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  char *argv[] = { "kiln-daemon", "daemon", "--socket", (char *)path, "--background", NULL };
  pid_t pid;
  int rc = link_exec_self(&pid, &fa, argv);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    log_msg(LOG_ERROR, "start the kiln daemon: %s", strerror(rc));
  else
    log_msg(LOG_INFO, "started a kiln daemon at %s", path);
}

int
daemon_link_start(struct front *f)
{
  const char *path = f->cfg->daemon_socket;
  int64_t now = now_ns();
  if (f->daemon_since == 0)
    f->daemon_since = now;
  int s = daemon_link_connect(path);
  if (s < 0) {
    if (errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN) {
      log_msg(LOG_ERROR, "the kiln daemon at %s: %s", path, strerror(errno));
      return -1;
    }
    if (now - f->daemon_since >= DAEMON_GIVE_UP_NS) {
      log_msg(LOG_ERROR, "the kiln daemon at %s did not answer within %lld s (its log: %s.log)",
              path, DAEMON_GIVE_UP_NS / 1000000000LL, path);
      return -1;
    }
    if (f->daemon_started_ns == 0 || now - f->daemon_started_ns >= DAEMON_RESPAWN_NS) {
      f->daemon_started_ns = now;
      start_daemon(path);
    }
    f->zygote_restart_at = now + DAEMON_RETRY_NS;
    return 0;
  }
  f->daemon_since = 0;
  f->daemon_started_ns = 0;
  set_nonblock(s, true);
  f->zygote = s;
  f->zygote_pid = 0;
  return 1;
}

static int
store_reconnect(void *ctx)
{
  return daemon_link_connect(ctx);
}

struct store *
front_store_open(const struct kiln_config *cfg)
{
  if (cfg->daemon_socket == NULL)
    return NULL;
  kiln_error_t err = NULL;
  struct store *st = NULL;
  /* A daemon this front has just started (daemon_link_start) answers
     within milliseconds; the front has nothing to run before it does.  */
  int s;
  int64_t give_up = now_ns() + DAEMON_GIVE_UP_NS;
  while ((s = daemon_link_connect(cfg->daemon_socket)) < 0
         && (errno == ENOENT || errno == ECONNREFUSED) && now_ns() < give_up) {
    struct timespec ts = { 0, 5000000 };
    nanosleep(&ts, NULL);
  }
  if (s < 0)
    kiln_error_make(&err, errno, "connect to %s", cfg->daemon_socket);
  else
    st = store_open_linked(cfg->home, s, store_reconnect, cfg->daemon_socket, &err);
  if (st == NULL)
    log_error(LOG_WARN, &err, "the daemon does not keep the store; this kiln writes it itself");
  return st;
}
