/* The front's core: the session table, the zygote and workers it talks
   to, and the limits that must hold even when a worker misbehaves.  It
   runs on the caller's event loop and never blocks on a worker.

   This is also kiln's embedding API, installed with the shared library
   libkiln as <kiln/kiln.h> beside the three headers it includes
   (pkg-config kiln; tests/embed/api/example.c is a whole program).  An
   embedder makes a configuration (config_init, then config_set for each
   option), probes the jail (front_sandbox_probe), makes a loop
   (loop_new), starts the front (front_new) and runs the loop; it frees
   them in the reverse order.

   The zygote and the compile helper are not threads of the embedder but
   processes started by exec of the kiln command, which must be of the
   same build as the library: $KILN_BIN when it is set, else the kiln
   installed with the library (BINDIR/kiln, found from where libkiln.so
   was loaded, then at the prefix it was configured with).  The kiln
   command itself always starts its own executable.  */
#ifndef KILN_FRONT_H
#define KILN_FRONT_H

#include "config.h"
#include "error.h"
#include "loop.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* C's "at least N elements" of an array parameter, which C++ lacks.  */
#ifdef __cplusplus
#define KILN_AT_LEAST(n) n
#else
#define KILN_AT_LEAST(n) static n
#endif

/* Something a cell showed: a figure or image (PNG), or a rich form of an
   object passed to display().  Borrowed, like the rest of a reply.  */
struct cell_output {
  const char *mime; /* "image/png", "text/plain", "text/html", ... */
  const char *name; /* the artifact's name, unique in the session */
  const char *uri;  /* kiln://sessions/ID/artifacts/NAME for stored images, else NULL */
  const uint8_t *data;
  size_t len;
  uint32_t width, height;     /* pixels, for images */
  const uint8_t *inline_data; /* a downscaled copy to send inline, or NULL */
  size_t inline_len;
  uint32_t inline_width, inline_height;
  /* Where the cell showed it: a byte offset into the reply's OUT (on a
     character boundary), or SIZE_MAX for after all of it.  */
  size_t out_pos;
  /* In a reply: a front_watch_display callback was given it (or the
     display it is the latest content of) while the cell ran.  */
  bool shown_live;
};

/* A cell's stdout or stderr longer than this many bytes is kept, and
   readable with front_cell_output_read, for the last 32 cells of a
   session; a shorter one is whole in every reply.  */
#define FRONT_OUTPUT_INLINE_MAX 4096

/* The mime of an output that is a file the cell wrote under /work.  */
#define FILE_MIME "application/vnd.kiln.file"

enum reply_status {
  REPLY_OK,
  REPLY_ERROR,       /* the cell raised */
  REPLY_INTERRUPTED, /* KeyboardInterrupt: deadline, cancel or the cell's own */
  REPLY_KILLED,      /* did not stop after the interrupt: worker killed */
  REPLY_CRASHED,     /* the worker died during the cell */
};

/* What a cell produced.  Every pointer is borrowed from the front and
   valid only during the callback; strings are valid UTF-8.  */
struct cell_reply {
  const char *session_id;
  enum reply_status status;
  uint64_t execution_count;
  const char *result; /* NULL when there is none */
  const char *out;
  size_t out_len;
  uint64_t out_dropped;
  const char *err;
  size_t err_len;
  uint64_t err_dropped;
  const char *err_type; /* NULL when the cell succeeded */
  const char *err_message;
  const char *err_traceback;
  int64_t err_lineno, err_offset; /* -1 when unknown */
  bool new_session;
  bool state_lost;
  const char *notice; /* NULL or a sentence for the reader */
  const struct cell_output *outputs;
  size_t noutputs;
  uint64_t outputs_dropped; /* over the worker's per-reply byte cap */
  bool out_kept, err_kept;  /* the stream is kept: front_cell_output_read */
  double duration_ms;
  /* Set for a shell command (front_run_shell), which ended with
     EXIT_CODE (-1 when a signal ended it) or by SIGNAL (0 when none
     did); SHELL_KILLED when its process group outlived the interrupt's
     grace and was killed.  A command that could not start has neither
     (EXIT_CODE -1, SIGNAL 0) and says why in ERR_MESSAGE.  */
  bool shell;
  int exit_code;
  int signal;
  bool shell_killed;
};

typedef void (*front_reply_cb)(void *ctx, const struct cell_reply *r);

/* What the zygote reports once it is ready.  Borrowed: valid only during
   the ready callback.  */
