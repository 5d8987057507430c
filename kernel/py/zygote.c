#define _GNU_SOURCE
#include "pycompat.h"

#include "embed.h"
#include "frame.h"
#include "handoff.h"
#include "wire_limits.h"
#include "log.h"
#include "util.h"
#include "init.h"
#include "neutral.h"
#include "paths.h"
#include "sandbox.h"
#include "worker.h"
#include "zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define ZYG_FD ZYGOTE_FD
/* The zygote exec'd again from its neutral layout reads the
   configuration it was handed from here, and knows its front's pid from
   the environment (its parent may have died in between).  */
#define AGAIN_FD  (ZYGOTE_FD + 1)
#define AGAIN_ENV "KILN_ZYGOTE_FRONT"

static _Noreturn void
fail(kiln_error_t *err)
{
  frame_fail_exit(ZYG_FD, FRAME_ZYGOTE_FAILED, err, "zygote start-up failed");
}

/* The zygote's environment is what every worker inherits and what a
   worker could read back from /proc: a fixed set, nothing of the host's.  */
static void
reset_environment(const struct kiln_config *cfg)
{
  /* clearenv() only drops the pointers: the strings themselves, from the
     zygote's exec, would still be readable in /proc/self/environ of every
     fork.  Overwrite each one where it is, wherever that is.  */
  for (char **e = environ; e && *e; e++)
    memset(*e, 0, strlen(*e));
  clearenv();
  setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
  setenv("LANG", "C.UTF-8", 1);
  setenv("LC_ALL", "C.UTF-8", 1);
  setenv("HOME", cfg->home, 1);
  setenv("TMPDIR", "/tmp", 1);
  setenv("PYTHONIOENCODING", "utf-8", 1);
  setenv("MPLBACKEND", "module://kiln_mpl_backend", 1);
  /* One thread per BLAS: the zygote must stay single-threaded to fork,
     and a session should not spawn a thread per core.  */
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  setenv("OMP_NUM_THREADS", "1", 1);
  setenv("MKL_NUM_THREADS", "1", 1);
  char *mpl = xasprintf("%s/matplotlib", cfg->home);
  mkdir(mpl, 0755);
  setenv("MPLCONFIGDIR", mpl, 1);
  free(mpl);
}

static int
start_python(const struct kiln_config *cfg, struct fbuf *ready, kiln_error_t *err)
{
  if (emb_init(cfg, err) < 0)
    return -1;
  cleanup_free char *site = xasprintf("%s/lib/python%d.%d/site-packages", cfg->venv,
                                      PY_MAJOR_VERSION, PY_MINOR_VERSION);
  PyObject *rt = PyImport_ImportModule("kiln_runtime");
  PyObject *ret = rt ? PyObject_CallMethod(rt, "zygote_init", "ss", site, cfg->preload) : NULL;
  Py_XDECREF(rt);
  if (ret == NULL)
    return emb_error_from_python(err, "kiln_runtime.zygote_init");
  const char *preloaded = NULL, *failed = NULL;
  if (!PyArg_ParseTuple(ret, "ss", &preloaded, &failed)) {
    Py_DECREF(ret);
    return emb_error_from_python(err, "kiln_runtime.zygote_init result");
  }
  fbuf_init(ready, FRAME_ZYGOTE_READY);
  fbuf_put_str(ready, TAG_PYTHON_VERSION, Py_GetVersion());
  fbuf_put_str(ready, TAG_PRELOADED, preloaded);
  fbuf_put_str(ready, TAG_PRELOAD_FAILED, failed);
  cleanup_free char *protections = sbx_describe(cfg->sbx);
  fbuf_put_str(ready, TAG_PROTECTIONS, protections);
  Py_DECREF(ret);
  return 0;
}

static void
close_pair(int fds[2])
{
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  fds[0] = fds[1] = -1;
}

/* The filter of every worker's init, built with the policy.  */
static struct sock_fprog init_filter;

/* The limits every worker obeys, derived from the configuration.  */
static struct kiln_limits limits;

/* The seccomp policy, built before the first fork so that no process
   that runs user code ever takes part in making it.  */
static struct scf_policy policy;
/* The front, for the workers' init to check it outlived them arming
   PR_SET_PDEATHSIG.  */
static int front_pidfd = -1;

static int
pidfd_open_self(void)
{
  return (int)syscall(SYS_pidfd_open, getpid(), 0);
}

