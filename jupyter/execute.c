/* An execute_request's path: busy and execute_input on iopub, the cell
   to the front, what it prints as stream messages and what it shows,
   updates and clears as display messages while it runs, in the order it
   did them, then from the front's reply its result or error (and the
   displays that had no place), the execute_reply, and idle.  */
#define _GNU_SOURCE
#include "log.h"
#include "state.h"
#include "util.h"

#include <ctype.h>
#include <string.h>

/* Output goes to iopub at most this often per stream, this much at a
   time (what comes faster is coalesced by the front).  */
#define STREAM_INTERVAL_MS 50
#define STREAM_MAX_BYTES   (64 * 1024)

static void
free_exec(struct exec *e)
{
  json_decref(e->reply);
  jup_msg_free(e->m);
  free(e->m);
  free(e);
}

static void
on_output(void *ctx, int stream, const char *data, size_t len, uint64_t skipped)
{
  struct exec *e = ctx;
  struct buf b = { 0 };
  if (skipped) {
    cleanup_free char *note
        = xasprintf("[... %llu bytes not streamed ...]\n", (unsigned long long)skipped);
    buf_append(&b, note, strlen(note));
  }
  buf_append(&b, data, len);
  jup_send(e->k->ch, JUP_IOPUB, e->m, "stream",
           json_pack("{s:s, s:s%}", "name", stream == 2 ? "stderr" : "stdout", "text",
                     (const char *)b.data, b.len));
  buf_free(&b);
}

/* Whether MIME's data goes in a bundle as base64 rather than text.  */
static bool
is_binary(const char *mime)
{
  return strncmp(mime, "image/", 6) == 0 && strcmp(mime, "image/svg+xml") != 0;
}

/* Adds output O to bundle DATA under its mime.  Returns false when it
   cannot be (JSON that does not parse).  */
static bool
bundle_add(json_t *data, const struct cell_output *o)
{
  json_t *v;
  if (is_binary(o->mime)) {
    cleanup_free char *b64 = base64_encode(o->data, o->len);
    v = json_string(b64);
  } else if (strcmp(o->mime, "application/json") == 0)
    v = json_loadb((const char *)o->data, o->len, 0, NULL);
  else
    v = json_stringn((const char *)o->data, o->len);
  if (v == NULL)
    return false;
  json_object_set_new(data, o->mime, v);
  return true;
}

/* The bundle of the forms of one object: the run of OUTS (at most N)
   at one place in the output with no mime twice; its length goes to
   *USED.  An image with no text form gets one, for frontends that show
   only text.  Returns a new object, NULL when it holds nothing.  */
static json_t *
bundle_of(const struct cell_output *outs, size_t n, size_t *used)
{
  json_t *data = json_object();
  size_t i = 0;
  char fallback[64] = "";
  for (; i < n && outs[i].out_pos == outs[0].out_pos && !json_object_get(data, outs[i].mime); i++) {
    if (bundle_add(data, &outs[i]) && is_binary(outs[i].mime) && !fallback[0])
      snprintf(fallback, sizeof fallback, "<%s %ux%u>", outs[i].mime, outs[i].width,
               outs[i].height);
  }
  *used = i;
  if (fallback[0] && !json_object_get(data, "text/plain"))
    json_object_set_new(data, "text/plain", json_string(fallback));
  if (json_object_size(data) == 0) {
    json_decref(data);
    return NULL;
  }
  return data;
}

/* Publishes OUTS (N) as display_data messages: the forms of one object
   come one after another at one place in the output, so a run of them
   with the same place and no mime twice is one bundle.  */
static void
publish_displays(struct exec *e, const struct cell_output *outs, size_t n)
{
  size_t i = 0;
  while (i < n) {
    size_t used;
    json_t *data = bundle_of(outs + i, n - i, &used);
    i += used;
    if (data)
      jup_send(e->k->ch, JUP_IOPUB, e->m, "display_data",
               json_pack("{s:o, s:{}, s:{}}", "data", data, "metadata", "transient"));
  }
}

/* The cell showed, updated or cleared something: published now, after
   the stream messages of what it printed before (the front passed those
   on first).  */
static void
on_display(void *ctx, const struct front_display *d)
{
  struct exec *e = ctx;
  if (d->kind == FRONT_DISPLAY_CLEAR) {
    jup_send(e->k->ch, JUP_IOPUB, e->m, "clear_output", json_pack("{s:b}", "wait", d->wait));
    return;
  }
  size_t used;
  json_t *data = bundle_of(d->outputs, d->noutputs, &used);
  if (data == NULL)
    data = json_pack("{s:s}", "text/plain", "");
  json_t *transient
      = d->display_id ? json_pack("{s:s}", "display_id", d->display_id) : json_object();
  jup_send(e->k->ch, JUP_IOPUB, e->m,
           d->kind == FRONT_DISPLAY_UPDATE ? "update_display_data" : "display_data",
           json_pack("{s:o, s:{}, s:o}", "data", data, "metadata", "transient", transient));
}

