/* The framed protocol spoken on the unix sockets between front, zygote and
   workers.  A frame is an 8-byte header (payload length, type, both little
   endian) followed by a payload of typed fields:

     field := tag:u16 len:u32 bytes[len]

   Both sides check every length against the limits below before trusting
   it; a peer that sends a malformed, oversized or unexpected frame is a
   protocol error.  For a worker that ends the worker, never the front.  */
#ifndef KILN_FRAME_H
#define KILN_FRAME_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FRAME_HDR_SIZE 8
/* Upper bound on any payload, whatever the configuration; the limits
   actually used come from wire_limits.h.  */
#define FRAME_MAX_PAYLOAD (1u << 30)
#define FRAME_MAX_FDS     7

enum frame_type {
  /* front -> zygote */
  FRAME_SPAWN = 1,   /* fields: SESSION_ID, UID, PATH (its packages directory; optional) */
  FRAME_COMPILE = 2, /* front -> compile helper; fields: CODE.  Compile, never run */
  FRAME_CONFIG = 3,  /* fields: CONFIG, SANDBOX, STRINGS (handoff.h); the first frame */
  /* front -> daemon: as CONFIG, the first frame of a compile link: the
     daemon's helper for that configuration answers it */
  FRAME_COMPILER_CONFIG = 4,
  /* front -> daemon: the first frame of a store link (store.h,
     STORE_LINKED); fields: PATH (KILN_HOME).  Answered by STORE_READY or
     STORE_FAILED (MESSAGE) */
  FRAME_STORE_OPEN = 5,
  /* front -> daemon: one write to the store; fields: KIND (enum
     store_op) and the write's own (store/link.c) */
  FRAME_STORE_WRITE = 6,
  /* front -> daemon: no fields; answered by STORE_SYNCED once every
     write sent before it is committed */
  FRAME_STORE_SYNC = 7,
  FRAME_STORE_READY = 8,
  FRAME_STORE_FAILED = 9,
  FRAME_STORE_SYNCED = 18,
  /* zygote -> front */
  FRAME_ZYGOTE_READY = 10,  /* fields: PYTHON_VERSION, PRELOADED, PRELOAD_FAILED, PACKAGES */
  FRAME_SPAWNED = 11,       /* fields: PID; fds: control socket, stdout, stderr */
  FRAME_SPAWN_FAILED = 12,  /* fields: MESSAGE; also a middle process's failure */
  FRAME_ZYGOTE_FAILED = 13, /* fields: MESSAGE; start-up failed, zygote exits */
  /* middle process -> zygote */
  FRAME_INIT_FORKED = 14, /* fields: PID (the worker's init) */
  /* compile helper -> front */
  FRAME_COMPILER_READY = 15,  /* fields: MAGIC, OPTIMIZE, FLAGS, RUNTIME */
  FRAME_COMPILED = 16,        /* fields: DATA (marshalled code), or MESSAGE: why none */
  FRAME_COMPILER_FAILED = 17, /* fields: MESSAGE; start-up failed, the helper exits */
  /* front -> worker */
  FRAME_EXEC = 20,      /* fields: CODE, CELL_NO, COMPILED (a cache hit: the helper's code),
                           PATH (a directory of packages installed since the last cell) */
  FRAME_FILE_LIST = 21, /* fields: PATH (a directory under /work, "" for /work) */
  /* fields: PATH, MAX_BYTES, OFFSET (present: a part of the file, the
     result carrying SIZE; absent: the whole file or a refusal) */
  FRAME_FILE_READ = 22,
  /* fields: PATH, DATA, OFFSET (present: into the existing file there) */
  FRAME_FILE_WRITE = 23,
  FRAME_FILE_MKDIR = 24, /* fields: PATH */
  FRAME_MARKED = 25,     /* no fields: the answer to a MARK, the stdout before it collected */
  FRAME_SNAPSHOT = 26,   /* fields: MAX_BYTES; fds: the file to write the session's state to */
  FRAME_RESTORE = 27,    /* fields: HASH, and DATA (the snapshot) or an fd to read it from */
  /* fields: CODE (the command), PATH (its directory under /work, "" for
     /work), CELL_NO, GRACE_MS (from the interrupt to killing its process
     group) */
  FRAME_SHELL = 28,
  /* fields: KIND (enum front_introspect_op), CODE, OFFSET (the cursor, in
     characters), MAX_BYTES; answered by FILE_RESULT with DATA: JSON */
  FRAME_INTROSPECT = 29,
  /* fields: DATA (the line input() returns), or STATUS 1 and MESSAGE:
     why there is none (refused, or the cell ended while it waited) */
  FRAME_INPUT_REPLY = 19,
  /* worker -> front */
  FRAME_WORKER_READY = 30,  /* no fields */
  FRAME_WORKER_FAILED = 31, /* fields: MESSAGE; setup failed, worker exits */
  FRAME_DONE = 32,          /* fields: STATUS, RESULT, ERR_* */
  FRAME_FILE_RESULT = 33,   /* fields: STATUS (0 or an errno), MESSAGE, DATA or LISTING */
  FRAME_MARK = 34,          /* no fields: a place in the running cell's stdout (mark.h); */
                            /* the worker waits for MARKED */
  FRAME_SNAPSHOT_DONE = 35, /* fields: SIZE, HASH, LOST, DROPPED; or MESSAGE: none taken */
  FRAME_RESTORED = 36,      /* fields: STATUS (0 restored, 1 refused), MESSAGE, LOST */
  FRAME_INPUT = 37,         /* fields: MESSAGE (the prompt), KIND (1: a password); */
                            /* the worker waits for INPUT_REPLY */
  /* fields: STATUS (0: it ran, or the errno it could not start with),
     MESSAGE, EXIT_CODE or SIGNAL, KILLED, OUTPUTS (the files it wrote) */
  FRAME_SHELL_DONE = 38,
  /* fields: KIND (enum display_kind), DISPLAY_ID, WAIT, OUTPUTS (the forms
     of one object, as records.h packs them): something the running cell
     showed, updated or cleared, at this place of its output (a SHOW is a
     mark too: mark.h).  The worker waits for MARKED; see
     rec_display_parse.  */
  FRAME_DISPLAY = 39,
};

