/* The front's insides, shared by its files and by nothing else: the
   session table, the request queue, the links to the zygote and to each
   worker.  Everything here runs on the front's one event loop.  */
#ifndef KILN_FRONT_INTERNAL_H
#define KILN_FRONT_INTERNAL_H

#include "cgroups.h"
#include "frame.h"
#include "artifact_writer.h"
#include "kiln.h"
#include "link.h"
#include "wire_limits.h"
#include "output.h"
#include "sandbox.h"
#include "store.h"
#include "util.h"

#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* The largest frame a worker may send: a reply carries at most the
   result (capped by the worker, but the front does not trust that) and a
   traceback.  Anything bigger is a lying worker.  */
#define ZYGOTE_MAX_FRAME (1u << 20)
/* The front's open files per worker (control socket, two output pipes,
   the status pipe), and those it keeps for everything else.  */
#define FDS_PER_WORKER 4
/* In each session directory: the instance of the front that owns it.  */
#define OWNER_FILE   ".owner"
#define FDS_RESERVED 64
/* How long a worker may leave a frame half sent before it is killed.  */
#define FRAME_STALL_NS (5 * 1000000000LL)
/* Output bytes read from one pipe per wakeup, so that a flooding worker
   cannot starve the others.  */
#define READ_CHUNK      (64u << 10)
#define READS_PER_EVENT 8
/* From EOF on a worker's control socket to killing it, if its init has
   not exited by itself by then.  */
#define EOF_GRACE_NS (500 * 1000000LL)
/* Consecutive zygote deaths after which the sessions waiting for a
   worker are failed rather than kept waiting, and the longest wait
   between restarts.  */
#define ZYGOTE_MAX_RESTARTS   5
#define ZYGOTE_MAX_BACKOFF_NS (10 * 1000000000LL)

enum session_state {
  S_STARTING,
  S_IDLE,
  S_RUNNING,
  S_LOST,
  S_HIBERNATING, /* its worker is writing the snapshot */
  S_HIBERNATED,  /* no worker: the next request restores it */
  S_RESTORING,   /* a new worker is loading the snapshot */
};

static const char *const state_names[]
    = { "starting", "idle", "running", "lost", "hibernating", "hibernated", "restoring" };

/* Anything a session's worker is asked to do, queued in the order it
   was asked: a cell of code, or a file operation served between cells.
   Every request enters through session_enqueue and leaves through
   request_answer, which calls its callback at most once.  */
enum request_kind {
  REQ_CELL,
  REQ_FILE,
  REQ_SHELL, /* a shell command (shell.c): its command is u.cell's code */
};

/* A caller watching a cell's output as it comes (front_watch_output):
   what is not yet passed on, per stream, and when it last was.  */
struct watch {
  front_output_cb cb;
  void *ctx;
  int64_t interval_ns, last_ns;
  size_t max_bytes;
  struct buf pend[2];  /* stdout, stderr */
  uint64_t skipped[2]; /* bytes dropped from the front of PEND */
};

/* FRAME_MARKs a cell may send (the worker sends at most as many).  */
#define MAX_MARKS 4096

/* A place in a running cell's stdout (FRAME_MARK, or a FRAME_DISPLAY
   that shows something).  */
struct cell_mark {
  uint64_t at; /* the stdout bytes received by then */
  bool live;   /* what was shown there was passed to the display watcher */
};

