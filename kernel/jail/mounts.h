/* The worker's filesystem: a new root holding read-only bind mounts of
   what Python and its packages need, a writable /work, small /tmp and
   /dev/shm, a fresh /proc and a minimal /dev.  Nothing else of the host
   is visible after pivot_root.  */
#ifndef KILN_MOUNTS_H
#define KILN_MOUNTS_H

#include "error.h"

#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>

struct mnt_plan {
  const char *root_dir;      /* an empty host directory to build the root on */
  const char *const *expose; /* trees shown read-only at the same path (neutral.h) */
  size_t nexpose;
  size_t work_size, tmp_size; /* bytes */
  uid_t uid;                  /* owner of /work */
  gid_t gid;
  const char *hostname;
  /* A host directory shown at PACKAGES_PATH (a session's installed
     packages, read-only; the installer's target, writable), or NULL.  */
  const char *packages_dir;
  bool packages_rw;
};

/* Where a session sees the packages installed for it.  */
#define PACKAGES_PATH "/opt/packages"

/* Whether PATH is in one of the system trees every jail shows (/usr...).  */
bool mnt_system_path(const char *path);

/* Builds the new root from PLAN and pivots into it; the old root is
   detached.  Afterwards the cwd is /work.  Runs in the worker's own mount
   namespace with privileges (root, or a user namespace's).  */
int mnt_build_root(const struct mnt_plan *plan, kiln_error_t *err);

#endif