enum frame_tag {
  TAG_MESSAGE = 1,
  TAG_PID = 2,
  TAG_PYTHON_VERSION = 3,
  TAG_PRELOADED = 4, /* comma-separated module names */
  TAG_PRELOAD_FAILED = 5,
  TAG_SESSION_ID = 6,
  TAG_MAX_RESULT = 7, /* u64: repr cap in characters */
  TAG_CODE = 8,
  TAG_CELL_NO = 9, /* u64 */
  TAG_STATUS = 10, /* u64: enum cell_status */
  TAG_RESULT = 11,
  TAG_ERR_TYPE = 12,
  TAG_ERR_MESSAGE = 13,
  TAG_ERR_TRACEBACK = 14,
  TAG_ERR_LINENO = 15,      /* u64 */
  TAG_ERR_OFFSET = 16,      /* u64 */
  TAG_FRONT_PID = 17,       /* u64 */
  TAG_UID = 18,             /* u64: the session's uid (and gid) once jailed */
  TAG_OUTPUTS = 19,         /* packed outputs, see worker.c put_outputs */
  TAG_OUTPUTS_DROPPED = 20, /* u64 */
  TAG_PATH = 21,
  TAG_DATA = 22,
  TAG_MAX_BYTES = 23, /* u64 */
  TAG_LISTING = 24,   /* packed entries, see records.h */
  TAG_TRUNCATED = 25, /* present: a listing stopped at a limit */
  TAG_CONFIG = 26,    /* handoff.h */
  TAG_SANDBOX = 27,
  TAG_STRINGS = 28,
  TAG_OFFSET = 29,       /* u64: where a file read or write starts */
  TAG_SIZE = 30,         /* u64: a file's size */
  TAG_OUTPUT_MARKS = 31, /* u32 per output (TAG_OUTPUTS, inline copies not counted): its mark */
  TAG_MAGIC = 32,        /* the compiler's Python magic number */
  TAG_OPTIMIZE = 33,     /* u64: its optimisation level */
  TAG_FLAGS = 34,        /* u64: its compile flags */
  TAG_COMPILED = 35,     /* marshalled (body, expr, is_async) of a cell, from the cache */
  TAG_RUNTIME = 36,      /* a digest of the runtime that transforms cells */
  TAG_HASH = 37,         /* BLAKE2b-256 of a snapshot */
  TAG_LOST = 38,         /* "name (why); ...": what a snapshot does not hold */
  TAG_DROPPED = 39,      /* "name, ...": left out of a snapshot to fit --max-snapshot */
  /* A shell command's (FRAME_SHELL, FRAME_SHELL_DONE).  */
  TAG_GRACE_MS = 40,    /* u64 */
  TAG_EXIT_CODE = 41,   /* u64: 0-255, when the command exited */
  TAG_SIGNAL = 42,      /* u64: the signal that ended it, when one did */
  TAG_KILLED = 43,      /* present: its process group was killed after the grace */
  TAG_KIND = 44,        /* u64: what FRAME_INTROSPECT asks, or FRAME_DISPLAY does */
  TAG_DISPLAY_ID = 45,  /* a display's id, as display(display_id=...) names it */
  TAG_WAIT = 46,        /* present: clear_output(wait=True) */
  TAG_PROTECTIONS = 47, /* what the zygote's workers are jailed by (sbx_describe) */
  /* A store write's (FRAME_STORE_WRITE).  */
  TAG_TIME_MS = 48,      /* u64: Unix ms (a history row's start, a cache entry's use) */
  TAG_DURATION = 49,     /* u64: the bits of an IEEE double, milliseconds */
  TAG_STDOUT_BYTES = 50, /* u64 */
  TAG_STDERR_BYTES = 51, /* u64 */
  TAG_ARTIFACTS = 52,    /* comma-separated names */
  TAG_KEY = 53,          /* a code cache key */
  TAG_LIVE = 54,         /* NUL-separated session ids */
  TAG_NOTE = 55,
  TAG_DIR = 56,
  TAG_TIMES = 57,       /* three u64 Unix ms: created, last used, hibernated */
  TAG_CELL_KIND = 58,   /* "python" or "shell" */
  TAG_CELL_STATUS = 59, /* how a recorded cell ended, as a word */
};

