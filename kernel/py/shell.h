/* Shell commands (run_shell), run by the worker between cells as a child
   of its own: bash -c COMMAND (sh where there is no bash), inside the
   worker's jail, so that the command has every protection a cell has
   (namespaces, root, uid, rlimits, cgroups, seccomp) and sees the same
   /work.  Its output goes to the worker's stdout and stderr, which the
   front captures as it captures a cell's.

   The command runs in a process group of its own: the deadline's
   interrupt is passed on to that group, never taken by the worker, and a
   group still alive after the grace is killed by the worker itself.  A
   command, whatever it does, never ends the worker or its Python
   state.  */
#ifndef KILN_SHELL_H
#define KILN_SHELL_H

#include "frame.h"

#include <stdbool.h>

/* Serves the FRAME_SHELL F: runs its command to the end and starts the
   FRAME_SHELL_DONE in OUT (fbuf_init'd here; the caller adds the files
   the command wrote and finishes it).  Called on the worker's main
   thread, which holds the GIL; it is released while the command runs, so
   that threads a cell left behind keep running.  The caller has armed
   the interrupt for the command's number (intr_arm).  JAILED says
   whether /work is the session's directory; without the jail the worker's
   own directory stands in for it.  */
void shell_serve(const struct frame *f, bool jailed, struct fbuf *out);

#endif