static _Noreturn void
worker_entry(const void *arg)
{
  wrk_main(arg);
}

static _Noreturn void
middle_fail(int fd, kiln_error_t *err)
{
  frame_fail_exit(fd, FRAME_SPAWN_FAILED, err, "the middle process failed");
}

/* Forks one worker, in three steps.  The zygote forks a middle process,
   which joins the session's cgroups, unshares the namespaces and forks
   the init of the new pid namespace, then exits: the init is reparented
   to the front (a child subreaper), which alone waits for it, signals it
   and reaps it.  The init forks the worker and reaps for it.  On success
   sends SPAWNED with the front's ends of the control socket, the output
   pipes and the status pipe.  */
static int
spawn(const struct frame *req, const struct kiln_config *cfg, kiln_error_t *err)
{
  cleanup_free char *session_id = NULL;
  cleanup_free char *packages = NULL;
  uint64_t uid = 0;
  if (frame_get_str(req, TAG_SESSION_ID, false, &session_id, NULL, err) < 0
      || frame_get_str(req, TAG_PATH, true, &packages, NULL, err) < 0
      || frame_get_u64(req, TAG_UID, false, &uid, err) < 0)
    return -1;
  /* As root every session has a uid of its own from the front's set; the
     front sends one below the range when the set is exhausted.  */
  if (cfg->sbx->jail && !cfg->sbx->userns
      && (uid < cfg->sbx->uid_base || uid >= (uint64_t)cfg->sbx->uid_base + ID_SLOTS))
    return kiln_error_make(err, 0, "no session uid is free (every one is held by a live worker)");

  int ctl[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 }, status[2] = { -1, -1 };
  int pidp[2] = { -1, -1 };
  int ret = -1;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0 || pipe2(out, O_CLOEXEC) < 0
      || pipe2(errp, O_CLOEXEC) < 0 || pipe2(status, O_CLOEXEC) < 0
      || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pidp) < 0) {
    kiln_error_make(err, errno, "socketpair/pipe");
    goto out;
  }
  /* The front learns who wrote each byte on the control socket
     (worker_link.c); the option must be on before anyone can write.  */
  int one = 1;
  if (setsockopt(ctl[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
    kiln_error_make(err, errno, "SO_PASSCRED");
    goto out;
  }
  /* Big pipes: a cell printing a lot makes fewer round trips through
     the front's loop.  Best effort.  */
  fcntl(out[1], F_SETPIPE_SZ, 1 << 20);
  fcntl(errp[1], F_SETPIPE_SZ, 256 << 10);

  /* Counted in the zygote, so that each worker knows how many came
     before it (the jail spreads sessions over the CPUs with it).  */
  static unsigned spawned;
  unsigned serial = spawned++;
  PyOS_BeforeFork();
  pid_t mid = fork();
  if (mid == 0) {
    /* The middle process: no Python here.  */
    kiln_error_t e = NULL;
    close(pidp[0]);
    struct sbx_params sp
        = { .session_id = session_id, .uid = (uid_t)uid, .gid = (gid_t)uid, .scf = &policy };
    int self = pidfd_open_self();
    if (self < 0) {
      kiln_error_make(&e, errno, "pidfd_open");
      middle_fail(pidp[1], &e);
    }
    if (sbx_prepare(cfg->sbx, &sp, &e) < 0)
      middle_fail(pidp[1], &e);
    pid_t init = fork();
    if (init == 0) {
      close(pidp[1]);
      close(ctl[0]);
      close(out[0]);
      close(errp[0]);
      close(status[0]);
      struct wrk_params wp = {
        .ctl = ctl[1],
        .out = out[1],
        .err = errp[1],
        .session_id = session_id,
        .uid = (uid_t)uid,
        .gid = (gid_t)uid,
        .limits = &limits,
        .max_image_side = cfg->max_image_side,
        .sbx = cfg->sbx,
        .scf = &policy,
        .serial = serial,
        .packages_dir = packages,
      };
      struct init_params ip = {
        .mid_pidfd = self,
        .front_pidfd = front_pidfd,
        .status_fd = status[1],
        .ctl = ctl[1],
        .switch_ids = !cfg->sbx->userns,
        .uid = (uid_t)uid,
        .gid = (gid_t)uid,
        .filter = cfg->sbx->jail ? &init_filter : NULL,
        .worker_main = worker_entry,
        .worker_arg = &wp,
      };
      init_main(&ip);
    }
    if (init < 0) {
      kiln_error_make(&e, errno, "fork the worker's init");
      middle_fail(pidp[1], &e);
    }
    struct fbuf fb;
    fbuf_init(&fb, FRAME_INIT_FORKED);
    fbuf_put_u64(&fb, TAG_PID, (uint64_t)init);
    fbuf_finish(&fb);
    _exit(frame_send(pidp[1], &fb, NULL, 0, NULL) < 0 ? 1 : 0);
  }
  PyOS_AfterFork_Parent();
  if (mid < 0) {
    kiln_error_make(err, errno, "fork");
    goto out;
  }
  close(pidp[1]);
  pidp[1] = -1;
  struct frame mf;
  uint8_t *mbuf = NULL;
  kiln_error_t merr = NULL;
  uint64_t pid = 0;
  cleanup_free char *msg = NULL;
  int rr = frame_recv(pidp[0], &mf, &mbuf, 64 << 10, &merr);
  if (rr == 0 && mf.type == FRAME_SPAWN_FAILED)
    frame_get_str(&mf, TAG_MESSAGE, true, &msg, NULL, &merr);
  else if (rr == 0
           && (mf.type != FRAME_INIT_FORKED || frame_get_u64(&mf, TAG_PID, false, &pid, &merr) < 0
               || pid <= 1))
    pid = 0;
  free(mbuf);
  int st;
  while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
    ;
  if (pid <= 1) {
    kiln_error_make(err, 0, "the worker could not be set up: %s",
                    msg    ? msg
                    : merr ? merr->msg
                           : "the middle process died");
    kiln_error_release(&merr);
    goto out;
  }

  struct fbuf fb;
  fbuf_init(&fb, FRAME_SPAWNED);
  fbuf_put_u64(&fb, TAG_PID, (uint64_t)pid);
  fbuf_put_str(&fb, TAG_SESSION_ID, session_id);
  fbuf_finish(&fb);
  int fds[4] = { ctl[0], out[0], errp[0], status[0] };
  ret = frame_send(ZYG_FD, &fb, fds, 4, err);
  fbuf_free(&fb);

out:
  close_pair(ctl);
  close_pair(out);
  close_pair(errp);
  close_pair(status);
  close_pair(pidp);
  return ret;
}

static void serve(const struct kiln_config *cfg) __attribute__((noreturn));

/* Execs this zygote again from the neutral layout of CFG's trees, with
   its configuration on AGAIN_FD.  Returns when this host cannot have the
   layout: the trees are then shown at their host paths.  */
static void
exec_neutral(const struct kiln_config *cfg, pid_t front)
{
  kiln_error_t err = NULL;
  struct neutral_trees t;
  neutral_trees_of(cfg->sbx, &t);
  /* Tried in a child first: a failure half-way would leave this
     process's mounts in no state to go on from.  */
  if (sbx_in_child(neutral_check, cfg->sbx, &err) < 0) {
    log_msg(LOG_WARN, "the jail shows kiln's Python, venv and runtime at their host paths: %s",
            err->msg);
    kiln_error_release(&err);
    return;
  }
  if (neutral_enter(&t, cfg->sbx->userns, &err) < 0)
    fail(&err);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
    kiln_error_make(&err, errno, "socketpair");
    fail(&err);
  }
  struct fbuf fb;
  hof_encode(cfg, &fb);
  int rc = frame_send(sv[0], &fb, NULL, 0, &err);
  fbuf_free(&fb);
  close(sv[0]);
  if (rc < 0 || dup2(sv[1], AGAIN_FD) < 0) {
    if (rc == 0)
      kiln_error_make(&err, errno, "dup2");
    fail(&err);
  }
  char pid[24];
  snprintf(pid, sizeof pid, "%d", (int)front);
  setenv(AGAIN_ENV, pid, 1);
  if (t.python_home) {
    const char *old = getenv("LD_LIBRARY_PATH");
    cleanup_free char *path
        = old && *old ? xasprintf(NEUTRAL_PYTHON "/lib:%s", old) : xstrdup(NEUTRAL_PYTHON "/lib");
    setenv("LD_LIBRARY_PATH", path, 1);
  }
  set_cloexec(ZYG_FD, false);
  char *argv[] = { "kiln-zygote", ZYGOTE_COMMAND, NULL };
  execv(NEUTRAL_EXE, argv);
  kiln_error_make(&err, errno, "exec %s", NEUTRAL_EXE);
  fail(&err);
}

