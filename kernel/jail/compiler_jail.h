/* The compile helper's jail: the same protections as a worker's where
   they apply, and a much tighter system-call policy, since the helper
   needs no file, no process and no network once CPython is up.  */
#ifndef KILN_COMPILER_JAIL_H
#define KILN_COMPILER_JAIL_H

#include "sandbox.h"

#include <linux/filter.h>

/* In the helper, with CPython initialised and everything it will use
   imported, its fds 0-2 and COMPILER_FD in place: enters the jail,
   FILTER (scf_build_compiler) last.  Any failure is fatal to the
   helper.  */
int sbx_enter_compiler(const struct sbx_config *c, const struct sock_fprog *filter,
                       kiln_error_t *err);

#endif
