/* The front's window on the history (store/history.c), in the front's
   own types.  */
#define _GNU_SOURCE
#include "internal.h"

struct page {
  front_history_cb cb;
  void *ctx;
};

static void
one(void *ctx, int64_t id, const struct history_row *r)
{
  struct page *p = ctx;
  struct history_entry e = {
    .id = id,
    .session_id = r->session_id,
    .execution_count = r->execution_count,
    .kind = r->kind ? r->kind : "python",
    .code = r->code,
    .code_len = r->code_len,
    .started_ms = r->started_ms,
    .duration_ms = r->duration_ms,
    .status = r->status,
    .error_type = r->error_type,
    .stdout_bytes = r->stdout_bytes,
    .stderr_bytes = r->stderr_bytes,
    .artifacts = r->artifacts ? r->artifacts : "",
  };
  p->cb(p->ctx, &e);
}

int64_t
front_history(struct front *f, const char *session_id, int64_t before, size_t limit,
              front_history_cb cb, void *ctx, kiln_error_t *err)
{
  if (f->store == NULL)
    return kiln_error_make(err, 0, "there is no database");
  struct page p = { cb, ctx };
  return store_history_page(f->store, session_id, before, limit, one, &p, err);
}
