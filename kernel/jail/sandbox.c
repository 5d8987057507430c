#define _GNU_SOURCE
#include "sandbox.h"
#include "config.h"
#include "cpus.h"
#include "mounts.h"
#include "namespaces.h"
#include "paths.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *const sbx_environment[] = {
  "HOME=/work",
  "PATH=/usr/local/bin:/usr/bin:/bin",
  "LANG=C.UTF-8",
  "LC_ALL=C.UTF-8",
  "TMPDIR=/tmp",
  "USER=sandbox",
  "LOGNAME=sandbox",
  "SHELL=/bin/sh",
  "PYTHONIOENCODING=utf-8",
  "MPLBACKEND=module://kiln_mpl_backend",
  "MPLCONFIGDIR=/tmp/matplotlib",
  "OPENBLAS_NUM_THREADS=1",
  "OMP_NUM_THREADS=1",
  "MKL_NUM_THREADS=1",
  NULL,
};

int
sbx_prepare(const struct sbx_config *c, const struct sbx_params *p, kiln_error_t *err)
{
  if (!c->jail)
    return 0;
  /* The cgroups first, while this process still sees the host's cgroup
     tree: the worker, forked next, is born inside them, and the cgroup
     namespace then makes the session's group its root.  */
  if (c->cg.version && cg_session_join(&c->cg, p->session_id, getpid(), err) < 0)
    return kiln_error_wrap(err, "join the session's cgroups");
  if (ns_unshare(c->userns, c->host_uid, c->host_gid, err) < 0)
    return -1;
  return 0;
}

int
sbx_enter(const struct sbx_config *c, const struct sbx_params *p, kiln_error_t *err)
{
  if (!c->jail) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
      return kiln_error_make(err, errno, "PR_SET_PDEATHSIG");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
      return kiln_error_make(err, errno, "PR_SET_NO_NEW_PRIVS");
    return 0;
  }

  /* 1. Hostname and loopback, while the namespaces' privileges are held.  */
  if (ns_setup_uts_net("kiln", err) < 0)
    return -1;

  /* 2. The filesystem: a new root of read-only binds, /work, /tmp, /dev,
     /proc; the host's root detached.  Needs CAP_SYS_ADMIN, so before
     the identity change.  */
  struct mnt_plan plan = {
    .root_dir = c->root_dir,
    .expose = c->expose,
    .nexpose = c->nexpose,
    .work_size = c->work_size,
    .tmp_size = c->tmp_size,
    .uid = c->userns ? c->host_uid : p->uid,
    .gid = c->userns ? c->host_gid : p->gid,
    .hostname = "kiln",
    .packages_dir = p->packages_dir,
  };
  if (mnt_build_root(&plan, err) < 0)
    return kiln_error_wrap(err, "build the worker's root");

  /* 3. Resource limits: lowering needs no privilege, but raising the
     hard limits is no longer possible afterwards.  */
  struct id_limits lim = c->limits;
  /* Without cgroups (unprivileged kiln) memory has only an address-space
     limit as a backstop.  It is generous, since OpenBLAS retries a failed
     allocation forever instead of failing.  RLIMIT_NPROC is counted per
     user namespace (Linux 5.14+), so it holds per session either way.  */
  if (c->userns)
    lim.address_space = UNPRIVILEGED_AS(c);
  /* With a pids cgroup, RLIMIT_NPROC is only a backstop: a few above the
     cgroup's limit, so that the cgroup is what stops a fork bomb (and the
     session is told so), not the rlimit, which counts the init as well
     now that it shares the worker's uid.  */
  else if (c->cg.version)
    lim.nproc += 8;
  if (id_set_rlimits(&lim, err) < 0)
    return -1;
  /* As many CPUs as the session's CPU quota, so that what programs count
     (nproc, sched_getaffinity) is what they get.  */
  if (cpu_restrict(c->cg_limits.cpus, p->serial, err) < 0)
    return -1;

  /* 4. Identity: an unprivileged uid/gid and no capabilities.  */
  if (id_drop_privileges(!c->userns, p->uid, p->gid, err) < 0)
    return -1;

  /* 5. The identity change cleared the parent-death signal (the parent
     is the namespace's init): arm it again.  Not dumpable, so that
     /proc/self/environ and the like stay unreadable.  */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    return kiln_error_make(err, errno, "PR_SET_PDEATHSIG");
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
    return kiln_error_make(err, errno, "PR_SET_DUMPABLE");

  /* 6. No privilege can be gained again (setuid binaries, file
     capabilities), which also lets an unprivileged process load seccomp.  */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return kiln_error_make(err, errno, "PR_SET_NO_NEW_PRIVS");

  /* 7. seccomp last, so that the filter need not allow anything the
     steps above use.  */
  if (scf_load(p->scf, err) < 0)
    return -1;
  return 0;
}

/* A probe started in a child and not yet collected.  */
static int
child_start(int (*fn)(const struct sbx_config *, kiln_error_t *), const struct sbx_config *c,
            struct sbx_pending *p, kiln_error_t *err)
{
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0)
    return kiln_error_make(err, errno, "pipe");
  pid_t pid = fork();
  if (pid < 0) {
    close(pfd[0]);
    close(pfd[1]);
    return kiln_error_make(err, errno, "fork");
  }
  /* The verdict is the first byte: '0', or '1' and why.  It does not
     hang on the exit status, which a caller's reaping could take.  */
  if (pid == 0) {
    close(pfd[0]);
    kiln_error_t e = NULL;
    if (fn(c, &e) < 0) {
      cleanup_free char *msg = xasprintf("1%s", e->msg);
      (void)!write(pfd[1], msg, strlen(msg));
      _exit(1);
    }
    (void)!write(pfd[1], "0", 1);
    _exit(0);
  }
  close(pfd[1]);
  p->pid = pid;
  p->fd = pfd[0];
  return 0;
}

