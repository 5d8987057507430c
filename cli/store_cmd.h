#ifndef KILN_STORE_CMD_H
#define KILN_STORE_CMD_H

#include "config.h"

/* Runs `kiln history [SESSION]` (ARG the session or NULL for all) or
   `kiln cache stats|clear` (ARG which) against CFG's KILN_HOME.  Returns
   the exit status.  */
int store_cmd_main(const char *cmd, const struct kiln_config *cfg, const char *arg);

#endif
