#ifndef KILN_DAEMON_H
#define KILN_DAEMON_H

/* `kiln daemon`: one per user, it holds zygotes that several fronts
   share (each Jupyter kernel Jupyter launches is such a front), so that a
   new front takes its first worker from an interpreter that is already
   initialised instead of starting one.

   It speaks the zygote's own protocol (frame.h) on a unix socket, mode
   0600, to peers of its own uid only (SO_PEERCRED): a front sends its
   configuration (handoff.h) and then spawn requests, and gets the
   zygote's ready frame and workers back exactly as from a zygote of its
   own, plus a pidfd of each worker's init.  Fronts with the same
   configuration share one zygote.  The daemon owns what must be unique
   across fronts: the session uids, the cgroups and the reaping of the
   inits; a front sees its workers end through their status pipes.  It
   owns the store of each KILN_HOME its fronts use too: a front's store
   link (FRAME_STORE_OPEN) carries its writes, and it reads kiln.db
   itself (store.h).  When
   a front goes, its workers are killed; when the daemon has had no front
   for its idle time, it exits.  */

#include "error.h"

/* Where the daemon of this user and this kiln build listens:
   $XDG_RUNTIME_DIR/kiln (or /tmp/kiln-UID), a directory of the user's
   own, mode 0700, made if missing.  The name carries the build's
   identity, so a rebuilt kiln never talks to an older daemon.  Returns an
   allocated path the caller frees, or NULL with ERR.  */
char *daemon_socket_path(kiln_error_t *err);

/* Serves at SOCKET_PATH until IDLE_S seconds pass with no front
   connected, or SIGTERM.  Returns the process's exit code: 0, also when
   another daemon already serves that path.  */
int daemon_main(const char *socket_path, double idle_s);

#endif
