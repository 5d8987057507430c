#define _GNU_SOURCE
#include "cpus.h"
#include "util.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

/* The CPUs the caller may run on, in a set sized for this host (there may
   be more than CPU_SETSIZE): allocated, with its size in *SIZE and its
   capacity in *MAX; NULL with ERR on failure.  */
static cpu_set_t *
allowed_cpus(size_t *size, int *max, kiln_error_t *err)
{
  for (*max = 1024;; *max *= 2) {
    cpu_set_t *set = CPU_ALLOC((size_t)*max);
    if (set == NULL) {
      kiln_error_make(err, ENOMEM, "allocate a CPU set");
      return NULL;
    }
    *size = CPU_ALLOC_SIZE((size_t)*max);
    if (sched_getaffinity(0, *size, set) == 0)
      return set;
    int e = errno;
    CPU_FREE(set);
    if (e != EINVAL || *max >= (1 << 20)) {
      kiln_error_make(err, e, "sched_getaffinity");
      return NULL;
    }
  }
}

int
cpu_restrict(double cpus, unsigned serial, kiln_error_t *err)
{
  if (!(cpus > 0))
    return 0;
  size_t size;
  int max;
  cpu_set_t *now = allowed_cpus(&size, &max, err);
  if (now == NULL)
    return -1;
  int have = CPU_COUNT_S(size, now);
  if (have <= 0 || cpus > have - 1) {
    CPU_FREE(now);
    return 0;
  }
  /* ceil(CPUS), now known to be below HAVE.  */
  int want = (int)cpus;
  want += want < cpus;
  int *ids = xmalloc((size_t)have * sizeof *ids);
  for (int cpu = 0, n = 0; cpu < max && n < have; cpu++)
    if (CPU_ISSET_S((size_t)cpu, size, now))
      ids[n++] = cpu;
  /* WANT consecutive allowed CPUs, starting SERIAL * WANT along and
     wrapping round: successive sessions spread over the host.  */
  unsigned first = (unsigned)(((unsigned long long)serial * (unsigned)want) % (unsigned)have);
  CPU_ZERO_S(size, now);
  for (int k = 0; k < want; k++)
    CPU_SET_S((size_t)ids[(first + (unsigned)k) % (unsigned)have], size, now);
  free(ids);
  int r = sched_setaffinity(0, size, now);
  int e = errno;
  CPU_FREE(now);
  if (r < 0)
    return kiln_error_make(err, e, "restrict the worker to %d CPUs", want);
  return 0;
}
