/* What a notebook's frontend asks of a session besides its cells:
   completions, an object's documentation and whether a cell is whole
   (front_introspect, served by the worker between cells as a file
   operation is), the lines a running cell's input() reads, and what it
   shows, updates and clears as it runs.  */
#define _GNU_SOURCE
#include "internal.h"
#include "records.h"
#include "utf8.h"
#include "util.h"

#include <string.h>

int64_t
front_introspect(struct front *f, const char *session_id, enum front_introspect_op op,
                 const char *code, size_t len, uint64_t cursor, front_file_cb cb, void *ctx,
                 kiln_error_t *err)
{
  struct session *s = session_id ? session_find(f, session_id) : NULL;
  if (s == NULL)
    return kiln_error_make(err, 0, "unknown session '%s'", session_id ? session_id : "");
  if (op != FRONT_COMPLETE && op != FRONT_INSPECT && op != FRONT_IS_COMPLETE
      && op != FRONT_EVALUATE)
    return kiln_error_make(err, 0, "no such introspection: %d", (int)op);
  if (len > f->cfg->max_code)
    return kiln_error_make(err, 0, "%zu bytes of code is over the %zu-byte limit (--max-code)", len,
                           f->cfg->max_code);
  if (memchr(code, '\0', len))
    return kiln_error_make(err, 0, "the code holds a NUL character");
  if (s->nqueued >= f->cfg->max_queued)
    return kiln_error_make(err, 0, "session %s already has %zu requests waiting (--max-queued)",
                           s->id, s->nqueued);
  /* Answers are bounded as a cell's texts are.  */
  struct request *r = request_new_file(FRONT_FILE_READ, code, len, cursor, NULL, 0,
                                       f->limits.text_bytes, cb, ctx);
  r->u.file.introspect = op;
  /* Expressions are code as a cell is, with a cell's deadline; the other
     questions keep a file operation's.  */
  if (op == FRONT_EVALUATE)
    r->timeout_s = f->cfg->timeout_s;
  session_enqueue(s, r);
  return f->next_handle;
}

int
front_watch_input(struct front *f, int64_t handle, front_input_cb cb, void *ctx)
{
  struct request *found = request_find(f, handle);
  if (found == NULL || found->kind != REQ_CELL)
    return -1;
  found->u.cell.input_cb = cb;
  found->u.cell.input_ctx = ctx;
  return 0;
}

int
front_input_reply(struct front *f, int64_t handle, const char *text, size_t len, kiln_error_t *err)
{
  struct session *s = f->sessions;
  while (s && !(s->running && s->running->handle == handle))
    s = s->next;
  struct request *c = s ? s->running : NULL;
  if (c == NULL || c->kind != REQ_CELL || !c->u.cell.input_pending || s->w == NULL)
    return kiln_error_make(err, 0, "the cell is not waiting for input");
  if (len > f->limits.text_bytes)
    return kiln_error_make(err, 0, "%zu bytes of input is over the %zu-byte limit", len,
                           f->limits.text_bytes);
  c->u.cell.input_pending = false;
  struct fbuf fb;
  fbuf_init(&fb, FRAME_INPUT_REPLY);
  fbuf_put(&fb, TAG_DATA, text, len);
  fbuf_finish(&fb);
  worker_send(s->w, &fb);
  fbuf_free(&fb);
  return 0;
}

/* The message input() raises EOFError with where nobody answers.  */
static const char NO_STDIN[] = "input() is not available: cells run without a terminal or stdin; "
                               "put the data in the code or in a file instead";

static void
send_input_reply(struct worker *w, const char *why)
{
  struct fbuf fb;
  fbuf_init(&fb, FRAME_INPUT_REPLY);
  fbuf_put_u64(&fb, TAG_STATUS, 1);
  fbuf_put_str(&fb, TAG_MESSAGE, why);
  fbuf_finish(&fb);
  worker_send(w, &fb);
  fbuf_free(&fb);
}

void
reply_input(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  struct request *c = s && s->state == S_RUNNING ? s->running : NULL;
  cleanup_free char *prompt = NULL;
  uint64_t password = 0;
  kiln_error_t err = NULL;
  if (c == NULL || c->kind != REQ_CELL) {
    worker_fault(w, "the worker asked for input with no cell running");
    return;
  }
  if (frame_get_str(fr, TAG_MESSAGE, false, &prompt, NULL, &err) < 0
      || frame_get_u64(fr, TAG_KIND, false, &password, &err) < 0) {
    worker_fault(w, "the worker sent a malformed input request: %s", err->msg);
    kiln_error_release(&err);
    return;
  }
  /* An input() interrupted and caught, then called again: the first
     one's answer, which the worker will drop, goes now.  */
  input_cell_ended(s, c);
  if (c->u.cell.input_cb == NULL || c->cancelled) {
    send_input_reply(w, NO_STDIN);
    return;
  }
  c->u.cell.input_pending = true;
  cleanup_free char *shown = utf8_sanitize(prompt, strlen(prompt), NULL);
  c->u.cell.input_cb(c->u.cell.input_ctx, shown, password != 0);
}

void
input_cell_ended(struct session *s, struct request *c)
{
  /* The worker was interrupted while it waited and owes a read of the
     answer: one is sent, so that nothing later is taken for it.  */
  if (c->kind == REQ_CELL && c->u.cell.input_pending && s->w) {
    c->u.cell.input_pending = false;
    send_input_reply(s->w, "the cell ended before its input came");
  }
}

