/* The worker's jail: applied between the fork and the first user
   statement, as one sequence.  Any failure is fatal to the worker.  */
#ifndef KILN_SANDBOX_H
#define KILN_SANDBOX_H

#include "error.h"

struct sbx_params {
  const char *session_id;
  const char *workdir; /* the session's directory, writable */
};

/* Locks the calling worker down.  Called in the worker after its fds are
   in place and before Python runs anything on the session's behalf.
   Returns -1 with ERR if a step fails; the caller reports it and exits.  */
int sbx_enter(const struct sbx_params *p, kiln_error_t *err);

/* One line naming the protections sbx_enter applies, for the start-up
   banner and `kiln doctor`.  Static string.  */
const char *sbx_describe(void);

#endif
