#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "records.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* How the running cell of S ended, answered with R.  Read before
   session_reply forgets the interrupt.  */
static enum front_cell_outcome
outcome_of(const struct session *s, const struct cell_reply *r)
{
  if (s->closed)
    return FRONT_CELL_CLOSED;
  bool interrupted = s->kill_ns != 0;
  /* front_interrupt asks for an interrupt too, but the caller still
     wants the reply: that cell was interrupted, not cancelled.  */
  if (interrupted && s->cancel_interrupt && s->running && s->running->cancelled
      && (r->status == REPLY_INTERRUPTED || r->status == REPLY_KILLED))
    return FRONT_CELL_CANCELLED;
  switch (r->status) {
  case REPLY_OK:
    return FRONT_CELL_OK;
  case REPLY_ERROR:
    return FRONT_CELL_ERROR;
  case REPLY_INTERRUPTED:
    return FRONT_CELL_INTERRUPTED;
  case REPLY_KILLED:
    return FRONT_CELL_KILLED;
  case REPLY_CRASHED:
    break;
  }
  return FRONT_CELL_CRASHED;
}

static const char *const outcome_names[FRONT_CELL_OUTCOMES] = {
  [FRONT_CELL_OK] = "ok",
  [FRONT_CELL_ERROR] = "error",
  [FRONT_CELL_INTERRUPTED] = "interrupted",
  [FRONT_CELL_KILLED] = "killed",
  [FRONT_CELL_CRASHED] = "crashed",
  [FRONT_CELL_CANCELLED] = "cancelled",
  [FRONT_CELL_CLOSED] = "closed",
  [FRONT_CELL_NOT_STARTED] = "not started",
};

/* Records cell C of S, answered with R, in the history.  */
static void
record(struct session *s, const struct request *c, const struct cell_reply *r,
       enum front_cell_outcome outcome)
{
  struct buf names = { 0 };
  for (size_t i = 0; i < r->noutputs; i++) {
    if (r->outputs[i].uri == NULL)
      continue;
    if (names.len)
      buf_append(&names, ",", 1);
    buf_append(&names, r->outputs[i].name, strlen(r->outputs[i].name));
  }
  buf_append(&names, "", 1);
  struct history_row row = {
    .session_id = s->id,
    .execution_count = r->execution_count,
    .kind = c->kind == REQ_SHELL ? "shell" : "python",
    .code = c->u.cell.code,
    .code_len = c->u.cell.len,
    .started_ms = c->u.cell.started_wall_ms,
    .duration_ms = r->duration_ms,
    .status = outcome_names[outcome],
    .error_type = outcome == FRONT_CELL_OK ? NULL : r->err_type,
    .stdout_bytes = r->out_len + r->out_dropped,
    .stderr_bytes = r->err_len + r->err_dropped,
    .artifacts = (const char *)names.data,
  };
  store_history_add(s->front->store, &row);
  buf_free(&names);
}

/* Answers the running cell of S with R (whose output fields are filled
   here from the worker's buffers) and frees the cell.  */
void
session_reply(struct session *s, struct cell_reply *r)
{
  struct request *c = s->running;
  struct front_metrics *m = &s->front->metrics;
  /* A file operation cut short is answered here too, and is no cell.  */
  enum front_cell_outcome outcome = outcome_of(s, r);
  if (c->kind == REQ_CELL)
    m->cells[outcome]++;
  else if (c->kind == REQ_SHELL)
    m->commands[outcome]++;
  s->running = NULL;
  s->kill_ns = 0;
  s->last_used_at = time(NULL);
  s->active_ns = now_ns();
  r->session_id = s->id;
  r->new_session = c->new_session;
  r->duration_ms = (double)(now_ns() - s->started_ns) / 1e6;
  if (c->kind == REQ_CELL)
    histogram_observe(&m->cell_seconds, r->duration_ms / 1e3);
  struct output empty = { 0 };
  struct output *oo = s->w ? &s->w->cap_out : &empty, *oe = s->w ? &s->w->cap_err : &empty;
  cleanup_free char *out = output_take(oo, &r->out_len, &r->out_dropped);
  cleanup_free char *err = output_take(oe, &r->err_len, &r->err_dropped);
  r->out = out;
  r->err = err;
  r->out_kept = cell_output_store(s, r->execution_count, 0, out, r->out_len);
  r->err_kept = cell_output_store(s, r->execution_count, 1, err, r->err_len);
  cleanup_free char *insecure = NULL;
  if (!s->front->cfg->sbx->jail) {
    insecure = xasprintf("%s%sThis session is NOT isolated: kiln runs with --insecure-no-sandbox.",
                         r->notice ? r->notice : "", r->notice ? " " : "");
    r->notice = insecure;
  }
  /* What the cache and the history need of C, which the answer frees.  */
  bool compile = false;
  uint8_t key[STORE_KEY_BYTES];
  cleanup_free char *code = NULL;
  size_t code_len = 0;
  if (c->kind != REQ_FILE)
    record(s, c, r, outcome);
  if (c->kind == REQ_CELL) {
    if ((compile = c->u.cell.cache_miss)) {
      memcpy(key, c->u.cell.key, sizeof key);
      code = steal_pointer(&c->u.cell.code);
      code_len = c->u.cell.len;
    }
  }
  request_answer(c, r, NULL);
  /* After the answer, so that the helper's work never delays it.  */
  if (compile)
    compiler_request(s->front, key, code, code_len);
  /* Spares are replaced after a reply, not when one is taken: the forks
     would otherwise compete for the CPU with the cell being answered.  */
  spares_refill_soon(s->front);
}