struct request {
  struct request *next;
  enum request_kind kind;
  int64_t handle;
  double timeout_s;
  bool new_session; /* the request created its session */
  bool cancelled;   /* the caller no longer wants the answer */
  void *ctx;
  union {
    struct {
      char *code;
      size_t len;
      front_reply_cb cb;
      struct watch *watch;     /* NULL unless watched */
      front_input_cb input_cb; /* front_watch_input; NULL: input() has no stdin */
      void *input_ctx;
      bool input_pending; /* its input() waits for front_input_reply */
      /* The cell's places, in the order it marked them.  */
      struct cell_mark *marks;
      size_t nmarks;
      front_display_cb display_cb; /* front_watch_display; NULL: displays go in the reply only */
      void *display_ctx;
      /* Displays passed on, and their bytes (updates' included), held to
         the cell's output caps.  */
      size_t live_shows, live_bytes;
      /* The cache missed it: compile it for the cache after the reply.  */
      bool cache_miss;
      uint8_t key[STORE_KEY_BYTES];
      int64_t started_wall_ms; /* for its history row */
      char *workdir;           /* REQ_SHELL: its directory under /work, "" for /work */
    } cell;
    struct {
      enum front_file_op op;
      char *path;
      uint8_t *data; /* what a write writes */
      size_t len;
      uint64_t offset;    /* where a part read or write starts */
      uint64_t max_bytes; /* the most a read returns */
      front_file_cb cb;
      /* An introspection (front_introspect) rides as a read: PATH is
         its code, OFFSET its cursor.  0 for a file operation.  */
      enum front_introspect_op introspect;
    } file;
  } u;
};

/* A worker asked of the zygote for session S (NULL once S is closed):
   what it was given, held until a worker takes it over or the request
   is given up.  */
struct spawn_req {
  struct session *s;
  char cg[64];      /* its cgroups' name, made on first sending */
  bool cg_made;     /* the cgroups exist and must be removed */
  int uid_slot;     /* -1 until assigned */
  int64_t asked_ns; /* when SPAWN was first sent; 0 until then */
};

struct worker {
  struct worker *next; /* in front->workers */
  struct front *front;
  struct session *session; /* NULL once detached */
  pid_t pid;               /* the init of the worker's pid namespace */
  int ctl, out, err;
  int status; /* the init writes the worker's wait status here */
  /* A worker from the daemon: its init is the daemon's child, not the
     front's, so its end is read from STATUS and signals go through this
     pidfd (a bare pid could name another process by then).  -1 for the
     front's own workers, and for one already gone when it arrived.  */
  int pidfd;
  char cg[64]; /* its cgroups' name: the session id and a spawn serial */
  bool cg_made;
  /* A worker from the daemon: its cgroups' counter files, or -1 (see
     worker_cg_events).  */
  int cg_events[2];
  int uid_slot; /* released when it is freed */
  bool oom_told, pids_told;
  uint64_t oom_counted; /* the cgroup's OOM kills already in the front's metrics */
  int64_t asked_ns;     /* when the zygote was asked for it (spawn_req) */
  struct buf in, outq;
  struct output cap_out, cap_err;
  bool ready;
  int64_t in_progress_ns; /* when part of a frame last arrived; 0: none held */
  pid_t peer_pid;         /* the worker, as its first frame's sender; 0 until then */
  int64_t kill_at;        /* when to kill it if it has not exited by then */
  /* Why the front killed it (a protocol violation, EOF); NULL if it died
     on its own.  */
  char *fault;
  bool killed;
  bool site_told; /* its session's packages directory is on its sys.path */
};

/* An image a cell produced, kept on disk in the session's directory.  */
struct artifact {
  char name[48];
  const char *mime; /* static */
  size_t size;
  uint32_t width, height;
  uint64_t cell;
  uint64_t serial;     /* front-wide: lower is older */
  struct art_job *job; /* its file is being written; NULL once it is there */
};

/* What storing a cell's images did besides storing them, for its reply.  */
struct artifact_notes {
  size_t evicted;        /* older images of the same session deleted */
  size_t evicted_others; /* of other sessions */
  size_t refused;        /* larger than a session's whole quota */
  int write_errno;       /* the last write failure, 0 if none */
};

struct session {
  struct session *next;
  struct front *front;
  char id[40];
  char *workdir;
  enum session_state state;
  struct worker *w;
  struct request *queue, *queue_tail;
  size_t nqueued;
  struct request *running;
  uint64_t execution_count;
  int64_t started_ns, deadline_ns, kill_ns; /* kill_ns != 0: interrupted */
  bool cancel_interrupt;                    /* asked for (cancel, interrupt), not the clock */
  bool closed;                              /* front_close_session has begun */
  char *lost_reason;                        /* set while the next cell must say state was lost */
  time_t created_at, last_used_at;
  int64_t active_ns; /* when it last answered a request: idleness starts there */
  /* Hibernation (hibernate.c): the worker that starts next loads the
     snapshot first; what the next reply says about it.  */
  bool restore_pending;
  int64_t restore_taken_ms; /* when the snapshot being loaded was taken */
  char *restored_note;
  bool restored_lost;       /* ... and whether the state was lost with it */
  int64_t snap_deadline_ns; /* HIBERNATING or RESTORING: give up then */
  int64_t snap_failed_ns;   /* when its last snapshot failed, 0 if none */
  int64_t snap_started_ns;  /* ... and when it began, for the log */
  struct artifact *artifacts;
  size_t nartifacts;
  size_t artifacts_bytes;
  /* install.c: packages are installed for it, and the next cell must
     put them on sys.path (always, for a new worker).  */
  bool has_packages, packages_changed;
};

