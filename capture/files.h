/* The session's files, under the worker's /work: listed, read and
   written by the worker itself (inside its jail) on the front's behalf,
   between cells.  Paths are relative to /work and resolved with openat2
   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, so no
   symlink, "..", or magic link planted by a cell leads anywhere else; only
   regular files are read, without blocking, up to a size cap.  */
#ifndef KILN_CAPTURE_FILES_H
#define KILN_CAPTURE_FILES_H

#include "../kernel/error.h"
#include "../kernel/frame.h"

#include <stdbool.h>
#include <stddef.h>

/* Whether PATH (LEN bytes) is acceptable as a path under /work: relative,
   no NUL, no "." or ".." or empty component, at most 4096 bytes.  An empty
   path means /work itself (allowed only where ALLOW_ROOT).  The front
   checks this before asking; the worker checks again.  */
bool files_path_ok(const char *path, size_t len, bool allow_root);

/* In the worker: serves one FRAME_FILE_* request F, building the
   FRAME_FILE_RESULT into OUT.  */
void files_serve(const struct frame *f, struct fbuf *out);

/* Packed listing entry: kind:u8 ('f' file, 'd' directory, 'l' symlink,
   'o' other) size:u64 mtime_ns:u64 path_len:u16 path.  */
#define FILES_ENTRY_HDR 19
/* Entries a listing holds at most, and how deep it goes.  */
#define FILES_MAX_ENTRIES 10000
#define FILES_MAX_DEPTH   16

#endif
