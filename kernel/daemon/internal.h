/* The daemon's own business (daemon.h is its face): the zygotes it keeps
   (zygotes.c), the fronts it serves (fronts.c), and the process that
   holds them (daemon.c).  */
#ifndef KILN_DAEMON_INTERNAL_H
#define KILN_DAEMON_INTERNAL_H

#include "cgroups.h"
#include "config.h"
#include "frame.h"
#include "identity.h"
#include "link.h"
#include "loop.h"
#include "sandbox.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A front's frames are its configuration and spawn requests; on a
   compile link, sources as big as --max-code allows, and the helper's
   marshalled answers.  */
#define CONN_MAX_FRAME    (1u << 20)
#define COMPILE_MAX_FRAME (256u << 20)
#define READ_CHUNK        (64u << 10)
/* A front that does not take a worker's fds within this long is dropped
   rather than let it stall every other front.  */
#define SEND_TIMEOUT_S 2
#define MAX_BACKOFF_NS (10 * 1000000000LL)
#define CG_NAME_MAX    80
/* Workers each zygote in use keeps started ahead of demand (spares.c).  */
#define DAEMON_SPARES 1

struct conn;

/* A worker's init: the daemon's child (the daemon is their subreaper),
   holding a uid slot and the session's cgroups until it is reaped.  */
struct child {
  pid_t pid;
  struct conn *conn; /* NULL once its front has gone */
  int uid_slot;
  char cg[CG_NAME_MAX];
  bool cg_made;
  bool spare; /* kept by its zygote for the next front (struct spare) */
  struct child *next;
};

/* A spare worker: its SPAWNED frame as the zygote sent it, and the four
   descriptors that came with it, until a front takes it.  */
struct spare {
  struct child *ch;
  struct buf raw;
  int fds[4];
  char *packages; /* its packages directory, renamed to its session's */
};

/* A spawn request the zygote has not answered yet.  */
struct pending {
  struct conn *conn; /* NULL once its front has gone */
  char cg[CG_NAME_MAX];
  char *packages; /* the session's installed packages, or NULL */
  int uid_slot;
  bool cg_made;
  bool spare; /* asked for no front: kept as a spare */
};

/* A compile helper shared by the fronts of one configuration
   (compilers.c).  */
struct dmn_compiler {
  pid_t pid;
  int fd; /* -1 while there is none */
  bool ready;
  struct link_in in;
  struct buf outq;
  struct buf ready_frame; /* its COMPILER_READY, sent to each front */
  /* Who sent the sources the helper has not answered yet, in order;
     NULL for a front gone since.  */
  struct conn **waiting;
  size_t nwaiting, capwaiting;
  int64_t sent_ns; /* when the oldest unanswered source was sent; 0: none */
  int failures;
  int64_t restart_at; /* not started again before this */
};

/* One zygote per distinct configuration: fronts started with the same
   options share it, and its compile helper.  */
struct zygote {
  struct daemon *d;
  uint8_t key[crypto_generichash_BYTES];
  struct kiln_config cfg;
  struct sbx_config sbx;
  pid_t pid;
  int sock;
  bool ready, ever_ready;
  struct link_in in;
  struct buf outq;
  struct buf ready_frame; /* its ZYGOTE_READY, sent to each front */
  struct pending *q;
  size_t nq, qcap, nsent;
  int failures;
  int64_t restart_at;
  int64_t unused_since; /* when its last front went; 0 while one uses it */
  struct dmn_compiler comp;
  struct spare *spares; /* ready, oldest first */
  size_t nspares, spares_asked;
  struct zygote *next;
};

/* A store the daemon owns for the fronts of one KILN_HOME (stores.c).  */
struct dmn_store {
  char *home; /* its real path */
  struct store *st;
  size_t links;
  int64_t unused_since; /* when its last front went; 0 while one uses it */
  struct dmn_store *next;
};

struct conn {
  struct daemon *d;
  int fd;
  uint64_t id;
  struct zygote *z;        /* once its configuration has come */
  struct dmn_store *store; /* a store link's, once it is open */
  char **live;             /* the sessions its front had open when it last expired history */
  size_t nlive;
  struct buf in;
  bool told_ready;
  bool compiling; /* a front's compile link, not its zygote link */
  struct conn *next;
};

struct daemon {
  struct loop *loop;
  int listen_fd;
  struct cg_host cg;
  struct id_slots uids; /* unique across every front */
  struct zygote *zygotes;
  struct conn *conns;
  struct child *children;
  pid_t early[16]; /* inits reaped before their zygote reported them */
  size_t nearly;
  struct cg_graveyard cg_dead; /* sessions' groups that still had tasks */
  struct dmn_store *stores;
  int synced[2]; /* ids of store links whose sync is committed (stores.c) */
  uint64_t next_conn_id;
  double idle_s;
  int64_t idle_since; /* 0 while a front is connected */
};

/* zygotes.c */
/* Queues a spawn request of Z for C (NULL: a spare) with the cgroup
   name NAME and the packages directory PACKAGES (taken; NULL for none),
   holding a uid slot and the session's cgroups.  */
struct pending *dmn_pending_push(struct zygote *z, struct conn *c, const char *name,
                                 char *packages);
