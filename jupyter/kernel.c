/* The kernel: one kiln session, the shell messages run one at a time in
   the order they came, control messages at once.  Which message does
   what is in dispatch_shell() and dispatch_control() below; a cell's
   path is in execute.c.  */
#define _GNU_SOURCE
#include "kernel.h"
#include "introspect.h"
#include "log.h"
#include "paths.h"
#include "state.h"
#include "util.h"

#include <string.h>

/* Shell messages kept waiting behind a running cell, and their bytes;
   past either, the newest is dropped (and logged): a client cannot grow
   the kernel without bound.  Room for "Run All" on a notebook of
   thousands of cells.  */
#define MAX_QUEUED       16384
#define MAX_QUEUED_BYTES (256u << 20)
/* How long a shutdown_reply has to leave before the sockets close.  */
#define LINGER_MS 1000

void
kernel_status(struct jup_kernel *k, const struct jup_msg *parent, const char *state)
{
  jup_send(k->ch, JUP_IOPUB, parent, "status", json_pack("{s:s}", "execution_state", state));
}

/* Replies on channel TO to M with MSG_TYPE and CONTENT (stolen).  */
static void
reply(struct jup_kernel *k, enum jup_channel to, const struct jup_msg *m, const char *msg_type,
      json_t *content)
{
  jup_send(k->ch, to, m, msg_type, content);
}

static void
kernel_info(struct jup_kernel *k, enum jup_channel to, const struct jup_msg *m)
{
  cleanup_free char *banner = xasprintf(
      "kiln %s: Python %s in a sandboxed session (numpy, pandas, matplotlib and PIL preloaded)",
      KILN_VERSION, k->language_version);
  json_t *content = json_pack(
      "{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:i}, s:s}, s:s, s:[{s:s, s:s}], "
      "s:b}",
      "status", "ok", "protocol_version", JUP_PROTOCOL_VERSION, "implementation", "kiln",
      "implementation_version", KILN_VERSION, "language_info", "name", "python", "version",
      k->language_version, "mimetype", "text/x-python", "file_extension", ".py", "pygments_lexer",
      "ipython3", "codemirror_mode", "name", "ipython", "version", 3, "nbconvert_exporter",
      "python", "banner", banner, "help_links", "text", "Python Reference", "url",
      "https://docs.python.org/3.12/", "debugger", 0);
  reply(k, to, m, "kernel_info_reply", content);
}

/* Opens the kernel's session, so that the first cell a user runs finds
   its worker ready.  */
static void
open_session(struct jup_kernel *k)
{
  kiln_error_t err = NULL;
  char id[40];
  k->generation++;
  k->execution_count = 0;
  free(k->session_id);
  k->session_id = NULL;
  if (front_open_session(k->front, id, &err) < 0) {
    /* The first execute_request makes the session instead.  */
    log_error(LOG_WARN, &err, "jupyter: opening the session");
    return;
  }
  k->session_id = xstrdup(id);
  log_msg(LOG_DEBUG, "jupyter: session %s open", id);
}

/* Stops the session's cell, if one runs: KeyboardInterrupt in it, the
   session kept (front_interrupt).  */
static void
interrupt(struct jup_kernel *k)
{
  if (k->running && k->running->handle > 0 && front_interrupt(k->front, k->running->handle) == 0)
    log_msg(LOG_INFO, "jupyter: interrupting cell %llu", (unsigned long long)k->running->count);
}

static void
on_sigint(void *ctx)
{
  interrupt(ctx);
}

/* Closes the session: the running cell is answered (the front says the
   session was closed), queued cells are aborted.  */
static void
close_session(struct jup_kernel *k)
{
  cleanup_free char *id = steal_pointer(&k->session_id);
  /* Nothing may start on the closing session from the callbacks below.  */
  k->opening = -1;
  exec_abort_queued(k);
  kiln_error_t err = NULL;
  if (id && front_close_session(k->front, id, &err) < 0)
    log_error(LOG_WARN, &err, "jupyter: closing the session");
  k->opening = 0;
}

