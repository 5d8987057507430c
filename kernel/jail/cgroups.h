/* Per-session resource limits through cgroups: v2 where the host has a
   unified hierarchy with the controllers, v1 controllers otherwise.  The
   front creates and removes a session's groups and reads why a worker
   died; the worker's middle process only joins them.  */
#ifndef KILN_CGROUPS_H
#define KILN_CGROUPS_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cg_limits {
  size_t memory; /* bytes, including tmpfs pages the session writes */
  unsigned pids;
  double cpus; /* cores of CPU bandwidth; 0 = unlimited */
};

/* What the host offers, found once by the front.  */
struct cg_host {
  int version; /* 1 or 2, 0 when no usable cgroups */
  /* v1: one directory per controller (memory, pids, cpu), each the
     front's own group in that hierarchy; v2: DIRS[0] is the parent of
     the session groups.  NULL where a controller is missing.  */
  char *dirs[3];
  char *why; /* when version == 0: what is missing */
};

/* Inspects /proc/self/cgroup and the mounts.  Never fails: a host without
   cgroups gets version 0 and a reason.  Free with cg_host_free.  */
void cg_host_probe(struct cg_host *h, const char *tag);
void cg_host_free(struct cg_host *h);
/* A one-line description for the banner and `kiln doctor`.  Allocated.  */
char *cg_host_describe(const struct cg_host *h, const struct cg_limits *l);

/* Creates the session ID's groups with limits L.  */
int cg_session_create(const struct cg_host *h, const char *id, const struct cg_limits *l,
                      kiln_error_t *err);
/* Moves process PID into the session's groups (called in the middle
   process, before it forks the worker, so everything is born inside).  */
int cg_session_join(const struct cg_host *h, const char *id, pid_t pid, kiln_error_t *err);
/* Why the session's processes may have died: sets *OOM_KILLS to how
   many processes the memory limit killed so far (the kernel's own count,
   so a caller can tell new kills from ones it has seen), *PIDS when the
   process limit was hit.  Both are 0 on a host without cgroups.  */
void cg_session_events(const struct cg_host *h, const char *id, uint64_t *oom_kills, bool *pids);
/* The files cg_session_events reads, opened for a process that cannot
   name them (a front whose workers' cgroups are the daemon's): FDS[0]
   and FDS[1], or -1 both and a return of -1.  cg_events_at reads them
   as cg_session_events reads the files.  */
int cg_session_event_fds(const struct cg_host *h, const char *id, int fds[2]);
void cg_events_at(const int fds[2], uint64_t *oom_kills, bool *pids);
/* Removes the session's groups.  Returns 0 once they are gone, or -1
   while tasks remain (they have been sent SIGKILL: call again later).  */
int cg_session_remove(const struct cg_host *h, const char *id);

/* Session groups whose killed tasks had not all left yet: removed again
   on each cg_graveyard_retry.  Zero-initialised is empty.  */
struct cg_graveyard {
  char **ids;
  size_t n;
};
/* Removes the session ID's groups now, or keeps ID in G for later.  */
void cg_forget(const struct cg_host *h, struct cg_graveyard *g, const char *id);
/* Tries the groups in G again; those now gone leave it.  */
void cg_graveyard_retry(const struct cg_host *h, struct cg_graveyard *g);
/* Forgets G's groups (they stay where they are).  */
void cg_graveyard_free(struct cg_graveyard *g);

#endif