/* In the zygote exec'd by exec_neutral: CFG's trees as they are seen.  */
static void
use_neutral(struct kiln_config *cfg, struct sbx_config *sbx)
{
  cfg->venv = (char *)NEUTRAL_VENV;
  cfg->runtime_dir = (char *)NEUTRAL_RUNTIME;
  struct neutral_trees t;
  neutral_trees_of(sbx, &t);
  sbx->nexpose = 0;
  if (t.python_home) {
    sbx->expose[sbx->nexpose++] = NEUTRAL_PYTHON;
    sbx->python_neutral = true;
    emb_python_home(NEUTRAL_PYTHON);
  }
  sbx->expose[sbx->nexpose++] = NEUTRAL_VENV;
  sbx->expose[sbx->nexpose++] = NEUTRAL_RUNTIME;
}

void
zyg_exec_main(void)
{
  kiln_error_t err = NULL;

  /* The zygote must not outlive the front; arm the signal, then check
     the front did not exit before it was armed.  */
  /* Exec'd by exec_neutral: only then is AGAIN_FD open.  */
  const char *again = fcntl(AGAIN_FD, F_GETFD) >= 0 ? getenv(AGAIN_ENV) : NULL;
  pid_t front = again ? (pid_t)atoi(again) : getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() != front)
    _exit(1);
  prctl(PR_SET_NAME, "kiln-zygote", 0, 0, 0);

  /* The front set up fds 0-2 and ZYG_FD; anything else inherited is
     not the zygote's.  */
  set_cloexec(ZYG_FD, true);
  int keep[] = { 0, 1, 2, ZYG_FD, again ? AGAIN_FD : ZYG_FD };
  close_fds_except(0, keep, sizeof keep / sizeof keep[0]);
  signal(SIGPIPE, SIG_IGN);

  struct frame f;
  uint8_t *payload = NULL;
  static struct kiln_config cfg;
  static struct sbx_config sbx;
  if (frame_recv(again ? AGAIN_FD : ZYG_FD, &f, &payload, 1 << 20, &err) < 0
      || hof_decode(&f, &cfg, &sbx, &err) < 0)
    fail(&err);
  free(payload);
  log_setup(cfg.log_level, cfg.log_format);
  if (again) {
    close(AGAIN_FD);
    unsetenv(AGAIN_ENV);
    use_neutral(&cfg, &sbx);
  } else if (sbx.jail)
    exec_neutral(&cfg, front);
  limits_derive(&cfg, &limits);
  front_pidfd = (int)syscall(SYS_pidfd_open, front, 0);
  serve(&cfg);
}