struct front_info {
  const char *python_version;
  const char *preloaded;      /* comma-separated module names */
  const char *preload_failed; /* "name: reason; ..." */
  /* What the workers are jailed by, as `kiln doctor` words it (the
     daemon's cgroups, for a front on the daemon); NULL if not said.  */
  const char *protections;
};
/* Called once the zygote is ready (INFO) or could not start (ERR).  */
typedef void (*front_ready_cb)(void *ctx, const struct front_info *info, kiln_error_t err);

struct session_info {
  char session_id[40];
  /* "starting", "idle", "running", "lost", "hibernating", "hibernated", "restoring" */
  const char *state;
  pid_t pid; /* 0 when no worker */
  uint64_t execution_count;
  size_t queued;
  time_t created_at, last_used_at;
};

struct front;

/* Decides how this host jails workers, as the kiln command does before
   it starts anything, and hangs the result on CFG->sbx (allocated; freed
   by front_sandbox_free), which front_new needs.  The jail borrows
   CFG's paths: options are set before the probe.  With
   CFG->insecure_no_sandbox (the insecure-no-sandbox option) workers run
   unjailed and every reply says so.  Returns -1 with ERR when the jail
   cannot be built here and CFG does not allow running without it.  */
int front_sandbox_probe(struct kiln_config *cfg, kiln_error_t *err);

/* Frees what front_sandbox_probe hung on CFG (after front_free) and sets
   CFG->sbx to NULL; safe when there is none.  */
void front_sandbox_free(struct kiln_config *cfg);

/* Starts the zygote and watches everything on LOOP (the caller must not
   have started threads: see below).  The front keeps pointers to CFG and
   LOOP, which must outlive it.  It makes the process a child subreaper,
   ignores SIGPIPE, and blocks SIGCHLD, SIGTERM, SIGINT and SIGHUP to
   take them by signalfd on LOOP, which sees a signal only when every
   thread blocks it (threads started later inherit the mask): SIGCHLD
   reaps its processes, the others stop the loop unless front_on_hangup
   or front_on_interrupt say otherwise.  Returns NULL with ERR.  */
struct front *front_new(const struct kiln_config *cfg, struct loop *loop, front_ready_cb ready,
                        void *ctx, kiln_error_t *err);

/* Queues CODE (LEN bytes, copied) to run in SESSION_ID, or in a new
   session when SESSION_ID is NULL.  TIMEOUT_S <= 0 means the default.  CB
   is called exactly once with the reply, unless the cell is cancelled
   first.  Returns a handle for front_cancel (> 0), or -1 with ERR when
   the call is refused (unknown session, too many sessions, queue full,
   code too large); then CB is never called.  */
int64_t front_run_cell(struct front *f, const char *session_id, const char *code, size_t len,
                       double timeout_s, front_reply_cb cb, void *ctx, kiln_error_t *err);

/* Opens a new session as a call without a session id would (a spare
   if one is ready), running nothing, and starts its worker; its id goes
   to ID (NUL-terminated).  Cells queued for it run once the worker is
   up.  Returns 0, or -1 with ERR at the session limits.  */
int front_open_session(struct front *f, char id[KILN_AT_LEAST(40)], kiln_error_t *err);

/* Queues the shell command COMMAND (LEN bytes, copied) to run as
   `bash -c COMMAND` (sh without bash) in SESSION_ID's jail, or in a new
   session when SESSION_ID is NULL, in WORKDIR (a relative path under
   /work; NULL or "" for /work itself), between the session's cells and
   in the order it was asked.  It takes the session's next execution
   number, so that its output is kept as a cell's is.  The rest is as
   front_run_cell: TIMEOUT_S, CB, the handle for front_cancel and
   front_watch_output, and the refusals (-1 with ERR; a WORKDIR with
   '..', '.', empty parts or a leading '/' among them).  */
int64_t front_run_shell(struct front *f, const char *session_id, const char *command, size_t len,
                        const char *workdir, double timeout_s, front_reply_cb cb, void *ctx,
                        kiln_error_t *err);

/* Output as a running cell writes it: STREAM 1 is stdout, 2 stderr;
   DATA (LEN > 0 bytes, borrowed) is valid UTF-8 (a character a read cut
   in two waits for its end); SKIPPED bytes came before DATA and were
   not passed on, past the MAX_BYTES a call may carry.  */
