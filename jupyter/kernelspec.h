/* `kiln jupyter install`: the kernelspec that tells Jupyter how to start
   kiln as a kernel.  */
#ifndef KILN_JUP_KERNELSPEC_H
#define KILN_JUP_KERNELSPEC_H

#include "error.h"

#include <stddef.h>

/* Where a kernelspec goes, as Jupyter looks for them.  */
enum jup_spec_where {
  JUP_SPEC_SYSTEM, /* /usr/local/share/jupyter */
  JUP_SPEC_USER,   /* $JUPYTER_DATA_DIR, else $XDG_DATA_HOME/jupyter or ~/.local/share/jupyter */
  JUP_SPEC_PREFIX, /* PREFIX/share/jupyter (a virtualenv's sys.prefix, say) */
};

/* Writes kernel.json for kernel NAME under WHERE (PREFIX for
   JUP_SPEC_PREFIX): started as KILN (an absolute path) `jupyter kernel
   -f {connection_file}` followed by the NOPTS options OPTS.  Returns the
   directory written (allocated; the caller frees it), or NULL with ERR
   (a NAME Jupyter would refuse, a directory that cannot be made).  */
char *jup_kernelspec_install(enum jup_spec_where where, const char *prefix, const char *name,
                             const char *kiln, char *const *opts, size_t nopts, kiln_error_t *err);

#endif
