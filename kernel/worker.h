/* The worker: one per session, forked from the zygote.  It serves EXEC
   frames on its control socket until the socket closes or it is killed.  */
#ifndef KILN_WORKER_H
#define KILN_WORKER_H

#include <stddef.h>
#include <sys/types.h>

struct wrk_params {
  pid_t front_pid; /* the subreaper the worker must end up under */
  int ctl;         /* control socket to the front */
  int out, err;    /* write ends of the stdout and stderr pipes */
  const char *session_id;
  const char *workdir;
  size_t max_result;
};

/* Runs in the freshly forked worker (Python's fork state not yet
   restored); never returns.  Takes ownership of the fds in P.  */
_Noreturn void wrk_main(const struct wrk_params *p);

#endif