/* Room in a worker's queue of answers for those it has not read yet
   while it waits for one: a few frames' headers.  */
#define ANSWERS_SLACK (64u << 10)

int
front_watch_display(struct front *f, int64_t handle, front_display_cb cb, void *ctx)
{
  struct request *found = request_find(f, handle);
  if (found == NULL || found->kind != REQ_CELL)
    return -1;
  found->u.cell.display_cb = cb;
  found->u.cell.display_ctx = ctx;
  return 0;
}

/* Whether C may pass on D (LEN bytes of outputs) to its watcher, within
   the caps a reply's outputs have: the watcher's side (a notebook)
   keeps what it is given, so a cell that shows or updates without end
   is stopped where its reply would be.  Counts D when it may.  */
static bool
live_allowed(struct front *f, struct request *c, const struct rec_display *d)
{
  if (d->kind == DISPLAY_CLEAR)
    return true;
  if (d->kind == DISPLAY_SHOW && c->u.cell.live_shows >= f->limits.outputs_count)
    return false;
  if (d->outputs_len > f->limits.outputs_bytes - c->u.cell.live_bytes)
    return false;
  c->u.cell.live_shows += d->kind == DISPLAY_SHOW;
  c->u.cell.live_bytes += d->outputs_len;
  return true;
}

/* Passes D on to C's watcher.  Its outputs were checked whole by
   rec_display_parse; forms of a mime the front does not know, the
   copies to send inline and files are left out.  */
static void
pass_display(struct request *c, const struct rec_display *d)
{
  struct cell_output outs[16];
  char *texts[16];
  size_t n = 0, off = 0;
  struct rec_output ro;
  while (n < 16 && d->outputs && rec_output_next(d->outputs, d->outputs_len, &off, &ro) == 1) {
    const char *m = reply_static_mime(ro.mime, ro.mime_len);
    if (m == NULL || strcmp(m, FILE_MIME) == 0)
      continue;
    bool dup = false;
    for (size_t i = 0; i < n; i++)
      dup = dup || strcmp(outs[i].mime, m) == 0;
    if (dup)
      continue;
    outs[n] = (struct cell_output){ .mime = m,
                                    .name = "",
                                    .data = ro.data,
                                    .len = ro.data_len,
                                    .width = ro.width,
                                    .height = ro.height,
                                    .out_pos = SIZE_MAX };
    texts[n] = NULL;
    if (strncmp(m, "image/", 6) != 0 || strcmp(m, "image/svg+xml") == 0) {
      size_t tl;
      texts[n] = utf8_sanitize((const char *)ro.data, ro.data_len, &tl);
      outs[n].data = (const uint8_t *)texts[n];
      outs[n].len = tl;
    }
    n++;
  }
  cleanup_free char *id
      = d->display_id ? utf8_sanitize(d->display_id, d->display_id_len, NULL) : NULL;
  struct front_display fd = {
    .kind = d->kind == DISPLAY_SHOW     ? FRONT_DISPLAY_SHOW
            : d->kind == DISPLAY_UPDATE ? FRONT_DISPLAY_UPDATE
                                        : FRONT_DISPLAY_CLEAR,
    .display_id = id,
    .wait = d->wait,
    .outputs = outs,
    .noutputs = n,
  };
  c->u.cell.display_cb(c->u.cell.display_ctx, &fd);
  for (size_t i = 0; i < n; i++)
    free(texts[i]);
}

void
reply_display(struct worker *w, struct frame *fr)
{
  struct session *s = w->session;
  struct request *c = s && s->state == S_RUNNING ? s->running : NULL;
  struct rec_display d;
  kiln_error_t err = NULL;
  if (rec_display_parse(fr, &d, &err) < 0) {
    worker_fault(w, "the worker sent a malformed display: %s", err->msg);
    kiln_error_release(&err);
    return;
  }
  /* A display between cells (a thread the cell left running) is
     answered and dropped, as a mark is.  */
  if (c && c->kind == REQ_CELL) {
    if (d.kind == DISPLAY_SHOW && c->u.cell.nmarks >= MAX_MARKS) {
      worker_fault(w, "the worker sent more than %d marks in one cell", MAX_MARKS);
      return;
    }
    /* The worker flushed before sending and waits for MARKED: what it
       printed before is in the pipes, and goes to the watcher first.  */
    worker_read_pipe(w, &w->out, &w->cap_out, true);
    worker_read_pipe(w, &w->err, &w->cap_err, true);
    bool live = c->u.cell.display_cb && !c->cancelled && live_allowed(w->front, c, &d);
    if (live) {
      watch_flush(c, now_ns(), true);
      pass_display(c, &d);
    }
    if (d.kind == DISPLAY_SHOW) {
      c->u.cell.marks = xrealloc(c->u.cell.marks, (c->u.cell.nmarks + 1) * sizeof *c->u.cell.marks);
      c->u.cell.marks[c->u.cell.nmarks++]
          = (struct cell_mark){ .at = w->cap_out.total, .live = live };
    }
  }
  /* A worker waits for each answer before it sends another display;
     one that does not read them would have the front queue answers
     without end.  What may wait besides is at most an input() line.  */
  if (w->outq.len > w->front->limits.text_bytes + ANSWERS_SLACK) {
    worker_fault(w, "the worker sends displays without reading the answers (%zu bytes queued)",
                 w->outq.len);
    return;
  }
  struct fbuf fb;
  fbuf_init(&fb, FRAME_MARKED);
  fbuf_finish(&fb);
  worker_send(w, &fb);
  fbuf_free(&fb);
}
