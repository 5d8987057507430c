/* The init of a worker's pid namespace.  It runs kiln's C only (never
   Python, never user code): it forks the worker, reaps every process the
   cells leave behind, passes the front's signals on to the worker, and
   when the worker ends reports its wait status and exits, which takes the
   whole namespace down with it.  */
#ifndef KILN_INIT_H
#define KILN_INIT_H

#include <linux/filter.h>
#include <stdbool.h>
#include <sys/types.h>

struct init_params {
  int mid_pidfd;   /* the middle process: wait for it to exit before arming
                      the parent-death signal */
  int front_pidfd; /* the front, to check it is still there */
  int status_fd;   /* write end of the status pipe to the front */
  int ctl;         /* the worker's control socket: where a failure to
                      fork it is reported */
  /* Who the init becomes once the worker is forked: the session's uid
     (when SWITCH_IDS, as root) with no capabilities, under FILTER (NULL
     without a jail).  */
  bool switch_ids;
  uid_t uid;
  gid_t gid;
  const struct sock_fprog *filter;
  /* Runs in the forked worker; never returns.  */
  void (*worker_main)(const void *arg) __attribute__((noreturn));
  const void *worker_arg;
};

/* Never returns.  */
_Noreturn void init_main(const struct init_params *p);

#endif