typedef void (*front_output_cb)(void *ctx, int stream, const char *data, size_t len,
                                uint64_t skipped);

/* Passes the output of cell HANDLE to CB (with CTX) as it comes, at most
   one call per stream every INTERVAL_MS, each with at most MAX_BYTES:
   what comes faster is coalesced, and past MAX_BYTES the oldest is
   skipped (the reply still carries it, within its caps).  Everything is
   passed on before the reply's callback.  Returns -1 when HANDLE is not
   a queued or running cell.  */
int front_watch_output(struct front *f, int64_t handle, int interval_ms, size_t max_bytes,
                       front_output_cb cb, void *ctx);

/* A running cell called input() with PROMPT (borrowed, valid UTF-8);
   PASSWORD when it was getpass.getpass, whose answer is not to be shown.
   The answer goes back through front_input_reply.  */
typedef void (*front_input_cb)(void *ctx, const char *prompt, bool password);

/* Lets cell HANDLE's input() ask CB (with CTX) for its lines, as a
   notebook's stdin channel does; a cell nobody watches so gets EOFError
   from input(), saying it has no stdin.  Returns -1 when HANDLE is not a
   queued or running cell.  */
int front_watch_input(struct front *f, int64_t handle, front_input_cb cb, void *ctx);

/* Answers the input() cell HANDLE waits in: TEXT (LEN bytes, copied) is
   what it returns, without the newline.  Returns -1 with ERR when HANDLE
   is not waiting for input (it ended, or was interrupted), or TEXT is
   over --max-result bytes.  */
int front_input_reply(struct front *f, int64_t handle, const char *text, size_t len,
                      kiln_error_t *err);

/* What a running cell did to its displays, as a notebook shows it at
   once: showed an object (display(), a figure's show()), gave a display
   it named (display_id) new content, or cleared its output
   (clear_output).  */
enum front_display_kind {
  FRONT_DISPLAY_SHOW,
  FRONT_DISPLAY_UPDATE,
  FRONT_DISPLAY_CLEAR,
};

/* One such thing.  Borrowed, valid only during the callback.  OUTPUTS
   are the forms of one object, at most one per mime: their NAME is ""
   and URI NULL (images become artifacts when the reply carries them),
   OUT_POS SIZE_MAX; text forms are valid UTF-8.  */
struct front_display {
  enum front_display_kind kind;
  const char *display_id; /* NULL when none (always set for an update); valid UTF-8 */
  bool wait;              /* a clear: clear_output(wait=True), done when the next output comes */
  const struct cell_output *outputs; /* none for a clear */
  size_t noutputs;
};
typedef void (*front_display_cb)(void *ctx, const struct front_display *d);

/* Passes what cell HANDLE shows, updates and clears to CB (with CTX) as
   it happens: the output printed before it (front_watch_output) is
   passed on first, what is printed after it later.  The cell's caps on
   outputs (count and bytes) hold for these too, updates' bytes
   counted: past them nothing more is passed on, and what the cell shows
   goes in the reply only.  The reply's outputs say which were passed on
   (SHOWN_LIVE); they hold each display's latest content, in its place,
   and nothing the cell showed before its last clear_output.  Returns -1
   when HANDLE is not a queued or running cell.  */
int front_watch_display(struct front *f, int64_t handle, front_display_cb cb, void *ctx);

/* What a file operation does: list a directory, read a file, write one
   (creating its parents), read part of a file whatever its size, make a
   directory (and its parents; one that exists already is fine).  */
enum front_file_op {
  FRONT_FILE_LIST,
  FRONT_FILE_READ,
  FRONT_FILE_WRITE,
  FRONT_FILE_READ_PART,
  FRONT_FILE_MKDIR,
};

/* One entry of a listing.  */
struct file_entry {
  char kind; /* 'f' file, 'd' directory, 'l' symlink, 'o' other */
  uint64_t size;
  int64_t mtime_ns;
  const char *path; /* relative to /work, valid UTF-8, NUL-terminated */
};

/* The answer to a file operation: STATUS 0 or an errno with MESSAGE.
   Borrowed for the duration of the callback.  */
struct file_reply {
  const char *session_id;
  int status;
  const char *message;
  const uint8_t *data; /* FRONT_FILE_READ, FRONT_FILE_READ_PART */
  size_t len;
  uint64_t size;                    /* reads: the whole file's size when it was read */
  const struct file_entry *entries; /* FRONT_FILE_LIST */
  size_t nentries;
  bool truncated;   /* the listing stopped at a limit */
  bool new_session; /* the operation created its session */
};
typedef void (*front_file_cb)(void *ctx, const struct file_reply *r);

