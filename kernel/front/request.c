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
  if (r->kind != REQ_FILE) {
    free(r->u.cell.code);
    free(r->u.cell.workdir);
    free(r->u.cell.marks);
    if (r->u.cell.watch) {
      buf_free(&r->u.cell.watch->pend[0]);
      buf_free(&r->u.cell.watch->pend[1]);
      free(r->u.cell.watch);
    }
  } else {
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
    if (r->kind != REQ_FILE && cr) {
      watch_flush(r, now_ns(), true);
      r->u.cell.cb(r->ctx, cr);
    } else if (r->kind == REQ_FILE && fr)
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

struct request *
request_find(struct front *f, int64_t handle)
{
  for (struct session *s = f->sessions; s; s = s->next) {
    if (s->running && s->running->handle == handle)
      return s->running;
    for (struct request *r = s->queue; r; r = r->next)
      if (r->handle == handle)
        return r;
  }
  return NULL;
}

/* Answers R, which never reached a worker, with an error of TYPE.  */
void
request_fail(struct session *s, struct request *r, const char *type, const char *message)
{
  /* The front fails a queued request for one of two reasons: its
     session is being closed, or no worker could be started for it.  */
  enum front_cell_outcome outcome = r->cancelled ? FRONT_CELL_CANCELLED
                                    : s->closed  ? FRONT_CELL_CLOSED
                                                 : FRONT_CELL_NOT_STARTED;
  if (r->kind == REQ_CELL)
    s->front->metrics.cells[outcome]++;
  else if (r->kind == REQ_SHELL)
    s->front->metrics.commands[outcome]++;
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

/* ---------------------------------------------------------------- watch */

/* The length of the longest prefix of [S, S+N) that ends on a whole
   character.  */
static size_t
whole_chars(const char *s, size_t n)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t i = n;
  for (int k = 0; k < 3 && i > 0 && (u[i - 1] & 0xc0) == 0x80; k++)
    i--;
  if (i == 0 || u[i - 1] < 0xc0)
    return n;
  size_t need = u[i - 1] >= 0xf0 ? 4 : u[i - 1] >= 0xe0 ? 3 : 2;
  return n - (i - 1) >= need ? n : i - 1;
}

int64_t
watch_due(const struct request *r)
{
  const struct watch *w = r->kind != REQ_FILE ? r->u.cell.watch : NULL;
  if (w == NULL || r->cancelled || (w->pend[0].len == 0 && w->pend[1].len == 0))
    return -1;
  return w->last_ns + w->interval_ns;
}

int64_t
watch_flush(struct request *r, int64_t now, bool force)
{
  struct watch *w = r->kind != REQ_FILE ? r->u.cell.watch : NULL;
  if (w == NULL || r->cancelled || (w->pend[0].len == 0 && w->pend[1].len == 0))
    return -1;
  if (!force && now < w->last_ns + w->interval_ns)
    return w->last_ns + w->interval_ns;
  for (int i = 0; i < 2; i++) {
    struct buf *b = &w->pend[i];
    size_t n = force ? b->len : whole_chars((const char *)b->data, b->len);
    if (n == 0)
      continue;
    size_t clean_len;
    cleanup_free char *clean = utf8_sanitize((const char *)b->data, n, &clean_len);
    uint64_t skipped = w->skipped[i];
    buf_consume(b, n);
    w->skipped[i] = 0;
    w->cb(w->ctx, i + 1, clean, clean_len, skipped);
  }
  w->last_ns = now;
  return -1;
}

void
watch_feed(struct session *s, int stream, const char *data, size_t n, int64_t now)
{
  struct request *r = s->running;
  if (r == NULL || r->kind == REQ_FILE || r->u.cell.watch == NULL || r->cancelled || n == 0)
    return;
  struct watch *w = r->u.cell.watch;
  struct buf *b = &w->pend[stream];
  if (n > w->max_bytes) {
    w->skipped[stream] += b->len + (n - w->max_bytes);
    buf_consume(b, b->len);
    data += n - w->max_bytes;
    n = w->max_bytes;
  }
  buf_append(b, data, n);
  if (b->len > w->max_bytes) {
    size_t drop = b->len - w->max_bytes;
    /* Not in the middle of a character.  */
    while (drop < b->len && (b->data[drop] & 0xc0) == 0x80)
      drop++;
    buf_consume(b, drop);
    w->skipped[stream] += drop;
  }
  watch_flush(r, now, false);
}
