/* The worker's system-call policy, built with libseccomp once on the
   trusted side (the zygote, before any fork) and exported as BPF; a
   worker only loads it, as the last step of its jail.  */
#ifndef KILN_SECCOMP_H
#define KILN_SECCOMP_H

#include "error.h"

#include <linux/filter.h>
#include <stddef.h>

/* Two programs, both applied: an allowlist (everything not named fails
   with ENOSYS, the named dangerous calls with EPERM) and a denylist for
   argument checks that need "everything but" (TIOCSTI).  The kernel
   applies the stricter verdict of the two.  */
struct scf_policy {
  struct sock_fprog allow, deny; /* filters owned by the policy */
};

int scf_build(struct scf_policy *p, kiln_error_t *err);
void scf_free(struct scf_policy *p);

/* Loads both programs into the calling thread.  PR_SET_NO_NEW_PRIVS must
   already be set.  */
int scf_load(const struct scf_policy *p, kiln_error_t *err);

/* The filter of a worker's init (init.c): the handful of calls it makes
   once the worker is forked, nothing else.  OUT->filter is allocated.  */
int scf_build_init(struct sock_fprog *out, kiln_error_t *err);
/* The filter of the compile helper (compiler_jail.c): reading and
   writing its socket (fd COMPILER_FD) and stderr, memory without
   executable mappings, and exiting.  No file, no socket, no process may
   be made.  OUT->filter is allocated.  */
#define COMPILER_FD 3
int scf_build_compiler(struct sock_fprog *out, kiln_error_t *err);
/* Loads one program into the calling thread (PR_SET_NO_NEW_PRIVS set).  */
int scf_load_one(const struct sock_fprog *f, kiln_error_t *err);

/* Syscalls the policy refuses by name: `kiln doctor` lists how many of
   them this libseccomp knows (it silently skips names it does not).  */
extern const char *const scf_refused[];
extern const size_t scf_nrefused;
size_t scf_known(const char *const *names, size_t n);

#endif
