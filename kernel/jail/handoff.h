/* The configuration the front hands to the zygote it has just exec'd:
   kiln's settings and the jail as the front probed it, in the zygote's
   first frame.  The zygote is the same binary as the front, so the two
   structs travel as their bytes, with every string they point to after
   them; the front is trusted, but the frame is still checked for size
   and shape.  */
#ifndef KILN_HANDOFF_H
#define KILN_HANDOFF_H

#include "config.h"
#include "frame.h"
#include "sandbox.h"

/* How the front starts the zygote: /proc/self/exe with this internal
   command as argv[1] and its end of the zygote socket on ZYGOTE_FD.  */
#define ZYGOTE_COMMAND "__zygote"
#define ZYGOTE_FD      3
/* ... and the compile helper, with its socket on COMPILER_FD
   (seccomp_policy.h) and the same first frame.  */
#define COMPILER_COMMAND "__compiler"

/* Builds the FRAME_CONFIG for CFG (and CFG->sbx) into FB.  */
void hof_encode(const struct kiln_config *cfg, struct fbuf *fb);
/* The same as a frame of TYPE (FRAME_COMPILER_CONFIG: for the daemon).  */
void hof_encode_as(const struct kiln_config *cfg, enum frame_type type, struct fbuf *fb);

/* Fills CFG and SBX from F, with CFG->sbx = SBX.  The strings are newly
   allocated and live as long as the process.  Returns -1 with ERR when F
   is not a FRAME_CONFIG of this build.  */
int hof_decode(const struct frame *f, struct kiln_config *cfg, struct sbx_config *sbx,
               kiln_error_t *err);

#endif
