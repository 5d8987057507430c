/* Embedding glue: CPython's initialisation for the zygote, and the single
   place where a Python exception becomes a kiln error.  */
#ifndef KILN_EMBED_H
#define KILN_EMBED_H

#include "config.h"
#include "error.h"

/* Initialises CPython in this process from an isolated PyConfig with
   explicit paths (the stdlib, lib-dynload and kiln's runtime directory;
   the venv's site-packages is added by the runtime), then imports
   kiln_runtime.  Returns -1 with ERR on failure.  */
int emb_init(const struct kiln_config *cfg, kiln_error_t *err);
/* Makes emb_init find the build's Python prefix at HOME (a static
   string) instead.  */
void emb_python_home(const char *home);

/* Fetches the current Python exception, formats it ("Type: message") into
   a new error in ERR, and clears it.  Returns -1.  */
int emb_error_from_python(kiln_error_t *err, const char *context);

/* The Python version this binary embeds ("3.12.1").  */
const char *emb_python_version(void);

#endif
