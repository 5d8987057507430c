#define _GNU_SOURCE
#include "seccomp_policy.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <linux/netlink.h>

/* Linux 6.5; not in every libc's headers yet.  */
#define KILN_SO_PEERPIDFD 77

/* What CPython, numpy, matplotlib, PIL, pandas and the usual subprocesses
   (a shell, coreutils) need.  Anything else fails with ENOSYS, which C
   libraries treat as "not available here" and fall back from.  */
static const char *const allowed[] = {
  "accept",
  "accept4",
  "access",
  "alarm",
  "arch_prctl",
  "bind",
  "brk",
  "capget",
  "capset",
  "chdir",
  "chmod",
  "chown",
  "clock_getres",
  "clock_gettime",
  "clock_nanosleep",
  "close",
  "close_range",
  "connect",
  "copy_file_range",
  "creat",
  "dup",
  "dup2",
  "dup3",
  "epoll_create",
  "epoll_create1",
  "epoll_ctl",
  "epoll_pwait",
  "epoll_pwait2",
  "epoll_wait",
  "eventfd",
  "eventfd2",
  "execve",
  "execveat",
  "exit",
  "exit_group",
  "faccessat",
  "faccessat2",
  "fallocate",
  "fchdir",
  "fchmod",
  "fchmodat",
  "fchown",
  "fchownat",
  "fcntl",
  "fdatasync",
  "fgetxattr",
  "flistxattr",
  "flock",
  "fork",
  "fremovexattr",
  "fsetxattr",
  "fstat",
  "fstatfs",
  "fsync",
  "ftruncate",
  "futex",
  "futex_waitv",
  "get_robust_list",
  "getcpu",
  "getcwd",
  "getdents",
  "getdents64",
  "getegid",
  "geteuid",
  "getgid",
  "getgroups",
  "getitimer",
  "getpeername",
  "getpgid",
  "getpgrp",
  "getpid",
  "getppid",
  "getpriority",
  "getrandom",
  "getresgid",
  "getresuid",
  "getrlimit",
  "getrusage",
  "getsid",
  "getsockname",
  "gettid",
  "gettimeofday",
  "getuid",
  "getxattr",
  "inotify_add_watch",
  "inotify_init",
  "inotify_init1",
  "inotify_rm_watch",
  "ioctl",
  "ioprio_get",
  "kill",
  "landlock_add_rule",
  "landlock_create_ruleset",
  "landlock_restrict_self",
  "lchown",
  "lgetxattr",
  "link",
  "linkat",
  "listen",
  "listxattr",
  "llistxattr",
  "lremovexattr",
  "lseek",
  "lsetxattr",
  "lstat",
  "membarrier",
  "memfd_create",
  "mincore",
  "mkdir",
  "mkdirat",
  "mknod",
  "mknodat",
  "mlock",
  "mlock2",
  "mmap",
  "mprotect",
  "mq_getsetattr",
  "mq_notify",
  "mq_open",
  "mq_timedreceive",
  "mq_timedsend",
  "mq_unlink",
  "mremap",
  "msgctl",
  "msgget",
  "msgrcv",
  "msgsnd",
  "msync",
  "munlock",
  "munlockall",
  "munmap",
  "nanosleep",
  "newfstatat",
  "open",
  "openat",
  "openat2",
  "pause",
  "pidfd_open",
  "pidfd_send_signal",
  "pipe",
  "pipe2",
  "poll",
  "ppoll",
  "prctl",
  "pread64",
  "preadv",
  "preadv2",
  "prlimit64",
  "pselect6",
  "pwrite64",
  "pwritev",
  "pwritev2",
  "read",
  "readahead",
  "readlink",
  "readlinkat",
  "readv",
  "recvfrom",
  "recvmmsg",
  "recvmsg",
  "remap_file_pages",
  "removexattr",
  "rename",
  "renameat",
  "renameat2",
  "restart_syscall",
  "rmdir",
  "rseq",
  "rt_sigaction",
  "rt_sigpending",
  "rt_sigprocmask",
  "rt_sigqueueinfo",
  "rt_sigreturn",
  "rt_sigsuspend",
  "rt_sigtimedwait",
  "rt_tgsigqueueinfo",
  "sched_get_priority_max",
  "sched_get_priority_min",
  "sched_getaffinity",
  "sched_getattr",
  "sched_getparam",
  "sched_getscheduler",
  "sched_rr_get_interval",
  "sched_setaffinity",
  "sched_yield",
  "seccomp",
  "select",
  "semctl",
  "semget",
  "semop",
  "semtimedop",
  "sendfile",
  "sendmmsg",
  "sendmsg",
  "sendto",
  "set_robust_list",
  "set_tid_address",
  "setfsgid",
  "setfsuid",
  "setgid",
  "setgroups",
  "setitimer",
  "setpgid",
  "setpriority",
  "setregid",
  "setresgid",
  "setresuid",
  "setreuid",
  "setrlimit",
  "setsid",
  "setsockopt",
  "setuid",
  "setxattr",
  "shmat",
  "shmctl",
  "shmdt",
  "shmget",
  "shutdown",
  "sigaltstack",
  "signalfd",
  "signalfd4",
  "socketpair",
  "splice",
  "stat",
  "statfs",
  "statx",
  "symlink",
  "symlinkat",
  "sync",
  "sync_file_range",
  "syncfs",
  "sysinfo",
  "tee",
  "tgkill",
  "time",
  "timer_create",
  "timer_delete",
  "timer_getoverrun",
  "timer_gettime",
  "timer_settime",
  "timerfd_create",
  "timerfd_gettime",
  "timerfd_settime",
  "times",
  "tkill",
  "truncate",
  "umask",
  "uname",
  "unlink",
  "unlinkat",
  "utime",
  "utimensat",
  "utimes",
  "vfork",
  "wait4",
  "waitid",
  "write",
  "writev",
};

