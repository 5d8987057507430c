/* What a notebook's frontend asks of a session besides its cells:
   completions, an object's documentation and whether a cell is whole
   (front_introspect, served by the worker between cells as a file
   operation is), and the lines a running cell's input() reads.  */
#define _GNU_SOURCE
#include "internal.h"
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
  if (op != FRONT_COMPLETE && op != FRONT_INSPECT && op != FRONT_IS_COMPLETE)
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