void
session_fail_queue(struct session *s, const char *type, const char *message)
{
  while (s->queue) {
    struct request *c = s->queue;
    s->queue = c->next;
    s->nqueued--;
    request_fail(s, c, type, message);
  }
  s->queue_tail = NULL;
}

/* The worker of S is gone (reaped, or killed and detached).  Answers the
   running cell, if any, and leaves S lost; the next cell gets a fresh
   worker.  */
void
session_lose(struct session *s, enum reply_status status, const char *type, const char *why)
{
  struct worker *w = s->w;
  if (s->running) {
    cleanup_free char *msg
        = xasprintf("The session's worker %s; the session's state (variables, imports) was "
                    "lost. The next call with this session_id starts a fresh interpreter.",
                    why);
    struct cell_reply r = {
      .status = status,
      .execution_count = s->execution_count,
      .err_type = type,
      .err_message = msg,
      .err_traceback = "",
      .err_lineno = -1,
      .err_offset = -1,
      .state_lost = false,
      .notice = msg,
    };
    session_reply(s, &r);
  }
  if (w) {
    w->session = NULL;
    s->w = NULL;
  }
  free(s->lost_reason);
  s->lost_reason = NULL;
  if (s->state == S_RESTORING) {
    /* It died loading the snapshot (a hostile __setstate__, say): the
       snapshot is not tried again, and the session starts fresh.  */
    s->restore_pending = false;
    s->snap_deadline_ns = 0;
    free(s->restored_note);
    s->restored_note = xasprintf("This session's snapshot could not be restored: the worker "
                                 "loading it %s. It starts fresh: its variables and files are "
                                 "gone.",
                                 why);
    s->restored_lost = true;
    store_session_forget(s->front->store, s->id, false);
  } else
    s->lost_reason = xstrdup(why);
  s->state = S_LOST;
  s->execution_count = 0;
  /* Cells queued behind the lost one run in the replacement.  */
  if (s->queue)
    session_dispatch(s);
}

static const char known_file_mime[] = FILE_MIME;

const char *
reply_static_mime(const char *m, size_t n)
{
  static const char *const known[]
      = { "image/png",     "image/jpeg", "image/svg+xml",    "text/plain", "text/html",
          "text/markdown", "text/latex", "application/json", FILE_MIME };
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strlen(known[i]) == n && memcmp(known[i], m, n) == 0)
      return strcmp(known[i], FILE_MIME) == 0 ? known_file_mime : known[i];
  return NULL;
}

void
reply_note(struct buf *b, char *text)
{
  if (b->len) {
    b->len--; /* the NUL */
    buf_append(b, " ", 1);
  }
  buf_append(b, text, strlen(text));
  buf_append(b, "", 1);
  free(text);
}

void
reply_note_limits(struct worker *w, struct buf *said)
{
  const struct sbx_config *sbx = w->front->cfg->sbx;
  uint64_t oom_kills;
  bool pids;
  if (!worker_cg_events(w, &oom_kills, &pids))
    return;
  bool oom = oom_kills > 0;
  if (oom && !w->oom_told)
    reply_note(said, xasprintf("A process of this session was killed for running out of memory "
                               "(the session's limit is %zu MiB).",
                               sbx->cg_limits.memory >> 20));
  else if (pids && !w->pids_told)
    reply_note(said, xasprintf("This session reached its process limit (%u processes and "
                               "threads): creating more failed.",
                               sbx->cg_limits.pids));
  w->oom_told |= oom;
  w->pids_told |= pids;
}

