#ifndef KILN_LINK_H
#define KILN_LINK_H

/* The trusted processes' links to each other: kiln starting itself as a
   helper (the zygote, the compile helper, the installer, the daemon) and
   the buffered frame reading and writing every such link shares.  */

#include "frame.h"
#include "util.h"

#include <spawn.h>
#include <sys/types.h>

/* The receiving side of a link to a zygote, or to the daemon, which
   speaks the zygote's protocol: the bytes not yet a whole frame, and the
   descriptors that came with them.  A SPAWNED frame's descriptors arrive
   with its first byte and its peer sends one frame at a time, so those
   held belong to the next SPAWNED frame.  Zero-initialised is empty.  */
struct link_in {
  struct buf buf;
  int fds[FRAME_MAX_FDS];
  size_t nfds;
};
/* Reads what FD holds into L.  Returns the bytes read, 0 at EOF, or -1
   with errno (EAGAIN: nothing yet).  */
ssize_t link_in_read(int fd, struct link_in *l);
/* The next whole frame in L, as link_next_frame, with the descriptors L
   holds given to it (the caller's now) when it is a FRAME_SPAWNED.  RAW,
   when not NULL, gets the frame's bytes as they came.  */
int link_in_next(struct link_in *l, uint32_t max, struct frame *f, uint8_t **payload,
                 struct buf *raw, kiln_error_t *err);
/* Closes the descriptors L holds and drops its bytes.  */
void link_in_reset(struct link_in *l);

int link_flush(int fd, struct buf *q);
int link_next_frame(struct buf *in, uint32_t max, struct frame *f, uint8_t **payload,
                    kiln_error_t *err);
/* The kiln executable the zygote, the compile helper, the installer and
   the daemon are started from: this process's own (/proc/self/exe) in
   the kiln command (exe_self.c), the installed kiln in libkiln, whose
   process is the embedder's (exe_installed.c).  Whichever file is linked
   defines it.  The string is static, or the environment's.  */
const char *link_kiln_exe(void);
/* posix_spawn of kiln itself (link_kiln_exe) with ARGV and the file
   actions FA, without the front's signal mask (SIGCHLD and the stop
   signals blocked for its signalfd) or its ignored SIGPIPE.  Returns
   posix_spawn's result.  */
int link_exec_self(pid_t *pid, const posix_spawn_file_actions_t *fa, char *const argv[]);
/* Starts kiln itself (link_kiln_exe) as "kiln-NAME COMMAND", one end of
   a new socket pair on its fd CHILD_FD; the other end, non-blocking, in
   *SOCK and its pid in *PID.  Returns 0, or -1 with ERR.  */
int link_spawn_self(const char *name, const char *command, int child_fd, pid_t *pid, int *sock,
                    kiln_error_t *err);

#endif
