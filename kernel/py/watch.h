/* The worker's record of which files under /work a cell created or
   changed, kept with inotify instead of a walk of /work after every cell.

   The built-in module `_kiln_watch` offers two functions to
   kiln_runtime:

   * start(root) -> bool: watches ROOT and every directory beneath it on
     the same filesystem, down to the depth kiln_runtime's scan goes.
     Called once, in the jailed worker, before any user code runs.  False
     when the host's inotify limits leave no room; changes() then always
     asks for a scan.
   * changes() -> list of paths relative to ROOT (sorted, each once) that
     had an event since the last call: created, written, truncated,
     attributes changed, moved in, moved out or deleted; the caller stats
     them.  None when the caller must scan instead: on the first call, after
     the kernel's event queue overflowed, after user code closed or
     replaced the inotify fd, when more paths changed than a scan would
     report, and for good once watching failed (said once on fd 2, the
     cell's stderr).

   Directories that appear (created, moved in) get watches when the events
   are read, and their contents are listed then, since files may have been
   made in them before the watch existed.  The module keeps its state in
   statics: it serves the one worker process it runs in.  */
#ifndef KILN_PY_WATCH_H
#define KILN_PY_WATCH_H

/* Registers `_kiln_watch` with the embedded interpreter; call before it
   is initialised.  Returns PyImport_AppendInittab's result.  */
int wch_register(void);

#endif