/* The compile helper, as the front sees it (compiler_link.c).  */
struct compiler_link {
  pid_t pid;
  int fd; /* -1 while there is none */
  bool ready;
  struct cache_salt salt; /* from its READY; RUNTIME points at runtime below */
  char runtime[96];
  struct buf in, outq;
  struct compile_job *head, *tail; /* HEAD is with the helper while SENT_NS != 0 */
  size_t njobs;
  int64_t sent_ns;
  int failures;       /* in a row, for the wait before the next start */
  int64_t restart_at; /* 0: not waiting */
  uint64_t refused;   /* sources the helper would not cache */
};

/* install_packages requests (install.c): the first runs while RUNNING,
   the rest wait.  */
struct install;
struct install_link {
  struct install *head, *tail;
  bool running;
  pid_t pid;     /* kiln __install; 0 when none */
  int out;       /* its stdout and stderr, while WATCHING */
  bool watching; /* ... until EOF */
  bool reaped;
  int status;
  int64_t deadline_ns;
  bool killed_at_deadline;
  struct buf log; /* the end of its output */
  char **allow;   /* --allow-packages, normalised */
  size_t nallow;
  bool allow_all, allow_loaded;
  char *constraints; /* the preinstalled packages as pip constraints */
};

/* Workers reaped before the zygote's SPAWNED named them.  */
struct early_exit {
  pid_t pid;
  int status;
};

struct front {
  const struct kiln_config *cfg;
  struct kiln_limits limits;
  size_t max_sessions; /* --max-sessions, or fewer if the open-file limit says so */
  char *packages;      /* packages_scan of the venv */
  char instance[64];   /* "PID STARTTIME": this front, as session directories record it */
  struct loop *loop;
  front_ready_cb ready_cb;
  void *ready_ctx;
  void (*hangup)(void *ctx); /* front_on_hangup */
  void *hangup_ctx;
  void (*interrupt)(void *ctx); /* front_on_interrupt */
  void *interrupt_ctx;

  pid_t zygote_pid;
  int zygote;
  bool zygote_ready;
  bool zygote_ever_ready;
  bool closing; /* front_free has begun */
  int zygote_failures;
  int64_t zygote_started_ns;
  int64_t zygote_restart_at; /* when to start a new zygote; 0: not waiting */
  int64_t daemon_since;      /* daemon_link.c: asking since then; 0 when answered */
  int64_t daemon_started_ns; /* when a daemon was last started */
  bool started;              /* front_new has returned */
  struct link_in zin;
  struct buf zoutq;
  /* Sessions waiting for a worker, in the order SPAWN was sent (or will
     be, once the zygote is ready).  A NULL entry is a session closed
     while waiting: its worker is killed on arrival.  */
  struct spawn_req *spawnq;
  size_t nspawn, spawn_cap, spawn_sent;