/* Queues a file operation OP on PATH (PATH_LEN bytes) under the
   session's /work, served by its worker between cells.  DATA (LEN bytes,
   copied) is what a write writes; MAX_BYTES bounds a read.  A write or a
   mkdir with SESSION_ID NULL runs in a new session, made as
   front_run_cell makes one (the reply gives its id).  CB is called
   exactly once unless the call is refused (-1 with ERR); a refused call
   makes no session.  */
int64_t front_file_op(struct front *f, const char *session_id, enum front_file_op op,
                      const char *path, size_t path_len, const uint8_t *data, size_t len,
                      uint64_t max_bytes, front_file_cb cb, void *ctx, kiln_error_t *err);

/* As front_file_op, for files larger than one request: FRONT_FILE_READ_PART
   reads at most MAX_BYTES from OFFSET, and a FRONT_FILE_WRITE with OFFSET
   above 0 writes DATA at OFFSET of the existing file, without truncating
   or creating it.  OFFSET must be 0 for every other operation.  */
int64_t front_file_op_at(struct front *f, const char *session_id, enum front_file_op op,
                         const char *path, size_t path_len, uint64_t offset, const uint8_t *data,
                         size_t len, uint64_t max_bytes, front_file_cb cb, void *ctx,
                         kiln_error_t *err);

/* What front_introspect asks of a session's interpreter.  Each answer
   is a JSON object (cursor positions count characters, not bytes):
   FRONT_COMPLETE   {"matches": [...], "cursor_start": N, "cursor_end": N}:
                    names that complete the dotted word before CURSOR,
                    from the session's live names (rlcompleter);
   FRONT_INSPECT    {"found": true|false, "name": "...", "text": "..."}:
                    the object named at CURSOR, its type, signature and
                    docstring;
   FRONT_IS_COMPLETE {"status": "complete"|"incomplete"|"invalid",
                    "indent": "..."}: whether CODE is a whole cell, as
                    IPython's console decides (codeop, and an open
                    indented block is incomplete), and the next line's
                    indent when it is not;
   FRONT_EVALUATE   CODE is a JSON object of expressions by name (a
                    Jupyter execute_request's user_expressions); the
                    answer has, by the same names, {"status": "ok",
                    "data": {"text/plain": repr}, "metadata": {}} or
                    {"status": "error", "ename", "evalue", "traceback":
                    []}.  Evaluated in the session's globals: no cell
                    number, no history.  Under the cell deadline
                    (--timeout) and interrupted as a cell is; CURSOR is
                    unused.
   Each runs the session's own code (a property, an expression), so
   each has a deadline: an interrupt at it, and the worker killed (the
   session lost) if that does not stop it within --grace.  */
enum front_introspect_op {
  FRONT_COMPLETE = 1,
  FRONT_INSPECT = 2,
  FRONT_IS_COMPLETE = 3,
  FRONT_EVALUATE = 4,
};

/* Asks SESSION_ID's interpreter (which must exist) about CODE (LEN
   bytes, copied) with the cursor at character CURSOR (past the end is
   the end), between its cells and in the order asked, as a file
   operation is.  CB gets a file_reply whose DATA is the JSON answer
   (STATUS 0), or STATUS an errno and MESSAGE.  Returns the handle, or
   -1 with ERR when refused (unknown session, queue full, CODE over the
   size of one cell).  */
int64_t front_introspect(struct front *f, const char *session_id, enum front_introspect_op op,
                         const char *code, size_t len, uint64_t cursor, front_file_cb cb, void *ctx,
                         kiln_error_t *err);

/* The outcome of an install_packages request.  Borrowed: valid only
   during the callback.  */
struct install_reply {
  const char *session_id;
  bool ok;
  const char *message;   /* why it failed, when !OK */
  const char *log;       /* pip's output (its end), when pip failed; else NULL */
  const char *installed; /* "name version, ..." of what is now installed, when OK */
  bool cached;           /* linked from an earlier install of the same pins, without pip */
  double duration_ms;
};
typedef void (*front_install_cb)(void *ctx, const struct install_reply *r);

