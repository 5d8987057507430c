/* `kiln __install`: runs pip for one install_packages request, started
   by the front (kernel/front/install.c) with everything on its command
   line.  Three processes:

     this one   stays on the host's network and serves the proxy
                (proxy.c): the only way out of the jail, and only to the
                package index's hosts;
     a middle   unshares the namespaces (a network of loopback only),
                makes the proxy's listening socket inside that network
                and hands it out, then waits for
     pip        pid 1 of its namespace, in a root of read-only binds
                (mounts.c, as a worker's) with one writable tree, the
                target, at PACKAGES_PATH; no host identity, no
                capabilities, no new privileges.

   pip runs with --only-binary=:all:, so no package's code runs at
   install time, and with the preinstalled stack as constraints, so a
   conflict with it fails the resolution instead of shadowing it.  Its
   output is this process's (the front reads it).  Exit status: pip's;
   INSTALL_EXIT_PROXY when the downloads went over their cap.  */
#define _GNU_SOURCE
#include "installer.h"
#include "identity.h"
#include "log.h"
#include "mounts.h"
#include "namespaces.h"
#include "proxy.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The overflow ids, as for the compile helper: nobody on the host owns
   anything as them but the target the front made for this install.  */
#define NOBODY 65534
/* Where pip finds the constraints file: the fd this process opened.  */
#define CONSTRAINTS_FD 3
#define MAX_ALLOW      8
#define MAX_EXPOSE     8

struct opts {
  const char *python, *index, *target, *root, *constraints;
  unsigned long long max_bytes;
  bool userns;
  uid_t host_uid;
  gid_t host_gid;
  struct proxy_allow allow[MAX_ALLOW];
  char *allow_host[MAX_ALLOW];
  size_t nallow;
  const char *expose[MAX_EXPOSE];
  size_t nexpose;
  char **specs;
  int nspecs;
};

static _Noreturn void
die(kiln_error_t *err)
{
  log_error(LOG_ERROR, err, "installer");
  _exit(INSTALL_EXIT_SETUP);
}

static int
parse(int argc, char **argv, struct opts *o, kiln_error_t *err)
{
  static const struct option longs[] = {
    { "python", required_argument, NULL, 'p' },      { "index", required_argument, NULL, 'i' },
    { "target", required_argument, NULL, 't' },      { "root", required_argument, NULL, 'r' },
    { "constraints", required_argument, NULL, 'c' }, { "max-bytes", required_argument, NULL, 'm' },
    { "allow", required_argument, NULL, 'a' },       { "expose", required_argument, NULL, 'e' },
    { "userns", required_argument, NULL, 'u' },      { NULL, 0, NULL, 0 },
  };
  int ch;
  optind = 2;
  while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (ch) {
    case 'p':
      o->python = optarg;
      break;
    case 'i':
      o->index = optarg;
      break;
    case 't':
      o->target = optarg;
      break;
    case 'r':
      o->root = optarg;
      break;
    case 'c':
      o->constraints = optarg;
      break;
    case 'm':
      o->max_bytes = strtoull(optarg, NULL, 10);
      break;
    case 'a': {
      char *colon = strrchr(optarg, ':');
      if (o->nallow == MAX_ALLOW || colon == NULL)
        return kiln_error_make(err, 0, "bad --allow %s", optarg);
      o->allow_host[o->nallow] = xstrndup(optarg, (size_t)(colon - optarg));
      o->allow[o->nallow].host = o->allow_host[o->nallow];
      o->allow[o->nallow].port = (uint16_t)atoi(colon + 1);
      o->nallow++;
      break;
    }
    case 'e':
      if (o->nexpose == MAX_EXPOSE)
        return kiln_error_make(err, 0, "too many --expose");
      o->expose[o->nexpose++] = optarg;
      break;
    case 'u': {
      unsigned u, g;
      if (sscanf(optarg, "%u:%u", &u, &g) != 2)
        return kiln_error_make(err, 0, "bad --userns %s", optarg);
      o->userns = true;
      o->host_uid = u;
      o->host_gid = g;
      break;
    }
    default:
      return kiln_error_make(err, 0, "unknown option");
    }
  }
  if (!o->python || !o->index || !o->target || !o->root || !o->constraints || optind >= argc)
    return kiln_error_make(err, 0,
                           "usage: kiln " INSTALLER_COMMAND " --python P --index URL "
                           "--target DIR --root DIR --constraints FILE ... -- SPEC...");
  o->specs = argv + optind;
  o->nspecs = argc - optind;
  return 0;
}

static int
send_fd(int sock, int fd, kiln_error_t *err)
{
  char byte = 0;
  struct iovec iov = { &byte, 1 };
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u = { 0 };
  struct msghdr m
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  if (sendmsg(sock, &m, MSG_NOSIGNAL) < 0)
    return kiln_error_make(err, errno, "send the proxy's socket");
  return 0;
}

static int
recv_fd(int sock)
{
  char byte;
  struct iovec iov = { &byte, 1 };
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u;
  struct msghdr m
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) <= 0)
    return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  if (c == NULL || c->cmsg_type != SCM_RIGHTS)
    return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