/* ANSI colours as ipykernel's tracebacks have them: exception names
   red, file names and line numbers green, function names cyan.  */
#define RED   "\x1b[31m"
#define GREEN "\x1b[32m"
#define CYAN  "\x1b[36m"
#define PLAIN "\x1b[39m"

/* LINE (N bytes) of a Python traceback, coloured.  */
static json_t *
colour_line(const char *line, size_t n)
{
  cleanup_free char *l = xstrndup(line, n);
  /*   File "NAME", line N, in FUNCTION  */
  const char *file = strstr(l, "File \""), *at = NULL, *in = NULL;
  if (file && strspn(l, " ") == (size_t)(file - l)
      && (at = strstr(file + 6, "\", line ")) != NULL) {
    const char *num = at + 8;
    size_t digits = strspn(num, "0123456789");
    in = strncmp(num + digits, ", in ", 5) == 0 ? num + digits + 5 : NULL;
    if (digits) {
      if (in)
        return json_sprintf(
            "%.*s" GREEN "%.*s" PLAIN ", line " GREEN "%.*s" PLAIN ", in " CYAN "%s" PLAIN,
            (int)(file + 5 - l), l, (int)(at + 1 - (file + 5)), file + 5, (int)digits, num, in);
      return json_sprintf("%.*s" GREEN "%.*s" PLAIN ", line " GREEN "%s" PLAIN, (int)(file + 5 - l),
                          l, (int)(at + 1 - (file + 5)), file + 5, num);
    }
  }
  /* An exception's line, at the start: its name, then ":" or nothing.  */
  size_t name = 0;
  if (isalpha((unsigned char)l[0]) || l[0] == '_')
    name = strspn(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.");
  if (name && (l[name] == ':' || l[name] == '\0') && strncmp(l, "Traceback", 9) != 0
      && strncmp(l, "During", 6) != 0 && strncmp(l, "The", 3) != 0)
    return json_sprintf(RED "%.*s" PLAIN "%s", (int)name, l, l + name);
  return json_stringn(line, n);
}

/* The traceback of R as Jupyter wants it, one line a string, and the
   sentence saying the session's state was lost after it.  */
static json_t *
traceback_lines(const struct cell_reply *r, const char *ename, const char *evalue)
{
  json_t *lines = json_array();
  const char *tb = r->err_traceback ? r->err_traceback : "";
  while (*tb) {
    size_t n = strcspn(tb, "\n");
    json_array_append_new(lines, colour_line(tb, n));
    tb += n + (tb[n] == '\n');
  }
  if (json_array_size(lines) == 0)
    json_array_append_new(lines, json_sprintf(RED "%s" PLAIN ": %s", ename, evalue));
  if (r->state_lost && r->notice)
    json_array_append_new(lines, json_string(r->notice));
  return lines;
}

/* Sends E's execute_reply REPLY (stolen), then idle; after an error
   (FAILED) with stop_on_error, aborts the execute_requests queued.  Frees
   E and goes on with the queue.  */
static void
finish(struct exec *e, json_t *reply, bool failed)
{
  struct jup_kernel *k = e->k;
  if (k->running == e)
    k->running = NULL;
  jup_send(k->ch, JUP_SHELL, e->m, "execute_reply", reply);
  kernel_status(k, e->m, "idle");
  if (failed && e->stop_on_error)
    exec_abort_queued(k);
  free_exec(e);
  kernel_next(k);
}

/* The user_expressions are evaluated after the request's cell, in its
   session's globals, as ipykernel evaluates them after the code: by the
   session's interpreter between cells (front_introspect's
   FRONT_EVALUATE), so they take no execution number and no history
   row, under the cell deadline.  */
static void
on_user_expressions(void *ctx, const struct file_reply *r)
{
  struct exec *e = ctx;
  json_t *reply = steal_pointer(&e->reply);
  json_t *values = r->status == 0 ? json_loadb((const char *)r->data, r->len, 0, NULL) : NULL;
  if (!json_is_object(values)) {
    log_msg(LOG_WARN, "jupyter: the user_expressions of cell %llu could not be evaluated: %s",
            (unsigned long long)e->count,
            r->status == 0 ? "the answer is not a JSON object"
            : r->message   ? r->message
                           : "?");
    json_decref(values);
    values = json_object();
  }
  json_object_set_new(reply, "user_expressions", values);
  finish(e, reply, false);
}

/* Asks for E's user_expressions, keeping REPLY (stolen on success) to
   send with them.  Returns false when there are none to evaluate, or
   the front refused the question.  */
static bool
start_user_expressions(struct exec *e, json_t *reply)
{
  struct jup_kernel *k = e->k;
  json_t *exprs = json_object_get(e->m->content, "user_expressions");
  if (!json_is_object(exprs) || json_object_size(exprs) == 0 || k->stopping)
    return false;
  const char *name;
  json_t *v;
  json_object_foreach(exprs, name, v) if (!json_is_string(v)) return false;
  cleanup_free char *text = json_dumps(exprs, JSON_COMPACT);
  kiln_error_t err = NULL;
  int64_t h = front_introspect(k->front, k->session_id, FRONT_EVALUATE, text, strlen(text), 0,
                               on_user_expressions, e, &err);
  if (h < 0) {
    log_error(LOG_WARN, &err, "jupyter: user_expressions");
    return false;
  }
  e->handle = h;
  e->reply = reply;
  return true;
}

/* The cell called input(): the frontend that sent the cell is asked on
   stdin; its input_reply comes to exec_input_reply.  */
static void
on_input(void *ctx, const char *prompt, bool password)
{
  struct exec *e = ctx;
  jup_send(e->k->ch, JUP_STDIN, e->m, "input_request",
           json_pack("{s:s, s:b}", "prompt", prompt, "password", password));
}

void
exec_input_reply(struct jup_kernel *k, const struct jup_msg *m)
{
  json_t *value = json_object_get(m->content, "value");
  kiln_error_t err = NULL;
  if (strcmp(m->msg_type, "input_reply") != 0 || !json_is_string(value))
    log_msg(LOG_INFO, "jupyter: %s on stdin without a value, ignored", m->msg_type);
  else if (k->running == NULL)
    log_msg(LOG_INFO, "jupyter: an input_reply with no cell running, ignored");
  else if (front_input_reply(k->front, k->running->handle, json_string_value(value),
                             json_string_length(value), &err)
           < 0)
    log_error(LOG_INFO, &err, "jupyter: an input_reply, ignored");
}

static void
on_reply(void *ctx, const struct cell_reply *r)
{
  struct exec *e = ctx;
  struct jup_kernel *k = e->k;
  /* The cell made the session (none was open): it is the kernel's now,
     unless a restart has moved the kernel on to another.  */
  if (k->session_id == NULL && e->generation == k->generation && r->session_id && r->session_id[0]
      && k->opening == 0)
    k->session_id = xstrdup(r->session_id);
  /* Those shown while the cell ran and not published then (past the
     caps on what is) first, then the value, then those with no place
     (figures still open at the end; the value's rich forms join the
     value).  */
  size_t n = 0, nplaced = 0;
  struct cell_output *outs = xmalloc((r->noutputs + 1) * sizeof *outs);
  for (size_t i = 0; i < r->noutputs; i++)
    if (strcmp(r->outputs[i].mime, FILE_MIME) != 0 && !r->outputs[i].shown_live)
      outs[n++] = r->outputs[i];
  for (size_t i = 0; i < n; i++)
    if (outs[i].out_pos != SIZE_MAX)
      outs[nplaced++] = outs[i];
  size_t nend = 0;
  for (size_t i = 0; i < r->noutputs; i++)
    if (strcmp(r->outputs[i].mime, FILE_MIME) != 0 && r->outputs[i].out_pos == SIZE_MAX)
      outs[nplaced + nend++] = r->outputs[i];
  publish_displays(e, outs, nplaced);
  const struct cell_output *end = outs + nplaced;
  json_t *reply;
  if (r->status == REPLY_OK) {
    if (r->notice)
      jup_send(k->ch, JUP_IOPUB, e->m, "stream",
               json_pack("{s:s, s:s+}", "name", "stderr", "text", r->notice, "\n"));
    if (r->result && !e->silent) {
      json_t *data = json_pack("{s:s}", "text/plain", r->result);
      size_t rest = 0;
      for (size_t i = 0; i < nend; i++)
        if (strncmp(end[i].mime, "image/", 6) == 0 || json_object_get(data, end[i].mime)
            || !bundle_add(data, &end[i]))
          outs[nplaced + rest++] = end[i];
      nend = rest;
      jup_send(k->ch, JUP_IOPUB, e->m, "execute_result",
               json_pack("{s:I, s:o, s:{}}", "execution_count", (json_int_t)e->count, "data", data,
                         "metadata"));
    }
    publish_displays(e, end, nend);
    reply = json_pack("{s:s, s:I, s:{}, s:[]}", "status", "ok", "execution_count",
                      (json_int_t)e->count, "user_expressions", "payload");
  } else {
    publish_displays(e, end, nend);
    const char *ename = r->err_type                  ? r->err_type
                        : r->status == REPLY_CRASHED ? "WorkerCrashed"
                                                     : "Error";
    const char *evalue = r->err_message ? r->err_message : r->notice ? r->notice : "";
    json_t *tb = traceback_lines(r, ename, evalue);
    jup_send(k->ch, JUP_IOPUB, e->m, "error",
             json_pack("{s:s, s:s, s:O}", "ename", ename, "evalue", evalue, "traceback", tb));
    reply = json_pack("{s:s, s:I, s:s, s:s, s:o}", "status", "error", "execution_count",
                      (json_int_t)e->count, "ename", ename, "evalue", evalue, "traceback", tb);
  }
  free(outs);
  if (r->status == REPLY_OK && start_user_expressions(e, reply))
    return;
  finish(e, reply, r->status != REPLY_OK);
}

/* Answers E's request as an error the front gave before it ran.  */
static void
refused(struct exec *e, const char *why)
{
  struct jup_kernel *k = e->k;
  json_t *tb = json_pack("[s+]", "KilnError: ", why);
  jup_send(k->ch, JUP_IOPUB, e->m, "error",
           json_pack("{s:s, s:s, s:O}", "ename", "KilnError", "evalue", why, "traceback", tb));
  jup_send(k->ch, JUP_SHELL, e->m, "execute_reply",
           json_pack("{s:s, s:I, s:s, s:s, s:o}", "status", "error", "execution_count",
                     (json_int_t)e->count, "ename", "KilnError", "evalue", why, "traceback", tb));
  kernel_status(k, e->m, "idle");
  if (e->stop_on_error)
    exec_abort_queued(k);
  free_exec(e);
}

/* The boolean KEY of CONTENT, or DEF when it is absent or not one.  */
static bool
flag(json_t *content, const char *key, bool def)
{
  json_t *v = json_object_get(content, key);
  return json_is_boolean(v) ? json_is_true(v) : def;
}

void
exec_start(struct jup_kernel *k, struct jup_msg *m)
{
  struct exec *e = xzalloc(sizeof *e);
  e->k = k;
  e->m = m;
  e->generation = k->generation;
  e->silent = flag(m->content, "silent", false);
  /* A silent cell is never stored, whatever it asks.  */
  bool store_history = flag(m->content, "store_history", true) && !e->silent;
  e->stop_on_error = flag(m->content, "stop_on_error", true);
  kernel_status(k, m, "busy");
  json_t *code = json_object_get(m->content, "code");
  if (store_history)
    k->execution_count++;
  e->count = k->execution_count;
  if (!json_is_string(code)) {
    refused(e, "execute_request has no code string");
    return;
  }
  if (!e->silent)
    jup_send(k->ch, JUP_IOPUB, m, "execute_input",
             json_pack("{s:O, s:I}", "code", code, "execution_count", (json_int_t)e->count));
  kiln_error_t err = NULL;
  /* A notebook's cell has no deadline of its own: the longest a cell
     may ask for (--max-timeout), and the interrupt button.  */
  e->handle = front_run_cell(k->front, k->session_id, json_string_value(code),
                             json_string_length(code), k->cfg->max_timeout_s, on_reply, e, &err);
  if (e->handle < 0) {
    refused(e, err->msg);
    kiln_error_release(&err);
    return;
  }
  k->running = e;
  front_watch_output(k->front, e->handle, STREAM_INTERVAL_MS, STREAM_MAX_BYTES, on_output, e);
  front_watch_display(k->front, e->handle, on_display, e);
  /* Without, input() raises EOFError saying the cell has no stdin.  */
  if (flag(m->content, "allow_stdin", false))
    front_watch_input(k->front, e->handle, on_input, e);
}

void
exec_abort_queued(struct jup_kernel *k)
{
  struct pending **pp = &k->queue;
  k->queue_tail = NULL;
  while (*pp) {
    struct pending *p = *pp;
    if (strcmp(p->m->msg_type, "execute_request") != 0) {
      k->queue_tail = p;
      pp = &p->next;
      continue;
    }
    *pp = p->next;
    k->nqueued--;
    k->queued_bytes -= p->m->wire_len;
    kernel_status(k, p->m, "busy");
    jup_send(k->ch, JUP_SHELL, p->m, "execute_reply",
             json_pack("{s:s, s:I}", "status", "aborted", "execution_count",
                       (json_int_t)k->execution_count));
    kernel_status(k, p->m, "idle");
    jup_msg_free(p->m);
    free(p->m);
    free(p);
  }
}