/* Refused with EPERM, by name, so the error reads as a permission error:
   the kernel surfaces a sandbox must not touch.  */
const char *const scf_refused[] = {
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "mount",
  "umount2",
  "pivot_root",
  "chroot",
  "unshare",
  "setns",
  "bpf",
  "perf_event_open",
  "userfaultfd",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  "keyctl",
  "add_key",
  "request_key",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "reboot",
  "swapon",
  "swapoff",
  "acct",
  "open_by_handle_at",
  "name_to_handle_at",
  "fsopen",
  "fsmount",
  "fsconfig",
  "fspick",
  "move_mount",
  "open_tree",
  "mount_setattr",
  "quotactl",
  "sethostname",
  "setdomainname",
  "settimeofday",
  "clock_settime",
  "clock_adjtime",
  "adjtimex",
  "syslog",
  "vhangup",
  "iopl",
  "ioperm",
  "lookup_dcookie",
  "nfsservctl",
  "kcmp",
  "pidfd_getfd",
  "process_madvise",
  "fanotify_init",
  "uselib",
  "ustat",
  "sysfs",
  "_sysctl",
  "vm86",
  "vm86old",
  "modify_ldt",
  "get_kernel_syms",
  "query_module",
  "create_module",
  "move_pages",
  "migrate_pages",
  "mbind",
  "set_mempolicy",
  "get_mempolicy",
  "memfd_secret",
  "ioprio_set",
  "sched_setparam",
  "sched_setscheduler",
  "sched_setattr",
  "mlockall",
};
const size_t scf_nrefused = sizeof scf_refused / sizeof scf_refused[0];

size_t
scf_known(const char *const *names, size_t n)
{
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += seccomp_syscall_resolve_name(names[i]) != __NR_SCMP_ERROR;
  return k;
}

