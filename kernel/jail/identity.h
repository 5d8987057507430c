/* Who the worker is once jailed: an unprivileged uid/gid (one per session
   when kiln runs as root), no supplementary groups, no capabilities of
   any kind, no way to gain privileges, bounded resources.  */
#ifndef KILN_IDENTITY_H
#define KILN_IDENTITY_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct id_limits {
  unsigned nproc;       /* RLIMIT_NPROC: per uid, a backstop to pids.max */
  unsigned nofile;      /* RLIMIT_NOFILE */
  size_t fsize;         /* RLIMIT_FSIZE, bytes */
  unsigned cpu_s;       /* RLIMIT_CPU, seconds of CPU per process */
  size_t address_space; /* RLIMIT_AS, bytes; 0 = none */
};

/* Sets the resource limits.  CORE is always 0.  */
int id_set_rlimits(const struct id_limits *l, kiln_error_t *err);

/* Becomes UID/GID with no groups (when SWITCH is set: as root; in a user
   namespace the ids stay the caller's own), then empties every
   capability set: bounding, ambient, inheritable, permitted, effective.  */
int id_drop_privileges(bool switch_ids, uid_t uid, gid_t gid, kiln_error_t *err);

#endif
