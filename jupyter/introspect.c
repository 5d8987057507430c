/* The shell messages a frontend sends about code rather than to run it:
   complete_request, inspect_request and is_complete_request, answered by
   the session's interpreter between its cells (front_introspect), and
   history_request, answered from the store (front_history).  */
#define _GNU_SOURCE
#include "introspect.h"
#include "log.h"
#include "util.h"

#include <fnmatch.h>
#include <string.h>

/* A question on its way through the front.  */
struct ask {
  struct jup_kernel *k;
  struct jup_msg *m; /* owned */
  enum front_introspect_op op;
  json_int_t cursor;
  int64_t handle; /* the front's, for front_cancel */
};

/* What each question gets when the session cannot answer: no matches,
   nothing found, "unknown" (the frontend decides).  */
static json_t *
fallback(const struct ask *a)
{
  switch (a->op) {
  case FRONT_COMPLETE:
    return json_pack("{s:s, s:[], s:I, s:I, s:{}}", "status", "ok", "matches", "cursor_start",
                     a->cursor, "cursor_end", a->cursor, "metadata");
  case FRONT_INSPECT:
    return json_pack("{s:s, s:b, s:{}, s:{}}", "status", "ok", "found", 0, "data", "metadata");
  case FRONT_IS_COMPLETE:
  case FRONT_EVALUATE: /* execute.c's, never asked here */
    break;
  }
  return json_pack("{s:s}", "status", "unknown");
}

static const char *
reply_type(enum front_introspect_op op)
{
  return op == FRONT_COMPLETE  ? "complete_reply"
         : op == FRONT_INSPECT ? "inspect_reply"
                               : "is_complete_reply";
}

/* The reply to A from the session's answer ANSWER (a JSON object, see
   front_introspect), or NULL when it is not what was asked for.  */
static json_t *
from_answer(const struct ask *a, json_t *answer)
{
  if (a->op == FRONT_COMPLETE) {
    json_t *matches = json_object_get(answer, "matches");
    json_t *start = json_object_get(answer, "cursor_start");
    json_t *end = json_object_get(answer, "cursor_end");
    if (!json_is_array(matches) || !json_is_integer(start) || !json_is_integer(end))
      return NULL;
    return json_pack("{s:s, s:O, s:O, s:O, s:{}}", "status", "ok", "matches", matches,
                     "cursor_start", start, "cursor_end", end, "metadata");
  }
  if (a->op == FRONT_INSPECT) {
    json_t *found = json_object_get(answer, "found");
    json_t *text = json_object_get(answer, "text");
    if (!json_is_boolean(found) || !json_is_string(text))
      return NULL;
    if (!json_is_true(found))
      return json_pack("{s:s, s:b, s:{}, s:{}}", "status", "ok", "found", 0, "data", "metadata");
    return json_pack("{s:s, s:b, s:{s:O}, s:{}}", "status", "ok", "found", 1, "data", "text/plain",
                     text, "metadata");
  }
  json_t *status = json_object_get(answer, "status");
  json_t *indent = json_object_get(answer, "indent");
  if (!json_is_string(status) || !json_is_string(indent))
    return NULL;
  if (strcmp(json_string_value(status), "incomplete") == 0)
    return json_pack("{s:O, s:O}", "status", status, "indent", indent);
  return json_pack("{s:O}", "status", status);
}

static void
finish(struct ask *a, json_t *content)
{
  struct jup_kernel *k = a->k;
  jup_send(k->ch, JUP_SHELL, a->m, reply_type(a->op), content);
  kernel_status(k, a->m, "idle");
  if (k->asking == a)
    k->asking = NULL;
  jup_msg_free(a->m);
  free(a->m);
  free(a);
  kernel_next(k);
}

static void
on_answer(void *ctx, const struct file_reply *r)
{
  struct ask *a = ctx;
  json_t *content = NULL;
  if (r->status == 0) {
    json_error_t jerr;
    json_t *answer = json_loadb((const char *)r->data, r->len, 0, &jerr);
    content = answer ? from_answer(a, answer) : NULL;
    json_decref(answer);
    if (content == NULL)
      log_msg(LOG_WARN, "jupyter: the session's answer to a %s was malformed", a->m->msg_type);
  } else
    log_msg(LOG_INFO, "jupyter: the session could not answer a %s: %s", a->m->msg_type,
            r->message ? r->message : "");
  finish(a, content ? content : fallback(a));
}