/* Where in the reply's stdout the K-th output (inline copies not
   counted) was shown: the place its mark (MARKS_F, from the worker)
   noted in the running cell's stdout, as CUT keeps it; SIZE_MAX when it
   has none, which puts it at the end.  *LIVE: it was passed to the
   display watcher there.  */
static size_t
shown_at(const struct session *s, const struct field *marks_f, size_t k,
         const struct output_cut *cut, bool *live)
{
  const struct request *c = s->running;
  *live = false;
  if (marks_f == NULL || (k + 1) * 4 > marks_f->len)
    return SIZE_MAX;
  const uint8_t *p = marks_f->data + k * 4;
  uint32_t mark
      = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  if (mark >= c->u.cell.nmarks)
    return SIZE_MAX;
  *live = c->u.cell.marks[mark].live;
  return output_map(cut, c->u.cell.marks[mark].at);
}

/* Parses the worker's packed outputs (worker.c put_outputs) into *OUT,
   storing images as artifacts.  Returns how many; *STRINGS holds the
   strings the outputs point to (the caller frees each and the array).
   Anything malformed ends the parse: a lying worker loses its outputs,
   nothing more.  */
size_t
reply_parse_outputs(struct session *s, const struct field *fl, const struct field *marks_f,
                    const struct output_cut *cut, struct cell_output **out, char ***strings,
                    size_t *nstrings, struct artifact_notes *notes)
{
  size_t n = 0, off = 0, k = 0;
  *out = NULL;
  *strings = NULL;
  *nstrings = 0;
  if (fl == NULL)
    return 0;
  struct rec_output ro;
  int got;
  while ((got = rec_output_next(fl->data, fl->len, &off, &ro)) == 1) {
    const char *mime = ro.mime;
    size_t ml = ro.mime_len, nl = ro.name_len, dl = ro.data_len;
    const uint8_t *data = ro.data;
    uint32_t w = ro.width, h = ro.height;
    bool is_inline = ml > 7 && memcmp(mime + ml - 7, ";inline", 7) == 0;
    const char *m = reply_static_mime(mime, is_inline ? ml - 7u : ml);
    if (m == NULL) {
      k += !is_inline;
      continue;
    }
    if (is_inline) {
      /* The downscaled copy of the image just before it.  */
      if (n > 0 && (*out)[n - 1].uri && strcmp((*out)[n - 1].mime, m) == 0) {
        (*out)[n - 1].inline_data = data;
        (*out)[n - 1].inline_len = dl;
        (*out)[n - 1].inline_width = w;
        (*out)[n - 1].inline_height = h;
      }
      continue;
    }
    bool live;
    size_t pos = shown_at(s, marks_f, k++, cut, &live);
    struct cell_output o = { .mime = m,
                             .data = data,
                             .len = dl,
                             .width = w,
                             .height = h,
                             .out_pos = pos,
                             .shown_live = live };
    *strings = xrealloc(*strings, (*nstrings + 2) * sizeof **strings);
    if (m == known_file_mime) {
      /* A file the cell created or changed under /work: NAME is its
         path, WIDTH its size.  */
      const char *path = ro.name;
      if (!rec_path_ok(path, nl, false))
        continue;
      char *name = xstrndup(path, nl);
      char *uri = xasprintf("kiln://sessions/%s/files/%s", s->id, name);
      (*strings)[(*nstrings)++] = name;
      (*strings)[(*nstrings)++] = uri;
      o.name = name;
      o.uri = uri;
      o.data = (const uint8_t *)"";
      o.len = w;
      o.width = o.height = 0;
      *out = xrealloc(*out, (n + 1) * sizeof **out);
      (*out)[n++] = o;
      continue;
    }
    if (strncmp(m, "image/", 6) == 0) {
      struct artifact *a = artifact_store(s, m, data, dl, w, h, notes);
      if (a == NULL)
        continue;
      char *name = xstrdup(a->name);
      char *uri = xasprintf("kiln://sessions/%s/artifacts/%s", s->id, a->name);
      (*strings)[(*nstrings)++] = name;
      (*strings)[(*nstrings)++] = uri;
      o.name = name;
      o.uri = uri;
    } else {
      /* Text forms must be valid UTF-8 for JSON.  */
      size_t tl;
      char *text = utf8_sanitize((const char *)data, dl, &tl);
      (*strings)[(*nstrings)++] = text;
      o.data = (const uint8_t *)text;
      o.len = tl;
      o.name = "";
    }
    *out = xrealloc(*out, (n + 1) * sizeof **out);
    (*out)[n++] = o;
  }
  return n;
}

