/* Shell commands: queued as a session's requests are, run by its worker
   (kernel/py/shell.c) and answered as a cell is, with the command's exit
   status or signal besides.  The worker passes the deadline's interrupt
   on to the command's process group and kills the group after the
   grace; the front only kills the worker if it does not answer well
   after that (SHELL_BACKSTOP_NS), which would cost the session its
   state.  */
#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "records.h"
#include "util.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

int64_t
front_run_shell(struct front *f, const char *session_id, const char *command, size_t len,
                const char *workdir, double timeout_s, front_reply_cb cb, void *ctx,
                kiln_error_t *err)
{
  const struct kiln_config *cfg = f->cfg;
  if (workdir == NULL)
    workdir = "";
  /* Everything that can refuse the call is checked before a session is
     made for it: a refused call leaves no session behind.  */
  if (len > cfg->max_code)
    return kiln_error_make(err, 0, "the command is %zu bytes, over the %zu-byte limit (--max-code)",
                           len, cfg->max_code);
  /* bash -c takes a C string: whatever followed a NUL would silently not
     run.  */
  if (memchr(command, '\0', len))
    return kiln_error_make(err, 0, "the command must not contain a NUL character");
  if (timeout_s > cfg->max_timeout_s)
    return kiln_error_make(err, 0, "timeout_s %g is over the %g s limit (--max-timeout)", timeout_s,
                           cfg->max_timeout_s);
  if (!rec_path_ok(workdir, strlen(workdir), true)) {
    cleanup_free char *shown = utf8_excerpt(workdir, strlen(workdir), 200);
    return kiln_error_make(err, 0,
                           "workdir '%s' is not a directory under /work: give a path relative to "
                           "/work, without '..', '.' or empty parts (omit it for /work itself)",
                           shown);
  }
  struct session *s = NULL;
  if (session_id) {
    s = session_find(f, session_id);
    if (s == NULL)
      return kiln_error_make(
          err, 0,
          "unknown session '%s' (closed, or never created); omit session_id to start a new "
          "session",
          session_id);
    if (s->nqueued >= cfg->max_queued)
      return kiln_error_make(err, 0, "session %s already has %zu requests waiting (--max-queued)",
                             s->id, s->nqueued);
  } else if ((s = session_open(f, err)) == NULL)
    return -1;
  struct request *r
      = request_new_cell(command, len, timeout_s > 0 ? timeout_s : cfg->timeout_s, cb, ctx);
  r->kind = REQ_SHELL;
  r->u.cell.workdir = xstrdup(workdir);
  r->new_session = session_id == NULL;
  session_enqueue(s, r);
  return f->next_handle;
}

void
shell_frame(struct session *s, const struct request *c, struct fbuf *fb)
{
  /* A command is numbered with the cells: its output is kept under its
     number as theirs is, and the interrupt names it.  */
  s->execution_count++;
  fbuf_init(fb, FRAME_SHELL);
  fbuf_put(fb, TAG_CODE, c->u.cell.code, c->u.cell.len);
  fbuf_put_str(fb, TAG_PATH, c->u.cell.workdir);
  fbuf_put_u64(fb, TAG_CELL_NO, s->execution_count);
  fbuf_put_u64(fb, TAG_GRACE_MS, (uint64_t)(s->front->cfg->grace_s * 1000));
}

