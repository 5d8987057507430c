/* The compile helper: a process of its own, exec'd by the front as the
   zygote is, that compiles cells for the code cache and never runs any
   (DESIGN.md invariant 2).  */
#ifndef KILN_COMPILER_H
#define KILN_COMPILER_H

#include "handoff.h"

/* `kiln __compiler`: starts CPython, enters its jail, then answers each
   FRAME_COMPILE with a FRAME_COMPILED until the front goes away.  Never
   returns.  */
_Noreturn void cmp_exec_main(void);

#endif