/* The verdict of the probe P: 0, or -1 with the child's message.  */
static int
child_collect(struct sbx_pending *p, kiln_error_t *err)
{
  if (p->pid <= 0)
    return 0;
  char msg[1024];
  ssize_t n;
  while ((n = read(p->fd, msg, sizeof msg - 1)) < 0 && errno == EINTR)
    ;
  close(p->fd);
  while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
    ;
  p->pid = 0;
  p->fd = -1;
  if (n > 0 && msg[0] == '0')
    return 0;
  msg[n > 0 ? n : 0] = '\0';
  return kiln_error_make(err, 0, "%s", n > 1 ? msg + 1 : "the probe died");
}

int
sbx_in_child(int (*fn)(const struct sbx_config *, kiln_error_t *), const struct sbx_config *c,
             kiln_error_t *err)
{
  struct sbx_pending p = { 0 };
  if (child_start(fn, c, &p, err) < 0)
    return -1;
  return child_collect(&p, err);
}

static int
probe_namespaces(const struct sbx_config *c, kiln_error_t *err)
{
  return ns_unshare(c->userns, c->host_uid, c->host_gid, err);
}

int
sbx_probe_begin(struct sbx_config *c, const struct kiln_config *cfg, struct sbx_pending *p,
                kiln_error_t *err)
{
  p->pid = 0;
  p->fd = -1;
  c->host_uid = getuid();
  c->host_gid = getgid();
  c->userns = geteuid() != 0;
  c->uid_base = 200000;
  c->root_dir = xasprintf("%s/jail", cfg->home);
  if (mkdir_p(c->root_dir, 0700) < 0)
    return kiln_error_make(err, errno, "mkdir %s", c->root_dir);
  c->nexpose = 0;
  c->expose[c->nexpose++] = KILN_PYTHON_HOME;
  c->expose[c->nexpose++] = cfg->venv;
  c->expose[c->nexpose++] = cfg->runtime_dir;
  /* A venv or runtime reached through a symlink: Python finds its files
     by the path given, but some (matplotlib's fonts) by their real path,
     so both must be there.  */
  const char *linked[] = { cfg->venv, cfg->runtime_dir };
  for (size_t i = 0; i < 2; i++) {
    char *real = realpath(linked[i], NULL);
    if (real && strcmp(real, linked[i]) != 0) {
      c->owned[i] = real;
      c->expose[c->nexpose++] = real;
    } else
      free(real);
  }
  c->work_size = cfg->work_size;
  c->tmp_size = cfg->tmp_size;
  c->limits = (struct id_limits){
    .nproc = (unsigned)cfg->max_procs,
    .nofile = (unsigned)cfg->max_files,
    .fsize = cfg->work_size,
    .cpu_s = 24 * 3600,
  };
  c->cg_limits = (struct cg_limits){ .memory = cfg->memory,
                                     .pids = (unsigned)cfg->max_procs,
                                     .cpus = cfg->cpus };
  if (!c->jail)
    return 0;
  if (child_start(probe_namespaces, c, p, err) < 0)
    return kiln_error_wrap(err, "namespaces");
  /* A front on the daemon makes no cgroups: the daemon has its own.  */
  if (!c->userns && cfg->daemon_socket == NULL) {
    char tag[32];
    snprintf(tag, sizeof tag, "kiln-%d", (int)getpid());
    cg_host_probe(&c->cg, tag);
  }
  return 0;
}

int
sbx_probe_end(struct sbx_pending *p, kiln_error_t *err)
{
  if (child_collect(p, err) < 0)
    return kiln_error_wrap(err, "namespaces");
  return 0;
}

int
sbx_probe(struct sbx_config *c, const struct kiln_config *cfg, kiln_error_t *err)
{
  struct sbx_pending p;
  if (sbx_probe_begin(c, cfg, &p, err) < 0)
    return -1;
  return sbx_probe_end(&p, err);
}

void
sbx_config_free(struct sbx_config *c)
{
  cg_host_free(&c->cg);
  free(c->root_dir);
  c->root_dir = NULL;
  for (size_t i = 0; i < 2; i++) {
    free(c->owned[i]);
    c->owned[i] = NULL;
  }
}

char *
sbx_unprivileged_bound(const struct sbx_config *c)
{
  size_t as = UNPRIVILEGED_AS(c);
  unsigned long long worst = (unsigned long long)as * c->limits.nproc;
  return xasprintf("unavailable (kiln is unprivileged): memory is limited per process, not per "
                   "session: %zu MiB of address space each, up to %u processes, so at worst %llu "
                   "GiB per session (lower --memory or --max-procs, or run kiln as root for "
                   "cgroups); inotify instances are shared by every session of this host user",
                   as >> 20, c->limits.nproc, worst >> 30);
}

char *
sbx_describe(const struct sbx_config *c)
{
  if (!c->jail)
    return xstrdup("NONE: the sandbox is disabled (--insecure-no-sandbox); cells run unisolated");
  cleanup_free char *cg
      = c->userns ? sbx_unprivileged_bound(c) : cg_host_describe(&c->cg, &c->cg_limits);
  return xasprintf("namespaces (%spid, mount, net, ipc, uts, cgroup), read-only root, %s, "
                   "no capabilities, no-new-privs, seccomp; cgroups: %s",
                   c->userns ? "user, " : "", c->userns ? "own uid" : "per-session uid", cg);
}