bool
introspect_start(struct jup_kernel *k, struct jup_msg *m)
{
  const char *t = m->msg_type;
  enum front_introspect_op op = strcmp(t, "complete_request") == 0  ? FRONT_COMPLETE
                                : strcmp(t, "inspect_request") == 0 ? FRONT_INSPECT
                                                                    : FRONT_IS_COMPLETE;
  struct ask *a = xzalloc(sizeof *a);
  a->k = k;
  a->m = m;
  a->op = op;
  json_t *code = json_object_get(m->content, "code");
  json_t *pos = json_object_get(m->content, "cursor_pos");
  size_t len = json_is_string(code) ? json_string_length(code) : 0;
  /* is_complete_request has no cursor: the end.  A cursor is counted in
     characters, as the front counts it.  */
  a->cursor = json_is_integer(pos) && json_integer_value(pos) >= 0 ? json_integer_value(pos)
                                                                   : (json_int_t)len;
  kernel_status(k, m, "busy");
  kiln_error_t err = NULL;
  if (json_is_string(code) && k->session_id)
    a->handle = front_introspect(k->front, k->session_id, op, json_string_value(code), len,
                                 (uint64_t)a->cursor, on_answer, a, &err);
  if (a->handle <= 0) {
    if (err)
      log_error(LOG_INFO, &err, "jupyter: a question about code");
    finish(a, fallback(a));
    return true;
  }
  k->asking = a;
  return false;
}

void
introspect_forget(struct jup_kernel *k)
{
  struct ask *a = steal_pointer(&k->asking);
  if (a == NULL)
    return;
  front_cancel(k->front, a->handle);
  jup_msg_free(a->m);
  free(a->m);
  free(a);
}

/* ---------------------------------------------------------- history */

struct history_walk {
  json_t *rows; /* newest first while collected */
  const char *pattern;
  bool unique;
  size_t limit;
  int64_t start, stop; /* "range": execution counts [start, stop) */
  bool range;
  bool output; /* each row's source as [source, output] */
};

static void
on_entry(void *ctx, const struct history_entry *e)
{
  struct history_walk *w = ctx;
  if (strcmp(e->kind, "python") != 0 || (w->limit && json_array_size(w->rows) >= w->limit))
    return;
  if (w->range
      && ((int64_t)e->execution_count < w->start || (int64_t)e->execution_count >= w->stop))
    return;
  cleanup_free char *code = xstrndup(e->code, e->code_len);
  if (w->pattern && fnmatch(w->pattern, code, 0) != 0)
    return;
  if (w->unique)
    for (size_t i = 0; i < json_array_size(w->rows); i++) {
      json_t *src = json_array_get(json_array_get(w->rows, i), 2);
      if (json_is_array(src))
        src = json_array_get(src, 0);
      if (strcmp(json_string_value(src), code) == 0)
        return;
    }
  /* [session, line number, source]: 0 is the current session.  With
     output, [source, output]: the store keeps no cell's output, so
     null, as IPython gives for a cell that showed none.  */
  json_t *source = w->output ? json_pack("[s, n]", code) : json_string(code);
  json_array_append_new(w->rows, json_pack("[i, I, o]", 0, (json_int_t)e->execution_count, source));
}

void
history_reply(struct jup_kernel *k, const struct jup_msg *m)
{
  const char *access = json_string_value(json_object_get(m->content, "hist_access_type"));
  json_t *n = json_object_get(m->content, "n");
  struct history_walk w = {
    .rows = json_array(),
    .limit = json_is_integer(n) && json_integer_value(n) > 0 ? (size_t)json_integer_value(n) : 0,
    .output = json_is_true(json_object_get(m->content, "output")),
  };
  if (access && strcmp(access, "search") == 0) {
    w.pattern = json_string_value(json_object_get(m->content, "pattern"));
    w.unique = json_is_true(json_object_get(m->content, "unique"));
  } else if (access && strcmp(access, "range") == 0) {
    /* Only the current session is kept here (session 0); its lines. */
    json_t *start = json_object_get(m->content, "start");
    json_t *stop = json_object_get(m->content, "stop");
    w.range = true;
    w.start = json_is_integer(start) ? json_integer_value(start) : 0;
    w.stop = json_is_integer(stop) && json_integer_value(stop) > 0 ? json_integer_value(stop)
                                                                   : INT64_MAX;
    w.limit = 0;
  } else if (!access || strcmp(access, "tail") != 0) {
    /* An access type the protocol does not define: nothing.  */
    w.limit = 0;
    w.range = true;
    w.start = w.stop = 0;
  }
  if (k->session_id) {
    kiln_error_t err = NULL;
    int64_t before = 0;
    /* Pages of the store's history, newest first, until the walk has
       what it needs or the session's history ends.  */
    do
      before = front_history(k->front, k->session_id, before, 500, on_entry, &w, &err);
    while (before > 0 && !(w.limit && json_array_size(w.rows) >= w.limit));
    if (before < 0)
      log_error(LOG_WARN, &err, "jupyter: reading the history");
  }
  /* Oldest first, as IPython gives them.  */
  json_t *rows = json_array();
  for (size_t i = json_array_size(w.rows); i-- > 0;)
    json_array_append(rows, json_array_get(w.rows, i));
  json_decref(w.rows);
  jup_send(k->ch, JUP_SHELL, m, "history_reply",
           json_pack("{s:s, s:o}", "status", "ok", "history", rows));
}
