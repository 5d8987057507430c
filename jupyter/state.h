/* What the kernel's files share: the kernel and a cell being run.  Not
   for outside jupyter/.  */
#ifndef KILN_JUP_STATE_H
#define KILN_JUP_STATE_H

#include "channels.h"
#include "config.h"
#include "kiln.h"
#include "wire.h"

#include <stdbool.h>
#include <stdint.h>

/* A shell message waiting its turn.  */
struct pending {
  struct pending *next;
  struct jup_msg *m;
};

/* An execute_request on its way through the front.  */
struct exec {
  struct jup_kernel *k;
  struct jup_msg *m; /* owned */
  int64_t handle;    /* the front's, for front_interrupt */
  uint64_t generation;
  uint64_t count; /* the execution_count its reply gives */
  bool silent, stop_on_error;
  /* The execute_reply, kept while the user_expressions are evaluated.  */
  json_t *reply;
};

struct jup_kernel {
  const struct kiln_config *cfg;
  struct loop *loop;
  struct front *front;
  struct jup_channels *ch;
  bool ready;             /* the zygote is up: its Python's version is known */
  char *language_version; /* "3.12.1" */
  char *session_id;       /* the kiln session; NULL until the front names it */
  int64_t opening;        /* the cell that opens the session, while it runs */
  /* Counts the sessions opened: a reply from an earlier one (a restart
     closed it) does not name the session.  */
  uint64_t generation;
  uint64_t execution_count;
  struct pending *queue, *queue_tail; /* shell messages, in order */
  size_t nqueued, queued_bytes;
  struct pending *info_waiting; /* control's kernel_info_requests before ready */
  struct exec *running;
  struct ask *asking; /* a question about code, awaiting the session's answer */
  bool stopping;
  int exit_code;
};

/* Runs the shell messages waiting, in order, until one has to wait
   (an execute, or the session not open yet).  */
void kernel_next(struct jup_kernel *k);

/* Publishes status STATE ("busy", "idle") on iopub for PARENT.  */
void kernel_status(struct jup_kernel *k, const struct jup_msg *parent, const char *state);

/* Starts execute_request M (taken); the reply is sent when the front
   answers.  Sets K->running unless the front refused the cell, which is
   answered at once.  */
void exec_start(struct jup_kernel *k, struct jup_msg *m);

/* Gives the running cell's input() the value of input_reply M (from the
   stdin channel); one that nobody waits for is logged and dropped.  */
void exec_input_reply(struct jup_kernel *k, const struct jup_msg *m);

/* Answers every execute_request still queued with status "aborted"
   (after an error with stop_on_error, a restart).  */
void exec_abort_queued(struct jup_kernel *k);

#endif
