#define _GNU_SOURCE
#include "pycompat.h"

#include "shell.h"
#include "interrupt.h"
#include "records.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define WORK "/work"

/* Shells in the order they are preferred.  Both are in the read-only
   root when the host has them; sh is POSIX's and always there.  */
static const char *const shells[] = { "/bin/bash", "/usr/bin/bash", "/bin/sh" };

/* Ends OUT's frame as a command that could not be started: errno E and
   MESSAGE for the reader.  */
static void
refuse(struct fbuf *out, int e, const char *message)
{
  fbuf_put_u64(out, TAG_STATUS, (uint64_t)(e > 0 ? e : EINVAL));
  fbuf_put_str(out, TAG_MESSAGE, message);
}

/* Opens the command's directory: /work itself when PATH is empty, else
   PATH beneath it.  The kernel refuses ".." and any symlink (planted by
   a cell or not) that would leave /work, and magic links; symlinks that
   stay inside are followed, as cd would follow them.  Returns an fd
   (O_PATH, which fchdir takes) or -1 with errno.  */
static int
open_workdir(const char *path, bool jailed)
{
  int work = open(WORK, O_PATH | O_DIRECTORY | O_CLOEXEC);
  /* Unjailed there is no /work: the worker's own directory is the
     session's, as it is for a cell.  */
  if (work < 0 && !jailed)
    work = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (work < 0 || path[0] == '\0')
    return work;
  struct open_how how = {
    .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
  };
  int fd = (int)syscall(SYS_openat2, work, path, &how, sizeof how);
  int saved = errno;
  close(work);
  errno = saved;
  return fd;
}

/* In the forked child, until exec: only async-signal-safe calls, since
   the worker has threads (the output flusher, any a cell started) whose
   locks the child may have inherited held.  */
static _Noreturn void
exec_shell(const char *shell, char *const argv[], int dir, int null)
{
  /* Its own process group, so that the interrupt and the kill after it
     reach everything the command starts and nothing of the worker's.
     The parent sets it too: whichever runs first, the group exists
     before either sends a signal to it.  */
  setpgid(0, 0);
  /* Nothing of what the worker set for itself may reach the command:
     Python ignores SIGPIPE and SIGXFSZ (an ignored signal stays ignored
     across exec, and `yes | head` would then complain of a broken
     pipe), and SIGINT is blocked outside cells.  */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &dfl, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (dup2(null, 0) < 0 || fchdir(dir) < 0) {
    static const char msg[] = "kiln: cannot set up the command's stdin or directory\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(126);
  }
  /* Only stdio: the control socket is close-on-exec already, but a cell
     may have left descriptors that are not.  */
  syscall(SYS_close_range, 3, ~0U, 0);
  execve(shell, argv, environ);
  static const char msg[] = "kiln: cannot run the shell\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(127);
}

/* The command's group is waited for here: what the front interrupted is
   passed on as SIGINT to the group, and a group still there GRACE_NS
   later is killed.  Returns the shell's wait status; *KILLED says
   whether the kill was needed.  Called without the GIL.  */
static int
wait_command(pid_t pid, int wake, int64_t grace_ns, bool *killed)
{
  /* A pidfd tells when the shell exits without SIGCHLD, which any of the
     worker's threads could take.  Without one (Linux before 5.3) the
     wait polls.  */
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  bool interrupted = false;
  int64_t kill_at = 0;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR))
      break;
    int timeout = pidfd >= 0 ? -1 : 50;
    if (kill_at && !*killed) {
      int64_t left = kill_at - now_ns();
      int ms = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
      timeout = timeout < 0 || ms < timeout ? ms : timeout;
    }
    struct pollfd pf[2] = { { .fd = wake, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
    int n = poll(pf, pidfd >= 0 ? 2 : 1, timeout);
    if (n > 0 && (pf[0].revents & POLLIN)) {
      char drain[16];
      while (read(wake, drain, sizeof drain) > 0)
        ;
      if (!interrupted) {
        interrupted = true;
        kill(-pid, SIGINT);
        kill_at = now_ns() + grace_ns;
      }
    }
    if (kill_at && !*killed && now_ns() >= kill_at) {
      kill(-pid, SIGKILL);
      *killed = true;
    }
  }
  /* Past its deadline nothing of the command may stay behind: what in
     its group outlived the shell (a background job that ignores SIGINT)
     goes too.  A command that ended in time keeps its background jobs,
     as a cell keeps the processes it started.  */
  if (interrupted)
    kill(-pid, SIGKILL);
  if (pidfd >= 0)
    close(pidfd);
  return status;
}

