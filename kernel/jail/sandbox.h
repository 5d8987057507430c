/* The worker's jail, applied between the fork and the first user
   statement as one sequence (sandbox.c), from parts with a file each:
   namespaces.c, mounts.c, cgroups.c, identity.c, seccomp_policy.c.  Any failure
   is fatal to the worker and reported to the front: there is no
   half-jailed session.  */
#ifndef KILN_SANDBOX_H
#define KILN_SANDBOX_H

#include "cgroups.h"
#include "error.h"
#include "identity.h"
#include "seccomp_policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* How workers are jailed on this host, decided once by the front
   (sbx_probe) and handed to the zygote in its first frame (handoff.h).  */
struct sbx_config {
  bool jail;   /* false only when the operator asked for no sandbox */
  bool userns; /* kiln is unprivileged: a user namespace gets the rest */
  uid_t host_uid;
  gid_t host_gid;
  uid_t uid_base; /* root: session uids are uid_base + slot, slot < ID_SLOTS */
  char *root_dir; /* $KILN_HOME/jail: where each worker builds its root */
  /* Host trees shown read-only at their own paths: the Python prefix,
     the venv and the runtime (in that order), then their real paths
     when they differ.  */
  const char *expose[8];
  char *owned[2]; /* real paths among EXPOSE, freed with the config */
  size_t nexpose;
  /* Set in a zygote whose trees are at neutral paths (neutral.h): the
     Python prefix is at NEUTRAL_PYTHON, and its Pythons find libpython
     there only by LD_LIBRARY_PATH.  */
  bool python_neutral;
  size_t work_size, tmp_size;
  struct id_limits limits;
  struct cg_limits cg_limits;
  struct cg_host cg; /* probed by the front; empty in unprivileged mode */
};

/* What a worker needs to know about its session.  */
struct sbx_params {
  const char *session_id;
  uid_t uid;
  gid_t gid;
  const struct scf_policy *scf;
  unsigned serial;          /* how many workers the zygote forked before: picks the CPUs */
  const char *packages_dir; /* the session's installed packages on the host, or NULL */
};

/* In the spawn's middle process: join the session's cgroups (created by
   the front) and unshare the namespaces, so that the worker forked next
   is born inside all of them.  */
int sbx_prepare(const struct sbx_config *c, const struct sbx_params *p, kiln_error_t *err);

/* In the worker (PID 2 of its namespace, the child of kiln's init), with
   its fds in place: the rest of the jail, seccomp last.  */
int sbx_enter(const struct sbx_config *c, const struct sbx_params *p, kiln_error_t *err);

/* Probes the host (run by the front before it starts the zygote): fills
   C's host-dependent parts.  Returns -1 with ERR when a jail cannot be
   built here; the caller decides whether that is fatal.  */
struct kiln_config;
int sbx_probe(struct sbx_config *c, const struct kiln_config *cfg, kiln_error_t *err);

/* sbx_probe in two halves, for a caller with other work to do while a
   child tries the namespaces (a millisecond or more): the begin fills C
   and starts the child; the end waits for its verdict, which decides
   whether C may be used.  Nothing may fork in between.  */
struct sbx_pending {
  pid_t pid;
  int fd;
};
int sbx_probe_begin(struct sbx_config *c, const struct kiln_config *cfg, struct sbx_pending *p,
                    kiln_error_t *err);
int sbx_probe_end(struct sbx_pending *p, kiln_error_t *err);
void sbx_config_free(struct sbx_config *c);

/* Runs FN(C) in a forked child and returns its verdict: 0, or -1 with
   the child's message in ERR.  Probes use it so that nothing they change
   touches the caller.  */
int sbx_in_child(int (*fn)(const struct sbx_config *, kiln_error_t *), const struct sbx_config *c,
                 kiln_error_t *err);

/* `kiln doctor`: every protection, active or unavailable and why, on OUT.
   Returns 0 when a complete jail can be built on this host.  */
#include <stdio.h>
int sbx_doctor(const struct sbx_config *c, FILE *out);

/* Unprivileged kiln has no cgroups: the address-space limit of each of a
   session's processes, and a sentence stating the worst case it allows.
   Allocated.  */
#define UNPRIVILEGED_AS(c) (4 * (c)->cg_limits.memory)
char *sbx_unprivileged_bound(const struct sbx_config *c);

/* One line naming what is active, for the banner.  Allocated.  */
char *sbx_describe(const struct sbx_config *c);

/* The environment every cell starts with: NULL-terminated "NAME=value". */
extern const char *const sbx_environment[];

#endif