static void
serve(const struct kiln_config *cfg)
{
  kiln_error_t err = NULL;
  if (cfg->sbx->jail && (scf_build(&policy, &err) < 0 || scf_build_init(&init_filter, &err) < 0))
    fail(&err);
  reset_environment(cfg);
  struct fbuf ready;
  if (start_python(cfg, &ready, &err) < 0)
    fail(&err);
  fbuf_finish(&ready);
  if (frame_send(ZYG_FD, &ready, NULL, 0, NULL) < 0)
    _exit(1);
  fbuf_free(&ready);

  for (;;) {
    struct frame f;
    uint8_t *payload = NULL;
    if (frame_recv(ZYG_FD, &f, &payload, 1 << 20, &err) < 0)
      _exit(err && err->status == ECONNRESET ? 0 : 1);
    for (size_t i = 0; i < f.nfds; i++)
      close(f.fds[i]);
    if (f.type == FRAME_SPAWN) {
      if (spawn(&f, cfg, &err) < 0) {
        struct fbuf fb;
        fbuf_init(&fb, FRAME_SPAWN_FAILED);
        fbuf_put_str(&fb, TAG_MESSAGE, err ? err->msg : "spawn failed");
        fbuf_finish(&fb);
        if (frame_send(ZYG_FD, &fb, NULL, 0, NULL) < 0)
          _exit(1);
        fbuf_free(&fb);
        kiln_error_release(&err);
      }
    }
    /* Anything else is a bug in the front: the zygote trusts it, but
       ignores what it does not understand rather than guess.  */
    free(payload);
  }
}
