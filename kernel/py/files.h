/* The session's files, under the worker's /work: listed, read and
   written (whole, or in parts for files larger than one frame), and
   directories made, by the worker itself (inside its jail) on the
   front's behalf, between cells.  Paths are relative to /work and resolved with openat2
   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, so no
   symlink, "..", or magic link planted by a cell leads anywhere else; only
   regular files are read, without blocking, up to a size cap.  */
#ifndef KILN_FILES_H
#define KILN_FILES_H

#include "frame.h"
#include "wire_limits.h"

#include <stdbool.h>
#include <stddef.h>

/* In the worker: serves one FRAME_FILE_* request F, building the
   FRAME_FILE_RESULT into OUT.  */
void files_serve(const struct frame *f, const struct kiln_limits *lim, struct fbuf *out);

#endif
