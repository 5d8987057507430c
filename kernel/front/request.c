/* Requests: made by the front's API calls, queued per session, answered
   exactly once (or dropped when cancelled).  */
#define _GNU_SOURCE
#include "internal.h"
#include "util.h"

#include <errno.h>
#include <string.h>

static struct request *
request_new(enum request_kind kind, double timeout_s, void *ctx)
{
  struct request *r = xzalloc(sizeof *r);
  r->kind = kind;
  r->timeout_s = timeout_s;
  r->ctx = ctx;
  return r;
}

/* CODE is copied.  The caller owns the request until it is enqueued.  */
struct request *
request_new_cell(const char *code, size_t len, double timeout_s, front_reply_cb cb, void *ctx)
{
  struct request *r = request_new(REQ_CELL, timeout_s, ctx);
  r->u.cell.code = xmalloc(len ? len : 1);
  memcpy(r->u.cell.code, code, len);
  r->u.cell.len = len;
  r->u.cell.cb = cb;
  return r;
}

/* PATH and DATA are copied.  File operations are quick: a worker that
   takes longer than the fixed deadline is stuck.  */
struct request *
request_new_file(enum front_file_op op, const char *path, size_t path_len, uint64_t offset,
                 const uint8_t *data, size_t len, uint64_t max_bytes, front_file_cb cb, void *ctx)
{
  struct request *r = request_new(REQ_FILE, 10, ctx);
  r->u.file.op = op;
  r->u.file.offset = offset;
  r->u.file.path = xstrndup(path, path_len);
  r->u.file.data = xmalloc(len ? len : 1);
  if (len)
    memcpy(r->u.file.data, data, len);
  r->u.file.len = len;
  r->u.file.max_bytes = max_bytes;
  r->u.file.cb = cb;
  return r;
}

void
request_free(struct request *r)
{
  if (r == NULL)
    return;
  if (r->kind == REQ_CELL)
    free(r->u.cell.code);
  else {
    free(r->u.file.path);
    free(r->u.file.data);
  }
  free(r);
}

/* The one way a request is answered: CR for a cell, FR for a file
   operation.  A file operation answered with a cell reply was cut short
   (its worker died, its session closed) and gets EIO with the reply's
   message.  Frees R.  */
void
request_answer(struct request *r, const struct cell_reply *cr, const struct file_reply *fr)
{
  if (!r->cancelled) {
    if (r->kind == REQ_CELL && cr)
      r->u.cell.cb(r->ctx, cr);
    else if (r->kind == REQ_FILE && fr)
      r->u.file.cb(r->ctx, fr);
    else if (r->kind == REQ_FILE) {
      struct file_reply cut = { .session_id = cr->session_id,
                                .status = EIO,
                                .message = cr->err_message ? cr->err_message : "interrupted",
                                .new_session = r->new_session };
      r->u.file.cb(r->ctx, &cut);
    }
  }
  request_free(r);
}

/* Answers R, which never reached a worker, with an error of TYPE.  */
void
request_fail(struct session *s, struct request *r, const char *type, const char *message)
{
  struct cell_reply cr = {
    .session_id = s->id,
    .status = REPLY_ERROR,
    .execution_count = s->execution_count,
    .out = "",
    .err = "",
    .err_type = type,
    .err_message = message,
    .err_traceback = "",
    .err_lineno = -1,
    .err_offset = -1,
    .new_session = r->new_session,
  };
  request_answer(r, &cr, NULL);
}

/* Queues R (now owned by S) behind S's other requests and starts it if
   S is idle.  */
void
session_enqueue(struct session *s, struct request *r)
{
  r->handle = ++s->front->next_handle;
  if (s->queue_tail)
    s->queue_tail->next = r;
  else
    s->queue = r;
  s->queue_tail = r;
  s->nqueued++;
  session_dispatch(s);
}