  int sigfd;
  struct session *sessions;
  size_t nsessions;
  /* Sessions made ahead of demand, with a worker started (or starting)
     for each: a new session takes one instead of waiting for a fork.
     Their ids and directories are assigned up front so that a worker is
     set up for its session before anyone asks for it.  */
  size_t artifacts_bytes; /* every session's images on disk */
  size_t held_bytes;      /* partial frames held for all workers */
  struct art_writer *writer;
  uint64_t artifact_serial;
  struct session *spares;
  size_t nspares;
  bool refill_asked; /* spares_refill_soon: this turn */
  bool refill_due;   /* ... and the next one: refill in its tick */
  struct worker *workers;
  struct early_exit early[64];
  size_t nearly;
  int64_t next_handle;
  uint64_t spawn_serial;
  struct id_slots uids; /* held by spawns and workers */
  /* Sessions whose cgroups still had tasks when last tried.  */
  struct cg_graveyard cg_dead;
  /* The totals and histograms, each counted where its event happens;
     the gauges are left 0 here and read off the tables by
     front_metrics.  */
  struct front_metrics metrics;
  struct store *store;     /* NULL: no database (it could not be opened) */
  int64_t expire_at;       /* when hibernated sessions are next checked against --session-ttl */
  bool shutdown_hibernate; /* front_hibernate_all: stop the loop once they are all written */
  bool place_freed;        /* hibernate_place_freed: restores waiting for a place go on */
  int64_t shutdown_deadline;
  struct compiler_link compiler;
  struct install_link install;
  char python_version[32]; /* the zygote's, once ready */
};

/* daemon_link.c */
/* Connects F's zygote link to the daemon at cfg->daemon_socket, starting
   a daemon when none answers.  Returns 1 when connected (f->zygote is
   the link), 0 when it will try again at f->zygote_restart_at, -1 when
   it gives up (logged).  */
/* A new connection to the daemon at PATH (blocking), or -1 with errno.  */
int daemon_link_connect(const char *path);
int daemon_link_start(struct front *f);
/* The store as the daemon at CFG's socket owns it (store_open_linked),
   or NULL with the reason logged: not on a daemon, or it refused.  */
struct store *front_store_open(const struct kiln_config *cfg);

/* worker_link.c */
/* Sends SIG to W's init (relayed to the worker), with VALUE as its
   sigqueue value when QUEUED.  */
void worker_signal(struct worker *w, int sig, bool queued, int value);
/* Watches the status pipe of W, a worker from the daemon, for its end.  */
int worker_watch_status(struct worker *w, kiln_error_t *err);
void worker_send(struct worker *w, const struct fbuf *fb);
/* Sends FB with FD (not taken; -1 for none) passed along.  Returns -1
   when it cannot be sent now (bytes still queued before it) or the
   worker is gone.  */
int worker_send_fd(struct worker *w, const struct fbuf *fb, int fd);
void worker_read_pipe(struct worker *w, int *fd, struct output *o, bool drain);
void on_worker_pipe(struct loop *loop, int fd, uint32_t events, void *data);
void worker_kill(struct worker *w);
void worker_fault(struct worker *w, const char *fmt, ...);
void worker_free(struct worker *w);
/* W's cgroup counters (cg_session_events), from its cgroups when the
   front made them, else from the daemon's counter files; counted in the
   metrics.  False, and zeros, when W has no cgroups.  */
bool worker_cg_events(struct worker *w, uint64_t *oom_kills, bool *pids);
void worker_on_ctl(struct loop *loop, int fd, uint32_t events, void *data);
void worker_reaped(struct worker *w, int status);
void worker_check_stall(struct worker *w, int64_t now);

/* request.c */
struct request *request_new_cell(const char *code, size_t len, double timeout_s, front_reply_cb cb,
                                 void *ctx);
struct request *request_new_file(enum front_file_op op, const char *path, size_t path_len,
                                 uint64_t offset, const uint8_t *data, size_t len,
                                 uint64_t max_bytes, front_file_cb cb, void *ctx);
void request_answer(struct request *r, const struct cell_reply *cr, const struct file_reply *fr);
/* The queued or running request of handle HANDLE, or NULL.  */
struct request *request_find(struct front *f, int64_t handle);
void request_fail(struct session *s, struct request *r, const char *type, const char *message);
void request_free(struct request *r);

/* Passes DATA, N bytes a cell wrote to STREAM (0 stdout, 1 stderr), on
   to the running request's watcher, if any, now or at its next turn.  */
void watch_feed(struct session *s, int stream, const char *data, size_t n, int64_t now);
/* Passes on what is due by NOW (everything when FORCE) and returns the
   time of the next due passing, or -1.  */
