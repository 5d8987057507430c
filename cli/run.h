/* `kiln run`: a script in a fresh session, its arguments in sys.argv,
   and with --workdir a directory copied into the session's /work before
   it runs (and with --keep, /work copied back out after).  */
#ifndef KILN_CLI_RUN_H
#define KILN_CLI_RUN_H

#include "config.h"
#include "error.h"
#include "kiln.h"
#include "loop.h"

#include <stdbool.h>

struct run_opts {
  const char *script;  /* a path, or "-" for standard input */
  char *const *args;   /* the script's arguments, after its name */
  int nargs;           /* how many */
  const char *workdir; /* NULL: /work starts empty */
  bool keep;           /* copy /work back into WORKDIR afterwards */
};

/* Exit statuses of kiln run besides the script's own.  */
#define RUN_EXIT_USAGE   2  /* the script or --workdir could not be read or copied in */
#define RUN_EXIT_CRASHED 70 /* the worker died during the script */
#define RUN_EXIT_KEEP    74 /* --keep could not copy everything back */

struct run;

/* Reads the script and lists --workdir, before anything else is done:
   a run that cannot start leaves nothing behind (no session directory
   under KILN_HOME).  O's strings and CFG must outlive the run.  Returns
   the run (freed with run_free), or NULL with ERR.  */
struct run *run_prepare(const struct kiln_config *cfg, const struct run_opts *o, kiln_error_t *err);

/* Starts the run on F; the run stops LOOP when it is over.  */
void run_start(struct run *r, struct front *f, struct loop *loop);

/* The exit status, once LOOP has stopped; -1 if the run never ended
   (the front could not start).  */
int run_status(const struct run *r);

void run_free(struct run *r);

#endif
