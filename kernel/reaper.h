/* The init of a worker's pid namespace.  It runs kiln's C only (never
   Python, never user code): it forks the worker, reaps every process the
   cells leave behind, passes the front's signals on to the worker, and
   when the worker ends reports its wait status and exits, which takes the
   whole namespace down with it.  */
#ifndef KILN_REAPER_H
#define KILN_REAPER_H

#include "worker.h"

#include <sys/types.h>

struct rpr_params {
  int mid_pidfd;   /* the middle process: wait for it to exit before arming
                      the parent-death signal */
  int front_pidfd; /* the front, to check it is still there */
  int status_fd;   /* write end of the status pipe to the front */
  struct wrk_params worker;
};

/* Never returns.  */
_Noreturn void rpr_main(const struct rpr_params *p);

#endif
