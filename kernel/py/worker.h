/* The worker: one per session, forked from the zygote.  It serves EXEC
   frames on its control socket until the socket closes or it is killed.  */
#ifndef KILN_WORKER_H
#define KILN_WORKER_H

#include <stddef.h>
#include <sys/types.h>

struct kiln_limits;
struct sbx_config;
struct scf_policy;

struct wrk_params {
  int ctl;      /* control socket to the front */
  int out, err; /* write ends of the stdout and stderr pipes */
  const char *session_id;
  uid_t uid; /* the session's identity once jailed */
  gid_t gid;
  const struct kiln_limits *limits;
  size_t max_image_side;
  const struct sbx_config *sbx;
  const struct scf_policy *scf;
  unsigned serial;          /* workers the zygote forked before this one */
  const char *packages_dir; /* see struct sbx_params */
};

/* Runs in the freshly forked worker (Python's fork state not yet
   restored); never returns.  Takes ownership of the fds in P.  */
_Noreturn void wrk_main(const struct wrk_params *p);

#endif