int64_t watch_flush(struct request *r, int64_t now, bool force);
/* When R's watcher is next due, or -1 when nothing waits.  */
int64_t watch_due(const struct request *r);
void session_enqueue(struct session *s, struct request *r);

/* artifacts.c */
struct artifact *artifact_store(struct session *s, const char *mime, const uint8_t *data,
                                size_t len, uint32_t w, uint32_t h, struct artifact_notes *notes);
/* A sentence for the reply about NOTES (allocated), or NULL.  */
char *artifact_notice(const struct artifact_notes *notes);
void artifacts_drop_all(struct session *s);
/* S's artifacts on disk as text, one a line (allocated), for its
   snapshot's record; and back into S's table (those whose file is still
   there, as large as recorded).  */
char *artifacts_encode(const struct session *s);
void artifacts_decode(struct session *s, const char *text);
/* Forgets S's artifacts without touching their files (kiln stopping with
   S hibernated: the next kiln takes them over).  */
void artifacts_forget(struct session *s);
/* The writer's callback (artifact_writer.h); CTX is the front.  */
void artifact_written(void *ctx, struct art_job *job, int errnum);

/* reply.c */

void session_reply(struct session *s, struct cell_reply *r);
void session_fail_queue(struct session *s, const char *type, const char *message);
void session_lose(struct session *s, enum reply_status status, const char *type, const char *why);
void reply_done(struct worker *w, struct frame *fr);
/* notebook.c: a running cell's input() (FRAME_INPUT), and the end of a
   cell that may have left its worker waiting for an answer.  */
void reply_input(struct worker *w, struct frame *fr);
void input_cell_ended(struct session *s, struct request *c);
/* notebook.c: what a running cell shows, updates or clears
   (FRAME_DISPLAY).  */
void reply_display(struct worker *w, struct frame *fr);
void reply_file_result(struct worker *w, struct frame *fr);
/* The static copy of mime M (N bytes) among those a reply carries, or
   NULL for any other.  */
const char *reply_static_mime(const char *m, size_t n);
/* Appends the sentence TEXT (allocated; freed here) to B, a
   NUL-terminated text of sentences.  */
void reply_note(struct buf *b, char *text);
/* What the reader should know about W's limits, once each: a process
   of its session killed for memory, the process limit reached (a fork
   bomb), as a sentence appended to SAID.  */
void reply_note_limits(struct worker *w, struct buf *said);
size_t reply_parse_outputs(struct session *s, const struct field *fl, const struct field *marks_f,
                           const struct output_cut *cut, struct cell_output **out, char ***strings,
                           size_t *nstrings, struct artifact_notes *notes);

/* shell.c */
/* Starts FB, the FRAME_SHELL of S's running request C.  */
void shell_frame(struct session *s, const struct request *c, struct fbuf *fb);
void reply_shell_done(struct worker *w, struct frame *fr);
/* The front's backstop after a shell command's interrupt: the worker
   kills the command's group at the grace, and only a worker that has
   not answered this much later is killed itself.  */
#define SHELL_BACKSTOP_NS (3 * 1000000000LL)

/* hibernate.c */
/* Snapshots S (idle, its queue empty, its worker ready) and stops its
   worker; WHY is for the log.  */
void session_hibernate(struct session *s, const char *why);
void hibernate_done(struct worker *w, struct frame *fr);
void restore_done(struct worker *w, struct frame *fr);
/* S's new worker is ready: sends it the snapshot, or starts S fresh
   when there is none.  */
void restore_start(struct session *s);
/* Hibernates idle sessions, gives up stuck snapshots, expires old ones;
   returns when it is next due (-1: never).  */
int64_t hibernate_tick(struct front *f, int64_t now);
/* When hibernate_tick is next due, or -1.  */
int64_t hibernate_next(struct front *f);
/* Puts the sessions recorded in the database into the table.  */
void hibernate_load(struct front *f);
/* Sessions hibernated, counted off the table.  */
size_t hibernated_count(const struct front *f);
/* Whether a hibernated session may have a worker again under the live
   limit: 0 now; 1 once a snapshot being written frees a place (the least
   recently used idle session is hibernated for it when none is); -1 with
   ERR when every live session is busy.  */