/* Installs the wheels SPECS (N requirements: name, [extras], version
   specifiers) for SESSION_ID, which must exist; its cells can import
   them from the next cell on.  Requests run one at a time, in order.
   CB is called exactly once unless the call is refused (-1 with ERR:
   an unknown session, a malformed requirement, a name outside
   --allow-packages) or cancelled (front_cancel).  */
int64_t front_install_packages(struct front *f, const char *session_id, const char *const *specs,
                               size_t n, front_install_cb cb, void *ctx, kiln_error_t *err);

/* "name version,name version,..." of every package in the sandbox's venv,
   by name, as read at start-up (borrowed from F).  */
const char *front_packages(const struct front *f);

/* Forgets HANDLE's callback: a queued cell is dropped, a running one is
   interrupted.  Unknown handles are ignored.  */
void front_cancel(struct front *f, int64_t handle);

/* Interrupts cell HANDLE if it is running, as its deadline would
   (SIGINT, so KeyboardInterrupt; SIGKILL if it has not stopped after the
   grace), but keeps its callback: the reply says REPLY_INTERRUPTED, or
   REPLY_KILLED with the state lost.  Returns -1 when HANDLE is not the
   running cell of a session (a queued one is left alone).  */
int front_interrupt(struct front *f, int64_t handle);

/* Closes a session: its worker is killed, queued cells are answered as
   errors.  Returns -1 with ERR when the id is unknown.  */
int front_close_session(struct front *f, const char *session_id, kiln_error_t *err);

/* The bytes of artifact NAME of session SESSION_ID (allocated, the caller
   frees them; their length in *LEN), or NULL with ERR when either is
   unknown or the image cannot be read.  *MIME gets its type (static).  */
uint8_t *front_artifact_read(struct front *f, const char *session_id, const char *name,
                             const char **mime, size_t *len, kiln_error_t *err);

/* The kept STREAM (1 stdout, 2 stderr) of cell CELL of SESSION_ID
   (allocated and NUL-terminated, the caller frees it; its length in
   *LEN), or NULL with ERR when it was not kept or is gone.  */
char *front_cell_output_read(struct front *f, const char *session_id, uint64_t cell, int stream,
                             size_t *len, kiln_error_t *err);

/* Calls FN for every stored artifact of every session, newest session
   first.  */
void front_each_artifact(struct front *f,
                         void (*fn)(void *ctx, const char *session_id, const char *name,
                                    const char *mime, size_t size, uint32_t width, uint32_t height),
                         void *ctx);

/* Returns a snapshot of the session table (allocated, the caller frees
   it) and its length in *N.  */
struct session_info *front_list_sessions(struct front *f, size_t *n);

/* One executed cell, as the history keeps it.  Borrowed: valid only
   during the callback.  */
struct history_entry {
  int64_t id; /* increasing; the cursor of the next page is the last id shown */
  const char *session_id;
  uint64_t execution_count;
  const char *kind; /* "python" (a cell) or "shell" (a command) */
  const char *code; /* the cell's source or the command, CODE_LEN bytes */
  size_t code_len;
  int64_t started_ms; /* Unix time, milliseconds */
  double duration_ms;
  /* ok, error, interrupted, killed, crashed, cancelled or closed */
  const char *status;
  const char *error_type; /* NULL unless it raised (or was interrupted) */
  uint64_t stdout_bytes, stderr_bytes;
  const char *artifacts; /* names of the images it kept, comma-separated */
};
typedef void (*front_history_cb)(void *ctx, const struct history_entry *e);

/* Calls CB for at most LIMIT cells of SESSION_ID, newest first, below
   the cursor BEFORE (0: from the newest).  The session need not be open:
   the history outlives it, and the server.  Returns the cursor of the
   next page (0 when this was the last), or -1 with ERR.  */
int64_t front_history(struct front *f, const char *session_id, int64_t before, size_t limit,
                      front_history_cb cb, void *ctx, kiln_error_t *err);

/* Makes SIGHUP call FN (CTX) (a server reloading its credentials)
   rather than stop the loop, as it does by default.  */
void front_on_hangup(struct front *f, void (*fn)(void *ctx), void *ctx);

/* Makes SIGINT call FN (CTX) rather than stop the loop, as it does by
   default (a Jupyter kernel: SIGINT interrupts the running cell).  */
void front_on_interrupt(struct front *f, void (*fn)(void *ctx), void *ctx);

/* Observations in seconds, counted as Prometheus counts them: LE[i] is
   how many were at most BOUNDS[i], so the counts are cumulative and never
   decrease with i; COUNT is the +Inf bucket.  A plain value that owns no
   memory: copying it copies it whole.  */