static void
shutdown_kernel(struct jup_kernel *k, const struct jup_msg *m)
{
  json_t *restart = json_object_get(m->content, "restart");
  bool again = json_is_true(restart);
  json_t *content = json_pack("{s:s, s:b}", "status", "ok", "restart", again);
  /* On iopub too, as ipykernel does, for the other clients.  */
  jup_send(k->ch, JUP_IOPUB, m, "shutdown_reply", json_incref(content));
  reply(k, JUP_CONTROL, m, "shutdown_reply", content);
  close_session(k);
  if (again) {
    log_msg(LOG_INFO, "jupyter: restarting: a fresh session");
    open_session(k);
    return;
  }
  log_msg(LOG_INFO, "jupyter: shutting down");
  k->stopping = true;
  loop_stop(k->loop);
}

/* Handles shell message M (taken).  Returns true when it is done, false
   when it started a cell (K->running has it).  */
static bool
dispatch_shell(struct jup_kernel *k, struct jup_msg *m)
{
  const char *t = m->msg_type;
  if (strcmp(t, "execute_request") == 0) {
    exec_start(k, m);
    return k->running == NULL;
  }
  if (strcmp(t, "complete_request") == 0 || strcmp(t, "inspect_request") == 0
      || strcmp(t, "is_complete_request") == 0)
    return introspect_start(k, m);
  kernel_status(k, m, "busy");
  if (strcmp(t, "kernel_info_request") == 0)
    kernel_info(k, JUP_SHELL, m);
  else if (strcmp(t, "comm_info_request") == 0)
    reply(k, JUP_SHELL, m, "comm_info_reply", json_pack("{s:{}, s:s}", "comms", "status", "ok"));
  else if (strcmp(t, "comm_open") == 0) {
    /* No widgets: every comm is closed as soon as it is opened, so the
       frontend knows no one is at the other end.  */
    json_t *id = json_object_get(m->content, "comm_id");
    if (json_is_string(id))
      jup_send(k->ch, JUP_IOPUB, m, "comm_close", json_pack("{s:O, s:{}}", "comm_id", id, "data"));
  } else if (strcmp(t, "comm_msg") == 0 || strcmp(t, "comm_close") == 0)
    ;
  else if (strcmp(t, "history_request") == 0)
    history_reply(k, m);
  else
    log_msg(LOG_INFO, "jupyter: unknown message type %s on shell, ignored", t);
  kernel_status(k, m, "idle");
  jup_msg_free(m);
  free(m);
  return true;
}

static void
dispatch_control(struct jup_kernel *k, struct jup_msg *m)
{
  const char *t = m->msg_type;
  if (strcmp(t, "kernel_info_request") == 0 && !k->ready) {
    struct pending *p = xzalloc(sizeof *p);
    p->m = m;
    p->next = k->info_waiting;
    k->info_waiting = p;
    return;
  }
  kernel_status(k, m, "busy");
  if (strcmp(t, "kernel_info_request") == 0)
    kernel_info(k, JUP_CONTROL, m);
  else if (strcmp(t, "interrupt_request") == 0) {
    interrupt(k);
    reply(k, JUP_CONTROL, m, "interrupt_reply", json_pack("{s:s}", "status", "ok"));
  } else if (strcmp(t, "shutdown_request") == 0)
    shutdown_kernel(k, m);
  else
    log_msg(LOG_INFO, "jupyter: unknown message type %s on control, ignored", t);
  kernel_status(k, m, "idle");
  jup_msg_free(m);
  free(m);
}

void
kernel_next(struct jup_kernel *k)
{
  while (k->ready && !k->stopping && k->opening == 0 && k->running == NULL && k->asking == NULL
         && k->queue) {
    struct pending *p = k->queue;
    k->queue = p->next;
    if (k->queue == NULL)
      k->queue_tail = NULL;
    k->nqueued--;
    k->queued_bytes -= p->m->wire_len;
    struct jup_msg *m = p->m;
    free(p);
    dispatch_shell(k, m);
  }
}