int hibernate_make_room(struct front *f, kiln_error_t *err);
/* A place may have come free: restores waiting for one go on in the
   next tick.  */
void hibernate_place_freed(struct front *f);

/* session.c */
void session_dispatch(struct session *s);
/* Makes sure S's directory exists and says this front owns it.  */
int session_workdir_claim(struct session *s, kiln_error_t *err);
void session_interrupt(struct session *s, int64_t now, bool cancel);
void session_free(struct session *s);
struct session *session_find(struct front *f, const char *id);
struct session *session_open(struct front *f, kiln_error_t *err);

/* "name version,..." of every package in VENV's site-packages, by name
   (allocated; "" when there are none or they cannot be read).  */
char *packages_scan(const char *venv);

/* Keeps DATA (LEN bytes), what cell CELL of S wrote to STREAM (0 stdout,
   1 stderr), on disk when it is longer than FRONT_OUTPUT_INLINE_MAX.
   Returns whether it was kept.  */
bool cell_output_store(struct session *s, uint64_t cell, int stream, const char *data, size_t len);
/* Removes the kept outputs under SESSION_DIR, a session's directory.  */
void cell_outputs_remove(const char *session_dir);
void spares_refill(struct front *f);
/* Refills the spares after the loop's next turn (front.c's tick): a
   reply just handed to a transport that writes it from the loop (HTTP)
   goes out before the forks and cgroup writes of the refill.  */
void spares_refill_soon(struct front *f);
void session_drop_worker(struct session *s);

/* metrics.c */
/* Sets H's bounds to the first N (at most HISTOGRAM_MAX_BOUNDS) of
   BOUNDS, increasing, and empties it.  */
void histogram_init(struct histogram *h, const double *bounds, size_t n);
/* Counts V (seconds) in H.  NaN is ignored: it would poison the sum.  */
void histogram_observe(struct histogram *h, double v);
/* Empties M and gives its histograms their bounds.  */
void metrics_init(struct front_metrics *m);
/* Adds the OOM kills W's cgroup counted (OOM_KILLS, from
   cg_session_events) that the metrics have not seen yet.  */
void metrics_count_ooms(struct worker *w, uint64_t oom_kills);

/* zygote_link.c */
void zygote_spawnq_push(struct front *f, struct session *s);
void zygote_send_spawns(struct front *f);
void zygote_lost(struct front *f, const char *why);
void zygote_start(struct front *f);
void zygote_tick(struct front *f, int64_t now);
/* Gives up every spawn not yet answered, releasing its uid and cgroups.  */
void zygote_release_spawns(struct front *f);
void zygote_uid_release(struct front *f, int slot);

/* compiler_link.c */
void compiler_start(struct front *f);
void compiler_lost(struct front *f, const char *why);
void compiler_reaped(struct front *f);
void compiler_tick(struct front *f, int64_t now);
/* When compiler_tick is next due, or -1.  */
int64_t compiler_deadline(struct front *f);
void compiler_free(struct front *f);
/* The cache key of CODE (LEN bytes) in KEY; false while there is no
   cache or the helper has not said what its compiles depend on.  */
bool compiler_key(struct front *f, const char *code, size_t len, uint8_t key[STORE_KEY_BYTES]);
/* Asks the helper to compile CODE for the cache under KEY, after the
   sources already waiting (a copy is kept; a full queue drops it).  */
void compiler_request(struct front *f, const uint8_t key[STORE_KEY_BYTES], const char *code,
                      size_t len);

/* front.c */
char *front_instance_of(long pid);
void front_cg_forget(struct front *f, const char *name);
void worker_fault(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* install.c */
/* KILN_HOME/packages/sessions/ID: what the session's jail shows at
   PACKAGES_PATH (allocated).  */
char *install_session_dir(const struct front *f, const char *session_id);
int install_session_make(const struct front *f, const char *session_id, kiln_error_t *err);
bool install_session_has(const struct front *f, const char *session_id);
void install_session_forget(const struct front *f, const char *session_id);
void install_reaped(struct front *f, int status);
bool install_cancel(struct front *f, int64_t handle);
int64_t install_deadline(const struct front *f);
void install_tick(struct front *f, int64_t now);
void install_free_all(struct front *f);

#endif
