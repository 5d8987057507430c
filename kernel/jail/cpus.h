/* The CPUs a session's processes may run on.  The session's share of CPU
   time is the cgroup's quota (--cpus, cgroups.c); this makes what a
   program sees agree with it: sched_getaffinity(2), nproc, and the
   runtime's os.cpu_count() all count ceil(--cpus) CPUs, so that pools
   sized by them do not start a worker per host core.  */
#ifndef KILN_CPUS_H
#define KILN_CPUS_H

#include "error.h"

/* Restricts the calling process (and so all it starts) to ceil(CPUS) of
   the CPUs it may run on now, taken in turn from the one SERIAL selects,
   so that successive sessions land on different CPUs.  CPUS <= 0, or at
   least as many as it has, changes nothing.  */
int cpu_restrict(double cpus, unsigned serial, kiln_error_t *err);

#endif
