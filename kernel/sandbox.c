#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

/* This is the slot the OS-level jail (namespaces, mounts, identity,
   cgroups, seccomp) fills.  Until it does, a worker gets only the steps
   below, which hold on every host, and the banner says plainly that cells
   run unisolated.  */
int
sbx_enter(const struct sbx_params *p, kiln_error_t *err)
{
  /* The session directory is the cell's current directory and $HOME.  */
  if (chdir(p->workdir) < 0)
    return kiln_error_make(err, errno, "chdir %s", p->workdir);

  /* No core dumps: a crashing cell must not write the worker's memory
     (the zygote's, shared) to disk.  */
  struct rlimit core = { 0, 0 };
  if (setrlimit(RLIMIT_CORE, &core) < 0)
    return kiln_error_make(err, errno, "setrlimit RLIMIT_CORE");

  /* Nothing the worker executes may gain privileges (setuid binaries,
     file capabilities).  */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return kiln_error_make(err, errno, "prctl PR_SET_NO_NEW_PRIVS");
  return 0;
}

const char *
sbx_describe(void)
{
  return "no-new-privs, no core dumps; NOT ISOLATED: namespaces, seccomp and cgroups are not "
         "applied yet";
}
