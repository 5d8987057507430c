/* The zygote: CPython initialised once with the preload list imported,
   forking a worker per SPAWN request.  It never runs user code.  */
#ifndef KILN_ZYGOTE_H
#define KILN_ZYGOTE_H

/* `kiln __zygote`, exec'd by the front (handoff.h): reads the
   configuration from ZYGOTE_FD, starts CPython, and serves the front
   until it goes away.  Never returns.  */
_Noreturn void zyg_exec_main(void);

#endif