static void
on_msg(void *ctx, enum jup_channel ch, struct jup_msg *m)
{
  struct jup_kernel *k = ctx;
  log_msg(LOG_DEBUG, "jupyter: %s on %s", m->msg_type, jup_channel_name(ch));
  if (ch == JUP_CONTROL) {
    dispatch_control(k, m);
    return;
  }
  if (ch == JUP_STDIN) {
    exec_input_reply(k, m);
    jup_msg_free(m);
    free(m);
    return;
  }
  if (k->nqueued >= MAX_QUEUED || k->queued_bytes + m->wire_len > MAX_QUEUED_BYTES) {
    log_msg(LOG_WARN, "jupyter: %zu shell messages (%zu bytes) waiting: %s dropped", k->nqueued,
            k->queued_bytes, m->msg_type);
    jup_msg_free(m);
    free(m);
    return;
  }
  struct pending *p = xzalloc(sizeof *p);
  p->m = m;
  if (k->queue_tail)
    k->queue_tail->next = p;
  else
    k->queue = p;
  k->queue_tail = p;
  k->nqueued++;
  k->queued_bytes += m->wire_len;
  kernel_next(k);
}

struct jup_kernel *
jup_kernel_new(const struct kiln_config *cfg, struct loop *loop, struct front *front,
               const struct jup_connection *conn, kiln_error_t *err)
{
  struct jup_kernel *k = xzalloc(sizeof *k);
  k->cfg = cfg;
  k->loop = loop;
  k->front = front;
  /* The largest frame is an execute_request's content: a cell's source,
     JSON-escaped, is at most a few times --max-code.  */
  k->ch = jup_channels_new(loop, conn, cfg->max_message, on_msg, k, err);
  if (k->ch == NULL) {
    free(k);
    return NULL;
  }
  if (conn->key_len == 0)
    log_msg(LOG_WARN, "jupyter: the connection file has no key: messages are not signed, and "
                      "whoever can reach the kernel's ports can run code in its session");
  front_on_interrupt(front, on_sigint, k);
  open_session(k);
  return k;
}

void
jup_kernel_ready(struct jup_kernel *k, const struct front_info *info, kiln_error_t err)
{
  if (err) {
    log_msg(LOG_ERROR, "jupyter: the kernel cannot start: %s", err->msg);
    k->exit_code = 1;
    k->stopping = true;
    loop_stop(k->loop);
    return;
  }
  k->ready = true;
  k->language_version = xstrndup(info->python_version, strcspn(info->python_version, " "));
  /* Answered in the order they came.  */
  struct pending *rev = NULL;
  while (k->info_waiting) {
    struct pending *p = k->info_waiting;
    k->info_waiting = p->next;
    p->next = rev;
    rev = p;
  }
  while (rev) {
    struct pending *p = rev;
    rev = p->next;
    dispatch_control(k, p->m);
    free(p);
  }
  kernel_next(k);
}

int
jup_kernel_exit_code(const struct jup_kernel *k)
{
  return k->exit_code;
}

void
jup_kernel_free(struct jup_kernel *k)
{
  if (k == NULL)
    return;
  k->stopping = true;
  /* A kernel's session ends with it: the next kernel starts afresh, as
     a notebook expects.  */
  close_session(k);
  /* A cell that was making the session (none was open) is still out:
     its reply must not come to a freed kernel.  */
  if (k->running) {
    front_cancel(k->front, k->running->handle);
    jup_msg_free(k->running->m);
    free(k->running->m);
    free(k->running);
    k->running = NULL;
  }
  introspect_forget(k);
  for (struct pending *p = k->queue, *next; p; p = next) {
    next = p->next;
    jup_msg_free(p->m);
    free(p->m);
    free(p);
  }
  for (struct pending *p = k->info_waiting, *next; p; p = next) {
    next = p->next;
    jup_msg_free(p->m);
    free(p->m);
    free(p);
  }
  jup_channels_free(k->ch, LINGER_MS);
  free(k->language_version);
  free(k->session_id);
  free(k);
}