static int export(scmp_filter_ctx ctx, struct sock_fprog *out, kiln_error_t *err)
{
  cleanup_close int fd = memfd_create("kiln-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    return kiln_error_make(err, errno, "memfd_create");
  int r = seccomp_export_bpf(ctx, fd);
  if (r < 0)
    return kiln_error_make(err, -r, "seccomp_export_bpf");
  off_t len = lseek(fd, 0, SEEK_END);
  if (len <= 0 || len % (off_t)sizeof(struct sock_filter) != 0)
    return kiln_error_make(err, 0, "seccomp_export_bpf wrote %lld bytes", (long long)len);
  struct sock_filter *prog = xmalloc((size_t)len);
  if (pread(fd, prog, (size_t)len, 0) != len) {
    free(prog);
    return kiln_error_make(err, errno, "read back the seccomp program");
  }
  out->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
  out->filter = prog;
  return 0;
}

#define ADD(ctx, action, name, n, ...)                                                             \
  do {                                                                                             \
    int nr_ = seccomp_syscall_resolve_name(name);                                                  \
    if (nr_ != __NR_SCMP_ERROR                                                                     \
        && (r = seccomp_rule_add(ctx, action, nr_, n, ##__VA_ARGS__)) < 0) {                       \
      kiln_error_make(err, -r, "seccomp rule for %s", name);                                       \
      goto out;                                                                                    \
    }                                                                                              \
  } while (0)

static int
build_allow(struct sock_fprog *out, kiln_error_t *err)
{
  int r, ret = -1;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
  if (ctx == NULL)
    return kiln_error_make(err, ENOMEM, "seccomp_init");
  /* Only the native ABI: i386 and x32 calls are refused, not
     interpreted with another table.  */
  if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS))) < 0) {
    kiln_error_make(err, -r, "seccomp bad-arch action");
    goto out;
  }
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
    ADD(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
  for (size_t i = 0; i < scf_nrefused; i++)
    ADD(ctx, SCMP_ACT_ERRNO(EPERM), scf_refused[i], 0);

  /* Threads and processes, but no new namespaces.  clone3 passes its
     flags in memory a filter cannot read, so it is left to the default,
     ENOSYS, which sends glibc back to clone.  */
  const uint64_t ns_flags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC
                            | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME;
  ADD(ctx, SCMP_ACT_ALLOW, "clone", 1, SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags, 0));
  for (int bit = 0; bit < 64; bit++)
    if (ns_flags & (1ULL << bit))
      ADD(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1,
          SCMP_A0(SCMP_CMP_MASKED_EQ, 1ULL << bit, 1ULL << bit));

  /* Sockets of the local kinds only: unix, IP (the network namespace has
     nothing but loopback) and routing netlink (getaddrinfo asks it).  */
  /* SO_PEERPIDFD on the control socket would hand the cell a pidfd of the
     zygote, which made the socket: a host process it could signal.  */
  ADD(ctx, SCMP_ACT_ALLOW, "getsockopt", 1, SCMP_A2(SCMP_CMP_NE, KILN_SO_PEERPIDFD));
  ADD(ctx, SCMP_ACT_ERRNO(EPERM), "getsockopt", 1, SCMP_A2(SCMP_CMP_EQ, KILN_SO_PEERPIDFD));
  /* Advice about pages is the session's business, except advice that
     evicts pages of the page cache the host shares with it: the read-only
     binds are the host's own files, and POSIX_FADV_DONTNEED or
     MADV_PAGEOUT/MADV_COLD on them would slow every process on the host
     that reads them.  */
  ADD(ctx, SCMP_ACT_ALLOW, "fadvise64", 1, SCMP_A3(SCMP_CMP_NE, POSIX_FADV_DONTNEED));
  ADD(ctx, SCMP_ACT_ERRNO(EPERM), "fadvise64", 1, SCMP_A3(SCMP_CMP_EQ, POSIX_FADV_DONTNEED));
  _Static_assert(MADV_COLD + 1 == MADV_PAGEOUT, "the refused advice is one range");
  ADD(ctx, SCMP_ACT_ALLOW, "madvise", 1, SCMP_A2(SCMP_CMP_LT, MADV_COLD));
  ADD(ctx, SCMP_ACT_ALLOW, "madvise", 1, SCMP_A2(SCMP_CMP_GT, MADV_PAGEOUT));
  ADD(ctx, SCMP_ACT_ERRNO(EPERM), "madvise", 1, SCMP_A2(SCMP_CMP_EQ, MADV_PAGEOUT));
  ADD(ctx, SCMP_ACT_ERRNO(EPERM), "madvise", 1, SCMP_A2(SCMP_CMP_EQ, MADV_COLD));
  ADD(ctx, SCMP_ACT_ALLOW, "socket", 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
  ADD(ctx, SCMP_ACT_ALLOW, "socket", 1, SCMP_A0(SCMP_CMP_EQ, AF_INET));
  ADD(ctx, SCMP_ACT_ALLOW, "socket", 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6));
  ADD(ctx, SCMP_ACT_ALLOW, "socket", 2, SCMP_A0(SCMP_CMP_EQ, AF_NETLINK),
      SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE));

  /* Personality: only asking, and the plain Linux one.  */
  ADD(ctx, SCMP_ACT_ALLOW, "personality", 1, SCMP_A0(SCMP_CMP_EQ, 0));
  ADD(ctx, SCMP_ACT_ALLOW, "personality", 1, SCMP_A0(SCMP_CMP_EQ, 0xffffffff));
  ADD(ctx, SCMP_ACT_ALLOW, "personality", 1,
      SCMP_A0(SCMP_CMP_EQ, 0x20000)); /* ADDR_NO_RANDOMIZE probe */

  ret = export(ctx, out, err);
out:
  seccomp_release(ctx);
  return ret;
}

