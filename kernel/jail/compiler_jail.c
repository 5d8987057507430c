/* The compile helper's jail as one sequence.  The helper compiles
   sources a client sent, so a parser bug must not reach the host: it
   gets the worker's namespaces, no identity of the host's, no
   capabilities, and then a filter that leaves it its socket and its
   memory.  */
#define _GNU_SOURCE
#include "compiler_jail.h"
#include "namespaces.h"
#include "seccomp_policy.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* AddressSanitizer reserves terabytes of shadow address space at start:
   under any address-space limit its every later mapping fails, so a
   sanitizer build leaves RLIMIT_AS out.  */
#if defined(__SANITIZE_ADDRESS__)
#define KILN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_ASAN 1
#endif
#endif

/* The overflow ids: nobody on the host owns a file as them.  */
#define NOBODY 65534

static int
limit(int resource, rlim_t v, const char *name, kiln_error_t *err)
{
  struct rlimit rl = { v, v };
  if (setrlimit(resource, &rl) < 0)
    return kiln_error_make(err, errno, "setrlimit %s", name);
  return 0;
}

int
sbx_enter_compiler(const struct sbx_config *c, const struct sock_fprog *filter, kiln_error_t *err)
{
  /* 1. Die with the front, as every process kiln starts does.  */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    return kiln_error_make(err, errno, "PR_SET_PDEATHSIG");
  if (c->jail) {
    /* 2. The worker's namespaces (a user namespace first when kiln is
       unprivileged): no network, no host IPC, its own mount table.
       While still root, when kiln is: creating them needs it.  */
    if (ns_unshare(c->userns, c->host_uid, c->host_gid, err) < 0)
      return kiln_error_wrap(err, "compile helper");
    /* 3. Root gives up every id of the host's; an unprivileged kiln's
       helper keeps its own uid, mapped to itself.  */
    if (!c->userns
        && (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0
            || setresuid(NOBODY, NOBODY, NOBODY) < 0))
      return kiln_error_make(err, errno, "compile helper: drop to uid %d", NOBODY);
    /* 4. No capabilities, in any namespace: after setresuid root's are
       gone already; the user namespace's are dropped here.  */
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2] = { { 0 } };
    if (syscall(SYS_capset, &hdr, data) < 0)
      return kiln_error_make(err, errno, "compile helper: capset");
  }
  /* 5. Limits: no new file (its fds are all it has), no file written,
     no core, and the session's memory as its address space, so that a
     source built to blow up the compiler stops there.  */
  if (limit(RLIMIT_NOFILE, COMPILER_FD + 1, "NOFILE", err) < 0
      || limit(RLIMIT_FSIZE, 0, "FSIZE", err) < 0 || limit(RLIMIT_CORE, 0, "CORE", err) < 0)
    return -1;
#ifndef KILN_ASAN
  if (c->cg_limits.memory && limit(RLIMIT_AS, UNPRIVILEGED_AS(c), "AS", err) < 0)
    return -1;
#endif
  /* 6. Needed for an unprivileged process to load a filter, and so that
     nothing it could exec gains privileges.  */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return kiln_error_make(err, errno, "PR_SET_NO_NEW_PRIVS");
  /* 7. Last: the filter would refuse the calls above.  */
  if (c->jail && scf_load_one(filter, err) < 0)
    return kiln_error_wrap(err, "compile helper");
  return 0;
}