void
reply_done(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  kiln_error_t err = NULL;
  uint64_t status = 0, lineno = 0, offset = 0, outs_dropped = 0;
  if (s == NULL || s->running == NULL || s->state != S_RUNNING) {
    worker_fault(w, "the worker sent a reply with no cell running");
    return;
  }
  if (frame_get_u64(fr, TAG_STATUS, false, &status, &err) < 0 || status > CELL_STATUS_MAX
      || frame_get_u64(fr, TAG_ERR_LINENO, true, &lineno, &err) < 0
      || frame_get_u64(fr, TAG_ERR_OFFSET, true, &offset, &err) < 0
      || frame_get_u64(fr, TAG_OUTPUTS_DROPPED, true, &outs_dropped, &err) < 0) {
    worker_fault(w, "the worker sent a malformed reply: %s", err ? err->msg : "bad status");
    kiln_error_release(&err);
    return;
  }
  input_cell_ended(s, s->running);
  /* Everything the cell wrote is in the pipes by now (the worker flushes
     before DONE): collect it so it belongs to this cell.  */
  worker_read_pipe(w, &w->out, &w->cap_out, true);
  worker_read_pipe(w, &w->err, &w->cap_err, true);

  static const enum frame_tag tags[]
      = { TAG_RESULT, TAG_ERR_TYPE, TAG_ERR_MESSAGE, TAG_ERR_TRACEBACK };
  char *text[4] = { NULL };
  for (size_t i = 0; i < 4; i++) {
    const struct field *fl = frame_get(fr, tags[i]);
    if (fl)
      text[i] = utf8_sanitize((const char *)fl->data, fl->len, NULL);
  }
  cleanup_free char *notice = NULL;
  const char *message = text[2];
  if (status == CELL_INTERRUPTED && s->kill_ns != 0) {
    if (s->cancel_interrupt)
      notice = xstrdup("The cell was interrupted on request; the session's state is kept.");
    else
      notice
          = xasprintf("The cell was interrupted at its %g s deadline; the session's state is kept.",
                      s->running->timeout_s);
    message = notice;
  } else if (status == CELL_EXITED)
    notice = xstrdup("The cell called exit(0) and stopped there; the session keeps its state "
                     "(variables, imports): exit does not end a session.");
  struct cell_output *outs;
  char **strings;
  size_t nstrings;
  struct artifact_notes anotes = { 0 };
  struct output_cut cut;
  output_geometry(&w->cap_out, &cut);
  size_t nouts = reply_parse_outputs(s, frame_get(fr, TAG_OUTPUTS), frame_get(fr, TAG_OUTPUT_MARKS),
                                     &cut, &outs, &strings, &nstrings, &anotes);
  struct cell_reply r = {
    .outputs = outs,
    .noutputs = nouts,
    .outputs_dropped = outs_dropped,
    .status = status == CELL_OK || status == CELL_EXITED ? REPLY_OK
              : status == CELL_ERROR                     ? REPLY_ERROR
                                                         : REPLY_INTERRUPTED,
    .execution_count = s->execution_count,
    .result = text[0],
    .err_type = text[1],
    .err_message = message ? message : (text[1] ? "" : NULL),
    .err_traceback = text[3] ? text[3] : (text[1] ? "" : NULL),
    .err_lineno = frame_get(fr, TAG_ERR_LINENO) ? (int64_t)lineno : -1,
    .err_offset = frame_get(fr, TAG_ERR_OFFSET) ? (int64_t)offset : -1,
    .notice = notice,
  };
  /* Everything the reader should know besides the output, one sentence
     each.  */
  struct buf said = { 0 };
  if (s->lost_reason) {
    r.state_lost = true;
    reply_note(&said,
               xasprintf("This cell ran in a fresh interpreter: the session's previous worker %s, "
                         "and its variables and imports are gone.",
                         s->lost_reason));
    free(s->lost_reason);
    s->lost_reason = NULL;
  }
  if (s->restored_note) {
    r.state_lost = r.state_lost || s->restored_lost;
    reply_note(&said, steal_pointer(&s->restored_note));
  }
  if (notice)
    reply_note(&said, xstrdup(notice));
  reply_note_limits(w, &said);
  if (outs_dropped)
    reply_note(&said,
               xasprintf("%llu more image(s) or displayed object(s) were dropped: a cell's reply "
                         "carries at most %zu of them, %zu MiB in all.",
                         (unsigned long long)outs_dropped, s->front->limits.outputs_count,
                         s->front->limits.outputs_bytes >> 20));
  char *stored = artifact_notice(&anotes);
  if (stored)
    reply_note(&said, stored);
  cleanup_free char *notices = said.len ? (char *)said.data : NULL;
  r.notice = notices;
  s->state = S_IDLE;
  session_reply(s, &r);
  for (size_t i = 0; i < 4; i++)
    free(text[i]);
  for (size_t i = 0; i < nstrings; i++)
    free(strings[i]);
  free(strings);
  free(outs);
  session_dispatch(s);
}