/* How a cell ended, as the worker reports it.  */
enum cell_status {
  CELL_OK = 0,
  CELL_ERROR = 1,       /* an exception, SyntaxError or a failing SystemExit */
  CELL_INTERRUPTED = 2, /* KeyboardInterrupt */
  CELL_EXITED = 3,      /* SystemExit with a success status: exit(), sys.exit(0) */
  CELL_STATUS_MAX = 3,
};

/* A growable frame under construction.  */
struct fbuf {
  uint8_t *data;
  size_t len, cap;
};

/* Starts a frame of TYPE in FB (whose memory it owns; fbuf_free releases
   it).  */
void fbuf_init(struct fbuf *fb, enum frame_type type);
void fbuf_free(struct fbuf *fb);
void fbuf_put(struct fbuf *fb, enum frame_tag tag, const void *data, size_t len);
void fbuf_put_str(struct fbuf *fb, enum frame_tag tag, const char *s);
void fbuf_put_u64(struct fbuf *fb, enum frame_tag tag, uint64_t v);
/* Writes the final length into the header; FB->data[0..len) is the frame.  */
void fbuf_finish(struct fbuf *fb);

/* A parsed field: DATA points into the payload it was parsed from.  */
struct field {
  uint16_t tag;
  uint32_t len;
  const uint8_t *data;
};

#define FRAME_MAX_FIELDS 16

struct frame {
  uint16_t type;
  size_t nfields;
  struct field fields[FRAME_MAX_FIELDS];
  int fds[FRAME_MAX_FDS];
  size_t nfds;
};

/* Decodes a header; returns the payload length, or -1 if it exceeds
   MAX_PAYLOAD.  */
int64_t frame_header_decode(const uint8_t hdr[FRAME_HDR_SIZE], uint16_t *type,
                            uint32_t max_payload);

/* Parses PAYLOAD into F->fields (F->type must already be set).  The fields
   point into PAYLOAD, which must outlive F.  Returns 0, or -1 with an error
   if a field runs past the end, there are too many, or a tag repeats.  */
int frame_parse_fields(struct frame *f, const uint8_t *payload, size_t len, kiln_error_t *err);

/* Field lookup.  frame_get returns NULL when TAG is absent.  The typed
   getters return -1 with an error when the field is absent (unless
   OPTIONAL) or has the wrong size; a string getter also refuses embedded
   NUL bytes and returns a newly allocated copy the caller frees.  */
const struct field *frame_get(const struct frame *f, enum frame_tag tag);
int frame_get_u64(const struct frame *f, enum frame_tag tag, bool optional, uint64_t *out,
                  kiln_error_t *err);
int frame_get_str(const struct frame *f, enum frame_tag tag, bool optional, char **out, size_t *len,
                  kiln_error_t *err);

/* Blocking I/O for the zygote and workers (the front uses its own
   non-blocking reader).  frame_send sends FB's frame and, if NFDS > 0,
   FDS as SCM_RIGHTS.  frame_recv reads one whole frame into F; the payload
   is stored in *BUF (allocated, the caller frees it after using F) and any
   received fds in F->fds (owned by the caller).  Returns 0, or -1 with an
   error; on EOF the error's status is ECONNRESET.  */
int frame_send(int fd, const struct fbuf *fb, const int *fds, size_t nfds, kiln_error_t *err);
int frame_recv(int fd, struct frame *f, uint8_t **buf, uint32_t max_payload, kiln_error_t *err);

/* The one way a process between fork and its first user statement (the
   zygote, a spawn's middle process, a worker's init, a worker) reports
   that it could not set up: a frame of TYPE carrying ERR's message (or
   FALLBACK) on FD, then _exit(127).  */
_Noreturn void frame_fail_exit(int fd, enum frame_type type, kiln_error_t *err,
                               const char *fallback);

/* Receives whatever the socket holds (up to CAP bytes) and any fds passed
   with it, non-blocking.  Returns bytes read, 0 at EOF, -1 with errno
   (EAGAIN included).  Received fds are appended to FDS (count in NFDS) (at most
   FRAME_MAX_FDS); extra ones are closed.  *SENDER, if not NULL, gets the pid
   of the process that wrote the bytes when the socket has SO_PASSCRED (a
   read never spans two writers' bytes then), else 0.  */
ssize_t frame_recv_some(int fd, uint8_t *buf, size_t cap, int *fds, size_t *nfds, pid_t *sender);

#endif
