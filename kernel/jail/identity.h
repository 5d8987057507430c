/* Who the worker is once jailed: an unprivileged uid/gid (one per session
   when kiln runs as root), no supplementary groups, no capabilities of
   any kind, no way to gain privileges, bounded resources.  */
#ifndef KILN_IDENTITY_H
#define KILN_IDENTITY_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How many session uids there are when kiln runs as root.  */
#define ID_SLOTS 60000

/* Which session uids (slots: uid_base + slot) are held.  Two live
   sessions never share a uid, and with it their per-uid limits
   (RLIMIT_NPROC, inotify): the front holds them for its own workers, the
   daemon for every front's.  Zero-initialised is all free.  */
struct id_slots {
  uint8_t used[(ID_SLOTS + 7) / 8];
  size_t next;
};

/* A free slot, now held, or -1 when every one is.  Slots are handed out
   round the range, so a slot just released is the last to come back.  */
int id_slot_take(struct id_slots *s);
/* Frees SLOT (nothing for -1).  */
void id_slot_release(struct id_slots *s, int slot);

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