#define HISTOGRAM_MAX_BOUNDS 16
struct histogram {
  size_t nbounds;
  double bounds[HISTOGRAM_MAX_BOUNDS]; /* increasing and finite */
  uint64_t le[HISTOGRAM_MAX_BOUNDS];
  uint64_t count;
  double sum;
};

/* How a cell front_run_cell accepted ended; each ends in exactly one.  */
enum front_cell_outcome {
  FRONT_CELL_OK,    /* ran to its end, or called exit(0) */
  FRONT_CELL_ERROR, /* raised */
  /* KeyboardInterrupt: nearly always the SIGINT at its deadline, but a
     cell that raises it itself counts here too; the state is kept.  */
  FRONT_CELL_INTERRUPTED,
  FRONT_CELL_KILLED,  /* did not stop within the grace after its deadline's SIGINT: SIGKILL */
  FRONT_CELL_CRASHED, /* its worker died: a signal, an exit, the memory limit, or stopped by
                         the front for breaking the protocol */
  /* front_cancel: dropped before it ran, or stopped by the interrupt (or
     the kill after it) that the cancel sent.  A cell that ended some
     other way before the interrupt landed counts as that way.  */
  FRONT_CELL_CANCELLED,
  FRONT_CELL_CLOSED,      /* its session was closed before or while it ran */
  FRONT_CELL_NOT_STARTED, /* no worker could be started for its session */
  FRONT_CELL_OUTCOMES,
};

/* How an install_packages request ended.  */
enum front_install_outcome {
  FRONT_INSTALL_INSTALLED, /* pip ran and the packages are the session's */
  FRONT_INSTALL_CACHED,    /* linked from an earlier install of the same pins, without pip */
  FRONT_INSTALL_FAILED,    /* refused after it was queued, pip failed, timed out, or the
                              session closed under it */
  FRONT_INSTALL_CANCELLED, /* front_cancel */
  FRONT_INSTALL_OUTCOMES,
};

/* What the front has counted, for an operator's dashboard.  Gauges say
   what holds now; totals count since front_new.  */
struct front_metrics {
  uint64_t sessions_live;       /* open sessions whose worker is alive or starting */
  uint64_t sessions_lost;       /* open sessions whose worker is gone; the next call starts one */
  uint64_t sessions_hibernated; /* snapshotted, no process: the next call restores them */
  uint64_t spares;              /* sessions made ahead of demand (not in sessions_live) */
  uint64_t sessions_created;    /* total sessions opened for callers, spares taken included */
  uint64_t cells[FRONT_CELL_OUTCOMES];    /* total, by outcome */
  uint64_t commands[FRONT_CELL_OUTCOMES]; /* shell commands (front_run_shell), the same way */
  uint64_t installs[FRONT_INSTALL_OUTCOMES];
  /* Cells that reached a worker, from sending them to their reply
     (a killed cell's includes the grace period).  */
  struct histogram cell_seconds;
  /* Workers, spares' included, from first asking the zygote for one to
     its READY: a zygote restart in between is part of the wait.  */
  struct histogram spawn_seconds;
  /* Processes of any session that the session's memory limit killed, as
     the kernel counts them in the session's cgroup.  Without cgroups the
     front cannot tell an OOM kill from any other SIGKILL, and this stays
     0.  */
  uint64_t oom_kills;
  /* Cells sent with the cache's code, and cells their workers compiled
     (no entry, or the compile helper not ready).  */
  uint64_t code_cache_hits, code_cache_misses;
  /* Images kept for every session on disk, those still being written
     included: what --max-artifacts-size bounds.  */
  uint64_t artifact_bytes;
};

/* Fills *OUT (the caller's; nothing is allocated, nothing kept) with
   what F has counted.  Cheap enough to call on every scrape: one walk of
   the session table.  */
void front_metrics(struct front *f, struct front_metrics *out);

/* Starts snapshotting every session that can be (idle, its worker
   ready: kiln serve stopping), and makes the loop stop once none is
   still writing its snapshot, or after TIMEOUT_S.  Returns how many
   started; with 0 the loop is left alone.  */
size_t front_hibernate_all(struct front *f, double timeout_s);

/* Kills every worker and the zygote and waits (bounded) until no child
   process is left, then frees F.  */
void front_free(struct front *f);

#ifdef __cplusplus
}
#endif

#endif