void
reply_shell_done(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  if (s == NULL || s->running == NULL || s->running->kind != REQ_SHELL || s->state != S_RUNNING) {
    worker_fault(w, "the worker sent a shell command's end with no command running");
    return;
  }
  kiln_error_t err = NULL;
  uint64_t status = 0, code = 0, sig = 0;
  if (frame_get_u64(fr, TAG_STATUS, false, &status, &err) < 0
      || frame_get_u64(fr, TAG_EXIT_CODE, true, &code, &err) < 0
      || frame_get_u64(fr, TAG_SIGNAL, true, &sig, &err) < 0) {
    worker_fault(w, "the worker sent a malformed shell result: %s", err->msg);
    kiln_error_release(&err);
    return;
  }
  bool exited = frame_get(fr, TAG_EXIT_CODE) != NULL, signalled = frame_get(fr, TAG_SIGNAL) != NULL;
  bool killed = frame_get(fr, TAG_KILLED) != NULL;
  /* A command that ran ended one way, with a status a process can have;
     one that could not start has no end at all.  */
  if ((status == 0 && exited == signalled) || (status != 0 && (exited || signalled)) || code > 255
      || (signalled && (sig == 0 || sig >= 65))) {
    worker_fault(w, "the worker sent an impossible shell result");
    return;
  }
  /* What the command wrote is in the pipes by now: its shell has exited
     (what it left running may still write, as a cell's leftovers may).  */
  worker_read_pipe(w, &w->out, &w->cap_out, true);
  worker_read_pipe(w, &w->err, &w->cap_err, true);

  struct request *c = s->running;
  cleanup_free char *message = NULL;
  const struct field *mf = frame_get(fr, TAG_MESSAGE);
  if (status != 0)
    message = mf ? utf8_sanitize((const char *)mf->data, mf->len, NULL)
                 : xstrdup("the command could not be started");
  bool interrupted = s->kill_ns != 0;
  enum reply_status rs = killed                                    ? REPLY_KILLED
                         : status != 0                             ? REPLY_ERROR
                         : interrupted && (signalled || code != 0) ? REPLY_INTERRUPTED
                         : exited && code == 0                     ? REPLY_OK
                                                                   : REPLY_ERROR;
  struct buf said = { 0 };
  bool lost = s->lost_reason != NULL;
  if (lost) {
    reply_note(&said,
               xasprintf("This command ran in a fresh worker: the session's previous worker %s, "
                         "and its Python variables and imports are gone.",
                         s->lost_reason));
    free(s->lost_reason);
    s->lost_reason = NULL;
  }
  /* The first call after a restore from a snapshot says so, whichever it
     is (reply_done).  */
  if (s->restored_note) {
    lost = lost || s->restored_lost;
    reply_note(&said, steal_pointer(&s->restored_note));
  }
  const char *why = s->cancel_interrupt ? "because it was asked for" : NULL;
  cleanup_free char *deadline = xasprintf("at its %g s deadline", c->timeout_s);
  if (rs == REPLY_KILLED)
    reply_note(&said,
               xasprintf("The command did not stop within %g s of the interrupt (SIGINT) sent %s: "
                         "its process group was killed (SIGKILL). The session's Python state is "
                         "kept.",
                         s->front->cfg->grace_s, why ? why : deadline));
  else if (interrupted)
    reply_note(&said, xasprintf("The command was interrupted (SIGINT to its process group) %s. The "
                                "session's Python state is kept.",
                                why ? why : deadline));
  reply_note_limits(w, &said);
  struct output_cut cut;
  output_geometry(&w->cap_out, &cut);
  struct cell_output *outs;
  char **strings;
  size_t nstrings;
  struct artifact_notes anotes = { 0 };
  size_t nouts = reply_parse_outputs(s, frame_get(fr, TAG_OUTPUTS), NULL, &cut, &outs, &strings,
                                     &nstrings, &anotes);
  cleanup_free char *notices = said.len ? (char *)said.data : NULL;
  struct cell_reply r = {
    .status = rs,
    .execution_count = s->execution_count,
    .err_type = status != 0 ? "ShellError" : NULL,
    .err_message = message,
    .err_traceback = status != 0 ? "" : NULL,
    .err_lineno = -1,
    .err_offset = -1,
    .state_lost = lost,
    .notice = notices,
    .outputs = outs,
    .noutputs = nouts,
    .shell = true,
    .exit_code = exited ? (int)code : -1,
    .signal = signalled ? (int)sig : 0,
    .shell_killed = killed,
  };
  s->state = S_IDLE;
  session_reply(s, &r);
  for (size_t i = 0; i < nstrings; i++)
    free(strings[i]);
  free(strings);
  free(outs);
  session_dispatch(s);
}