/* pip, in its jail: never returns.  */
static _Noreturn void
run_pip(const struct opts *o, int port)
{
  kiln_error_t err = NULL;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
    kiln_error_make(&err, errno, "PR_SET_PDEATHSIG");
    die(&err);
  }
  uid_t uid = o->userns ? o->host_uid : NOBODY;
  gid_t gid = o->userns ? o->host_gid : NOBODY;
  /* Room for the downloads and pip's unpacking, both in memory.  */
  size_t room = (size_t)o->max_bytes + (64u << 20);
  struct mnt_plan plan = {
    .root_dir = o->root,
    .expose = o->expose,
    .nexpose = o->nexpose,
    .work_size = room,
    .tmp_size = room,
    .uid = uid,
    .gid = gid,
    .hostname = "kiln-install",
    .packages_dir = o->target,
    .packages_rw = true,
  };
  if (mnt_build_root(&plan, &err) < 0)
    die(&err);
  if (id_drop_privileges(!o->userns, uid, gid, &err) < 0)
    die(&err);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0
      || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    kiln_error_make(&err, errno, "prctl");
    die(&err);
  }
  char proxy[64];
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", port);
  char constraints[32];
  snprintf(constraints, sizeof constraints, "/dev/fd/%d", CONSTRAINTS_FD);
  const char *fixed[] = {
    o->python,
    "-m",
    "pip",
    "install",
    "--isolated",
    "--prefix",
    PACKAGES_PATH,
    "--only-binary=:all:",
    "--no-input",
    "--disable-pip-version-check",
    "--no-warn-script-location",
    "--progress-bar",
    "off",
    "--no-cache-dir",
    "--index-url",
    o->index,
    "--proxy",
    proxy,
    "--constraint",
    constraints,
    "--",
  };
  size_t nfixed = sizeof fixed / sizeof fixed[0];
  char **argv = xzalloc((nfixed + (size_t)o->nspecs + 1) * sizeof *argv);
  for (size_t i = 0; i < nfixed; i++)
    argv[i] = (char *)fixed[i];
  for (int i = 0; i < o->nspecs; i++)
    argv[nfixed + (size_t)i] = o->specs[i];
  char *envp[] = {
    "HOME=/work",
    "TMPDIR=/tmp",
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "LANG=C.UTF-8",
    "PYTHONNOUSERSITE=1",
    "PIP_CONFIG_FILE=/dev/null",
    "PYTHONDONTWRITEBYTECODE=1",
    NULL,
  };
  execve(o->python, argv, envp);
  kiln_error_make(&err, errno, "exec %s", o->python);
  die(&err);
}

/* The middle process: namespaces, the listening socket handed out,
   pip forked as pid 1 and waited for.  Never returns.  */
static _Noreturn void
middle(const struct opts *o, int sock)
{
  kiln_error_t err = NULL;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
    kiln_error_make(&err, errno, "PR_SET_PDEATHSIG");
    die(&err);
  }
  if (ns_unshare(o->userns, o->host_uid, o->host_gid, &err) < 0
      || ns_setup_uts_net("kiln-install", &err) < 0)
    die(&err);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t alen = sizeof a;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 64) < 0
      || getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
    kiln_error_make(&err, errno, "the proxy's socket");
    die(&err);
  }
  if (send_fd(sock, lfd, &err) < 0)
    die(&err);
  close(lfd);
  close(sock);
  pid_t pip = fork();
  if (pip < 0) {
    kiln_error_make(&err, errno, "fork");
    die(&err);
  }
  if (pip == 0)
    run_pip(o, ntohs(a.sin_port));
  int status;
  while (waitpid(pip, &status, 0) < 0)
    if (errno != EINTR)
      _exit(INSTALL_EXIT_SETUP);
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

int
pkg_install_main(int argc, char **argv)
{
  kiln_error_t err = NULL;
  struct opts o = { 0 };
  if (parse(argc, argv, &o, &err) < 0)
    die(&err);
  /* pip reads the constraints from this fd, in its jail.  */
  int cfd = open(o.constraints, O_RDONLY);
  if (cfd < 0 || dup2(cfd, CONSTRAINTS_FD) < 0) {
    kiln_error_make(&err, errno, "open %s", o.constraints);
    die(&err);
  }
  if (cfd != CONSTRAINTS_FD)
    close(cfd);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    kiln_error_make(&err, errno, "socketpair");
    die(&err);
  }
  /* No thread exists yet: the proxy's start after the fork.  */
  pid_t mid = fork();
  if (mid < 0) {
    kiln_error_make(&err, errno, "fork");
    die(&err);
  }
  if (mid == 0) {
    close(sv[0]);
    middle(&o, sv[1]);
  }
  close(sv[1]);
  close(CONSTRAINTS_FD);
  int lfd = recv_fd(sv[0]);
  close(sv[0]);
  struct proxy *px = NULL;
  if (lfd >= 0) {
    px = proxy_start(lfd, o.allow, o.nallow, o.max_bytes, &err);
    if (px == NULL) {
      log_error(LOG_ERROR, &err, "installer");
      kill(mid, SIGKILL);
    }
  }
  int status;
  while (waitpid(mid, &status, 0) < 0)
    if (errno != EINTR) {
      status = INSTALL_EXIT_SETUP << 8;
      break;
    }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : INSTALL_EXIT_SETUP;
  if (px) {
    /* Said on stderr, where the front looks for the reason.  */
    if (proxy_exceeded(px)) {
      fprintf(stderr, "kiln-install: the downloads went over %llu bytes\n", o.max_bytes);
      code = INSTALL_EXIT_PROXY;
    }
    if (proxy_first_refused(px)[0])
      fprintf(stderr, "kiln-install: refused a connection to %s: not the package index\n",
              proxy_first_refused(px));
    proxy_stop(px);
  }
  for (size_t i = 0; i < o.nallow; i++)
    free(o.allow_host[i]);
  return code;
}
