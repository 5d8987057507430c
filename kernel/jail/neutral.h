/* kiln's own trees at fixed paths.  A zygote runs in a mount namespace of
   its own in which the Python prefix, the venv, kiln's runtime and the
   kiln executable are under NEUTRAL_DIR, and it is exec'd again from
   there: the paths its interpreter imports from, and so the paths every
   module, traceback, mapping and /proc/self/exe of a worker forked from
   it names, then say nothing of where kiln is installed on the host.
   The worker's jail binds those paths as they are (mounts.c).  */
#ifndef KILN_NEUTRAL_H
#define KILN_NEUTRAL_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>

#define NEUTRAL_DIR     "/opt/kiln"
#define NEUTRAL_PYTHON  NEUTRAL_DIR "/python"
#define NEUTRAL_VENV    NEUTRAL_DIR "/venv"
#define NEUTRAL_RUNTIME NEUTRAL_DIR "/runtime"
#define NEUTRAL_EXE     NEUTRAL_DIR "/bin/kiln"

struct sbx_config;

/* The host trees to show there.  */
struct neutral_trees {
  /* The Python prefix, or NULL when it is a system tree (/usr) that the
     jail shows at its own path anyway.  */
  const char *python_home;
  const char *venv;
  const char *runtime;
  /* KILN_HOME's jail directory, where workers build their roots: it
     must stay reachable, so it cannot be under /opt, which the layout
     covers.  */
  const char *state_dir;
};

/* The trees of the jail configuration C: its first three exposed trees
   are the prefix, the venv and the runtime (sbx_probe_begin).  */
void neutral_trees_of(const struct sbx_config *c, struct neutral_trees *t);

/* Moves this process into a new mount namespace (into a new user
   namespace first when USERNS, with this process's uid and gid mapped to
   themselves, as ns_unshare maps a worker's) in which /opt is a tmpfs
   holding T's trees as read-only overlays at NEUTRAL_PYTHON,
   NEUTRAL_VENV and NEUTRAL_RUNTIME, and this executable at NEUTRAL_EXE.
   The venv's bin/ and pyvenv.cfg are shown rewritten: their links and
   scripts name the neutral paths of the venv and the prefix instead of
   the host's.  The process must be single-threaded.  Returns 0, or -1
   with ERR, the process's namespaces then in any state.  */
int neutral_enter(const struct neutral_trees *t, bool userns, kiln_error_t *err);

/* neutral_enter of C's trees, for sbx_in_child: run in a child process
   that then exits, it says whether this host can have the layout (0) or
   why not (-1 with ERR), and leaves the caller as it was.  */
int neutral_check(const struct sbx_config *c, kiln_error_t *err);

#endif
