#define _GNU_SOURCE
#include "init.h"
#include "identity.h"
#include "seccomp_policy.h"
#include "frame.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static _Noreturn void
fail(int ctl, const char *what, int e)
{
  kiln_error_t err = NULL;
  kiln_error_make(&err, e, "%s", what);
  frame_fail_exit(ctl, FRAME_WORKER_FAILED, &err, what);
}

void
init_main(const struct init_params *p)
{
  prctl(PR_SET_NAME, "kiln-init", 0, 0, 0);

  /* Signals are taken synchronously below; the worker gets a clean mask.  */
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);

  pid_t w = fork();
  if (w < 0)
    fail(p->ctl, "fork the worker", errno);
  if (w == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(p->status_fd);
    close(p->mid_pidfd);
    close(p->front_pidfd);
    p->worker_main(p->worker_arg);
  }
  /* Everything else this copy of the zygote holds (its socket to the
     front among them) is not the init's business.  */
  int keep[] = { p->status_fd, p->mid_pidfd, p->front_pidfd };
  close_fds_except(0, keep, 3);

  /* The middle process exits right after forking this one; only once it
     has (and this process is the front's child, the front being a child
     subreaper) may the parent-death signal be armed, or the middle's
     exit would fire it.  A pidfd becomes readable after reparenting.  */
  struct pollfd pf = { .fd = p->mid_pidfd, .events = POLLIN };
  if (poll(&pf, 1, 10000) <= 0)
    _exit(126);
  /* From here the init only reaps and relays signals, so it keeps
     nothing else: the worker's uid (it must be able to signal it), no
     capabilities, no way to gain any, and a filter of the few calls it
     makes (loaded below, once it has no more set-up to do).  The ids
     change before the parent-death signal is armed: a credential change
     clears it.  */
  kiln_error_t err = NULL;
  /* Not dumpable either, like the worker: a cell that shares its uid
     must not reach into it through /proc (its root, its memory).  */
  if (p->filter
      && (id_drop_privileges(p->switch_ids, p->uid, p->gid, &err) < 0
          || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)) {
    kill(w, SIGKILL);
    _exit(125);
  }
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    _exit(126);
  struct pollfd ff = { .fd = p->front_pidfd, .events = POLLIN };
  if (p->front_pidfd >= 0 && poll(&ff, 1, 0) > 0)
    _exit(126);
  close(p->mid_pidfd);
  close(p->front_pidfd);
  if (p->filter
      && (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || scf_load_one(p->filter, &err) < 0)) {
    kill(w, SIGKILL);
    _exit(125);
  }

  for (;;) {
    siginfo_t si;
    if (sigwaitinfo(&all, &si) < 0)
      continue;
    if (si.si_signo != SIGCHLD) {
      /* The front's interrupt (and anything else it sends) is for the
         worker.  The front is outside the namespace, so its signals carry
         no sender pid; one with a sender came from inside (the cell, whose
         uid the init shares) and is not relayed.  SIGKILL never gets here:
         it ends this process and with it the namespace.  */
      if (si.si_pid == 0 && si.si_code == SI_QUEUE)
        sigqueue(w, si.si_signo, si.si_value);
      else if (si.si_pid == 0)
        kill(w, si.si_signo);
      continue;
    }
    for (;;) {
      int st;
      pid_t r = waitpid(-1, &st, WNOHANG);
      if (r <= 0)
        break;
      if (r == w) {
        int32_t v = st;
        (void)!write(p->status_fd, &v, sizeof v);
        _exit(0);
      }
    }
  }
}