/* A listing as the API gives it, decoded from the worker's records: the
   paths are sanitised copies, owned here.  */
struct listing_decoded {
  struct file_entry *entries;
  size_t n;
  bool truncated;
};

static int
listing_decode(const struct field *fl, struct listing_decoded *ld)
{
  size_t off = 0;
  struct rec_entry e;
  int got;
  while ((got = rec_entry_next(fl->data, fl->len, &off, &e)) == 1) {
    if (ld->n == REC_LIST_MAX_ENTRIES) {
      ld->truncated = true;
      break;
    }
    ld->entries = xrealloc(ld->entries, (ld->n + 1) * sizeof *ld->entries);
    ld->entries[ld->n++] = (struct file_entry){
      .kind = e.kind,
      .size = e.size,
      .mtime_ns = e.mtime_ns > INT64_MAX ? INT64_MAX : (int64_t)e.mtime_ns,
      .path = utf8_sanitize(e.path, e.path_len, NULL),
    };
  }
  return got < 0 ? -1 : 0;
}

static void
listing_free(struct listing_decoded *ld)
{
  for (size_t i = 0; i < ld->n; i++)
    free((char *)ld->entries[i].path);
  free(ld->entries);
}

void
reply_file_result(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  uint64_t status = 0;
  kiln_error_t err = NULL;
  if (s == NULL || s->running == NULL || s->running->kind != REQ_FILE) {
    worker_fault(w, "the worker sent a file result nobody asked for");
    return;
  }
  if (frame_get_u64(fr, TAG_STATUS, false, &status, &err) < 0) {
    worker_fault(w, "the worker sent a malformed file result: %s", err->msg);
    kiln_error_release(&err);
    return;
  }
  struct request *c = s->running;
  const struct field *data = frame_get(fr, TAG_DATA), *listing = frame_get(fr, TAG_LISTING);
  bool read = c->u.file.op == FRONT_FILE_READ || c->u.file.op == FRONT_FILE_READ_PART;
  if (data && data->len > c->u.file.max_bytes && read) {
    worker_fault(w, "the worker sent more file data than asked for");
    return;
  }
  uint64_t size = data ? data->len : 0;
  if (frame_get_u64(fr, TAG_SIZE, true, &size, &err) < 0) {
    worker_fault(w, "the worker sent a malformed file result: %s", err->msg);
    kiln_error_release(&err);
    return;
  }
  cleanup_free char *message = NULL;
  const struct field *mf = frame_get(fr, TAG_MESSAGE);
  if (mf)
    message = utf8_sanitize((const char *)mf->data, mf->len, NULL);
  struct file_reply r = {
    .session_id = s->id,
    .status = (int)(status > 4096 ? EIO : status),
    .message = message,
    .data = data ? data->data : NULL,
    .len = data ? data->len : 0,
    .size = size,
    .new_session = c->new_session,
  };
  struct listing_decoded ld = { 0 };
  if (listing && c->u.file.op == FRONT_FILE_LIST && listing_decode(listing, &ld) < 0) {
    worker_fault(w, "the worker sent a malformed listing");
    return;
  }
  r.entries = ld.entries;
  r.nentries = ld.n;
  r.truncated = ld.truncated || frame_get(fr, TAG_TRUNCATED) != NULL;
  s->running = NULL;
  s->state = S_IDLE;
  s->last_used_at = time(NULL);
  bool took_spare = c->new_session;
  request_answer(c, NULL, &r);
  listing_free(&ld);
  session_dispatch(s);
  /* As after a cell's reply (session_reply): the spare this request's
     new session took is replaced now that it is answered.  */
  if (took_spare)
    spares_refill_soon(s->front);
}