/* Sends CH's worker to its front: RAW (its SPAWNED frame) with the four
   descriptors FOUR, a pidfd of its init unless GONE, and its cgroups'
   counter files.  A front that cannot take it loses it.  */
void dmn_hand_over(struct daemon *d, struct child *ch, const uint8_t *raw, size_t rawlen,
                   const int *four, bool gone);
/* Gives back what a spawn request holds: its uid slot and cgroups.  */
void dmn_pending_release(struct daemon *d, struct pending *p);
/* Sends Z the spawn requests it has not had yet, once it is ready.  */
void dmn_zygote_send_spawns(struct zygote *z);
/* Starts kiln's NAME helper process (COMMAND, its socket on CHILD_FD in
   it) for Z's configuration, queued first in OUTQ, its socket *SOCK
   watched by CB.  0, or -1 with ERR (*SOCK -1; *PID, if not 0, is
   killed and reaped as any child).  */
int dmn_helper_spawn(struct zygote *z, const char *name, const char *command, int child_fd,
                     pid_t *pid, int *sock, struct buf *outq, loop_fd_cb cb, kiln_error_t *err);
/* Starts Z's zygote process and sends it its configuration.  */
void dmn_zygote_start(struct zygote *z);
/* Z's link is gone (WHY, for the log): restarted after a back-off if it
   was ever ready, else its fronts are told it failed.  */
void dmn_zygote_lost(struct zygote *z, const char *why);
/* The zygote for the configuration in FR, started if there is none:
   NULL with ERR when FR is not a configuration of this build.  */
struct zygote *dmn_zygote_for(struct daemon *d, const struct frame *fr, kiln_error_t *err);
/* Stops Z and forgets it.  */
void dmn_zygote_free(struct zygote *z);

/* spares.c */
/* Removes the packages directories of spares whose daemon is gone
   (killed before it could remove them).  */
void dmn_spares_reap_stale(const struct zygote *z);
/* Asks Z for the spares it lacks, when a front uses it.  */
void dmn_spares_refill(struct zygote *z);
/* Keeps CH, just spawned as a spare, with its frame and descriptors,
   and PACKAGES (taken), its packages directory.  */
void dmn_spare_keep(struct zygote *z, struct child *ch, const uint8_t *raw, size_t rawlen,
                    const int *four, char *packages);
/* Hands C a spare of Z for a session whose packages directory is
   PACKAGES (empty: nothing installed yet); false when there is none it
   may take now.  */
bool dmn_spare_take(struct zygote *z, struct conn *c, const char *packages);
/* CH's init was reaped: if it was a spare, it is forgotten.  */
void dmn_spare_reaped(struct daemon *d, const struct child *ch);
/* Kills Z's spares and forgets them.  */
void dmn_spares_free(struct zygote *z);

/* compilers.c */
/* C, a front's compile link to Z's configuration: told when the helper
   is ready (started now if there is none).  */
void dmn_compiler_attach(struct zygote *z, struct conn *c);
/* C's FRAME_COMPILE FR, passed to Z's helper; its answer goes to C.  */
void dmn_compiler_request(struct zygote *z, struct conn *c, const struct frame *fr);
/* C is gone: an answer meant for it goes nowhere.  */
void dmn_compiler_forget(struct zygote *z, struct conn *c);
/* Whether PID was Z's helper (then restarted when next asked for).  */
bool dmn_compiler_reaped(struct zygote *z, pid_t pid);
/* When Z's helper must have answered its oldest source, or -1.  */
int64_t dmn_compiler_deadline(const struct zygote *z);
void dmn_compiler_tick(struct zygote *z, int64_t now);
void dmn_compiler_free(struct zygote *z);

/* stores.c */
/* The pipe through which stores' writers say a sync is committed; the
   stores, closed (their writes committed) with the pipe.  */
int dmn_stores_init(struct daemon *d, kiln_error_t *err);
void dmn_stores_free(struct daemon *d);
/* C's FRAME_STORE_OPEN FR: C becomes a link to the store of the
   KILN_HOME it names, opened now if no front uses it yet; or it is told
   why not and dropped.  */
void dmn_store_open(struct conn *c, const struct frame *fr);
/* A FRAME_STORE_WRITE or FRAME_STORE_SYNC FR on C's store link.  */
void dmn_store_frame(struct conn *c, const struct frame *fr);
/* C is gone: its store is kept for the daemon's idle time once no
   other front uses it.  */
void dmn_store_release(struct conn *c);
/* When the next unused store must be closed, or -1; closes those due.  */
int64_t dmn_stores_deadline(const struct daemon *d);
void dmn_stores_tick(struct daemon *d, int64_t now);

/* fronts.c */
/* Sends the LEN bytes of one frame at DATA to FD with NFDS descriptors;
   0, or -1 when the front is gone or stuck.  */
int dmn_send_raw(int fd, const void *data, size_t len, const int *fds, size_t nfds);
/* Sends C a frame of TYPE holding MSG, ignoring failure (C is dropped
   anyway, or learns it from its next read).  */
void dmn_send_message(struct conn *c, enum frame_type type, const char *msg);
/* Forgets C: its workers are killed, its waiting spawns orphaned.  */
void dmn_conn_drop(struct conn *c);
/* Accepts the fronts waiting on the listening socket FD.  */
void dmn_on_listen(struct loop *loop, int fd, uint32_t events, void *data);

#endif