void
shell_serve(const struct frame *f, bool jailed, struct fbuf *out)
{
  fbuf_init(out, FRAME_SHELL_DONE);
  kiln_error_t err = NULL;
  cleanup_free char *command = NULL, *path = NULL;
  size_t command_len = 0, path_len = 0;
  uint64_t grace_ms = 0;
  if (frame_get_str(f, TAG_CODE, false, &command, &command_len, &err) < 0
      || frame_get_str(f, TAG_PATH, true, &path, &path_len, &err) < 0
      || frame_get_u64(f, TAG_GRACE_MS, false, &grace_ms, &err) < 0) {
    refuse(out, EINVAL, err->msg);
    kiln_error_release(&err);
    return;
  }
  /* The front checked the path; a worker trusts nothing it did not
     check itself either.  */
  if (path && !rec_path_ok(path, path_len, true)) {
    refuse(out, EINVAL, "the directory is not a relative path under /work");
    return;
  }
  cleanup_close int dir = open_workdir(path ? path : "", jailed);
  if (dir < 0) {
    int e = errno;
    /* openat2 says EXDEV for a path that would leave /work: the reader
       needs to hear that, not "cross-device link".  */
    cleanup_free char *msg
        = xasprintf("cannot use /work/%s as the command's directory: %s", path ? path : "",
                    e == EXDEV ? "it leads outside /work" : strerror(e));
    refuse(out, e == EXDEV ? EACCES : e, msg);
    return;
  }
  const char *shell = NULL;
  for (size_t i = 0; i < sizeof shells / sizeof shells[0] && shell == NULL; i++)
    if (access(shells[i], X_OK) == 0)
      shell = shells[i];
  if (shell == NULL) {
    refuse(out, ENOENT, "there is no shell (bash or sh) in the session's root");
    return;
  }
  char *const argv[] = { (char *)(strrchr(shell, '/') + 1), (char *)"-c", command, NULL };
  cleanup_close int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int wake[2];
  if (null < 0 || pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0) {
    refuse(out, errno, "cannot set up the command (open /dev/null, pipe)");
    return;
  }

  /* From before the fork, so that an interrupt that comes early is not
     lost: it waits in the pipe.  SIGINT is blocked on this thread
     between cells; it is let in for the command's run so that the
     handler runs even when no other thread takes it.  */
  intr_redirect(wake[1]);
  sigset_t intr, old;
  sigemptyset(&intr);
  sigaddset(&intr, SIGINT);
  pthread_sigmask(SIG_UNBLOCK, &intr, &old);

  pid_t pid = fork();
  if (pid == 0)
    exec_shell(shell, argv, dir, null);
  int fork_errno = errno;
  int status = 0;
  bool killed = false;
  if (pid > 0) {
    setpgid(pid, pid);
    Py_BEGIN_ALLOW_THREADS status
        = wait_command(pid, wake[0], (int64_t)grace_ms * 1000000, &killed);
    Py_END_ALLOW_THREADS
  }

  pthread_sigmask(SIG_SETMASK, &old, NULL);
  intr_redirect(-1);
  close(wake[0]);
  close(wake[1]);
  if (pid < 0) {
    cleanup_free char *msg = xasprintf("cannot start the command: fork: %s", strerror(fork_errno));
    refuse(out, fork_errno, msg);
    return;
  }
  fbuf_put_u64(out, TAG_STATUS, 0);
  if (WIFSIGNALED(status))
    fbuf_put_u64(out, TAG_SIGNAL, (uint64_t)WTERMSIG(status));
  else
    fbuf_put_u64(out, TAG_EXIT_CODE, (uint64_t)WEXITSTATUS(status));
  if (killed)
    fbuf_put(out, TAG_KILLED, "", 0);
}
