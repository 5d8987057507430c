/* The zygote: CPython initialised once with the preload list imported,
   forking a worker per SPAWN request.  It never runs user code.  */
#ifndef KILN_ZYGOTE_H
#define KILN_ZYGOTE_H

#include "config.h"

#include <sys/types.h>

/* Runs in the child the front forked; SOCK is its end of the zygote
   socket.  Never returns.  */
_Noreturn void zyg_main(int sock, const struct kiln_config *cfg);

#endif