static int
build_deny(struct sock_fprog *out, kiln_error_t *err)
{
  int r, ret = -1;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == NULL)
    return kiln_error_make(err, ENOMEM, "seccomp_init");
  /* The verdict for other ABIs must match the allowlist's: of two filters
     the stricter verdict wins, and libseccomp's default would kill.  */
  if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS))) < 0) {
    kiln_error_make(err, -r, "seccomp bad-arch action");
    goto out;
  }
  /* Pushing bytes into a terminal's input queue, and its console
     twin.  The kernel compares the low 32 bits only.  */
  ADD(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, TIOCSTI));
  ADD(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1,
      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, TIOCLINUX));
  ret = export(ctx, out, err);
out:
  seccomp_release(ctx);
  return ret;
}

int
scf_build(struct scf_policy *p, kiln_error_t *err)
{
  memset(p, 0, sizeof *p);
  if (build_allow(&p->allow, err) < 0)
    return -1;
  if (build_deny(&p->deny, err) < 0) {
    scf_free(p);
    return -1;
  }
  return 0;
}

void
scf_free(struct scf_policy *p)
{
  free(p->allow.filter);
  free(p->deny.filter);
  memset(p, 0, sizeof *p);
}

int
scf_load(const struct scf_policy *p, kiln_error_t *err)
{
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p->allow) < 0)
    return kiln_error_make(err, errno, "load the seccomp allowlist");
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p->deny) < 0)
    return kiln_error_make(err, errno, "load the seccomp denylist");
  return 0;
}

int
scf_build_init(struct sock_fprog *out, kiln_error_t *err)
{
  /* What the namespace's init does once the worker is forked: wait for a
     signal, pass it on, reap, report the worker's status, exit.  */
  static const char *const init_calls[] = {
    "rt_sigtimedwait", "rt_sigprocmask", "rt_sigreturn", "restart_syscall", "kill",
    "rt_sigqueueinfo", "wait4",          "waitid",       "write",           "exit",
    "exit_group",
  };
  int r, ret = -1;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (ctx == NULL)
    return kiln_error_make(err, ENOMEM, "seccomp_init");
  if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS))) < 0) {
    kiln_error_make(err, -r, "seccomp bad-arch action");
    goto out;
  }
  for (size_t i = 0; i < sizeof init_calls / sizeof init_calls[0]; i++)
    ADD(ctx, SCMP_ACT_ALLOW, init_calls[i], 0);
  ret = export(ctx, out, err);
out:
  seccomp_release(ctx);
  return ret;
}

int
scf_build_compiler(struct sock_fprog *out, kiln_error_t *err)
{
  /* What CPython needs to parse, compile and marshal once everything is
     imported: memory, its locks (futex), the clock and random numbers it
     may ask for, signals' plumbing and exiting.  */
  static const char *const calls[] = {
    "brk",          "munmap",         "mremap",        "madvise",         "futex",
    "rt_sigreturn", "rt_sigprocmask", "clock_gettime", "getrandom",       "exit",
    "exit_group",   "getpid",         "gettid",        "restart_syscall", "sched_yield",
  };
  int r, ret = -1;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (ctx == NULL)
    return kiln_error_make(err, ENOMEM, "seccomp_init");
  if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS))) < 0) {
    kiln_error_make(err, -r, "seccomp bad-arch action");
    goto out;
  }
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
    ADD(ctx, SCMP_ACT_ALLOW, calls[i], 0);
  /* Its socket alone, and stderr for what CPython prints on a fatal
     error.  */
  ADD(ctx, SCMP_ACT_ALLOW, "read", 1, SCMP_A0(SCMP_CMP_EQ, COMPILER_FD));
  ADD(ctx, SCMP_ACT_ALLOW, "recvmsg", 1, SCMP_A0(SCMP_CMP_EQ, COMPILER_FD));
  ADD(ctx, SCMP_ACT_ALLOW, "sendmsg", 1, SCMP_A0(SCMP_CMP_EQ, COMPILER_FD));
  ADD(ctx, SCMP_ACT_ALLOW, "write", 1, SCMP_A0(SCMP_CMP_EQ, COMPILER_FD));
  ADD(ctx, SCMP_ACT_ALLOW, "write", 1, SCMP_A0(SCMP_CMP_EQ, 2));
  /* Memory, never executable: nothing the helper is fed can become
     machine code.  */
  ADD(ctx, SCMP_ACT_ALLOW, "mmap", 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  ADD(ctx, SCMP_ACT_ALLOW, "mprotect", 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  ret = export(ctx, out, err);
out:
  seccomp_release(ctx);
  return ret;
}

int
scf_load_one(const struct sock_fprog *f, kiln_error_t *err)
{
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, f) < 0)
    return kiln_error_make(err, errno, "load a seccomp filter");
  return 0;
}
