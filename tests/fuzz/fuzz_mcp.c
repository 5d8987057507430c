/* The whole MCP server on hostile input: a connection (mcp/conn.c) with
   every method and tool behind it, batches, cancellation and progress,
   and the fake front of fake_front.h answering what reaches it.  The
   input is a sequence of operations (fuzz_mcp.h): messages, built or raw,
   and what the front does meanwhile — answer a pending request, stream a
   watched cell's output, log — or the client going away.

   Oracles, on everything the connection sends, beside the sanitizers
   and the leak checker:
   - each message serialises as the transports write it and reads back
     the same; it is an object with "jsonrpc": "2.0", or, only on a
     connection that negotiated 2025-03-26, a non-empty array of
     responses (a batch's answer);
   - a response has "id" and exactly one of "result" and "error"; its id
     is that of a request sent and not yet answered (JSON equality), or
     null for an error about a message with no usable id; a message
     refused whole (not JSON, over the size limit, a batch not allowed)
     is answered at once, with one error;
   - no response is an internal error: the fake keeps kiln.h's promises,
     so every reply can be built;
   - what a request is answered with fits its method: the right error
     code for an unknown method, a method before initialize and params
     that are not an object; a result for every call of a known tool;
     the text block "[session ID " first for run_python when the front
     replied to its cell, and isError exactly when the cell failed or
     the call was refused; a file tool's isError exactly when the front
     failed it; nothing a revision does not define (structuredContent,
     resource links, tool titles and annotations) on an older revision;
     resources/read and completion/complete shaped as MCP says;
   - notifications are notifications/progress, with the token of a
     run_python still unanswered and before its reply, with a progress
     that grows, and notifications/message, only once initialized;
   - at the end (every request the fake front holds answered), every
     request with a usable id was answered exactly once, unless it was
     cancelled (then at most once) or its connection was freed while it
     was pending; the connection's idle callback ran once.  */
#define _GNU_SOURCE
#include "fuzz.h"
#include "fuzz_mcp.h"
#include "call.h"
#include "conn.h"
#include "fake_front.h"
#include "jsonrpc.h"
#include "log.h"
#include "server.h"
#include "uri.h"
#include "util.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* Operations an input may hold; more are ignored.  */
#define MAX_OPS 256

/* ---------------------------------------------------------------- expectations */

enum kind {
  K_INVALID, /* not a request: refused with its id */
  K_UNKNOWN, /* a method kiln does not have */
  K_INITIALIZE,
  K_PING,
  K_TOOLS_CALL,
  K_TOOLS_LIST,
  K_RESOURCES_READ,
  K_COMPLETION,
  K_OTHER, /* resources/list, resources/templates/list, logging/setLevel */
};

static const char *const tool_names[]
    = { "run_python",  "run_shell",  "list_sessions", "close_session",
        "upload_file", "list_files", "read_file",     "install_packages" };
enum {
  T_RUN,
  T_SHELL,
  T_LIST_SESSIONS,
  T_CLOSE,
  T_UPLOAD,
  T_LIST_FILES,
  T_READ_FILE,
  T_INSTALL,
  T_NONE
};

static const char *const version_names[]
    = { "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25" };

/* A message the harness sent that must be answered: a request, or one
   refused with its id.  */
struct entry {
  json_t *id;
  enum kind kind;
  int tool;              /* K_TOOLS_CALL: T_*, T_NONE when not a tool kiln has */
  json_t *token;         /* run_python's usable progress token, or NULL */
  bool initialized;      /* the connection was, when the request was handled */
  bool params_ok;        /* params absent or an object */
  json_t *asked_version; /* initialize's protocolVersion, or NULL */
  bool answered;
  /* Another unanswered message had the same id when one of them was
     answered: which one was is unknown, so none is checked closely.  */
  bool ambiguous;
  bool cell_replied; /* the front replied to its cell */
  int cell_status;
  char *cell_session;
  bool file_replied; /* the front answered its file operation */
  int file_status;
  char *file_session;
  json_int_t progress; /* the last progress notified */
};

/* The harness's view of one connection.  */
struct view {
  struct mcp_conn *c;
  bool initialized;
  enum mcp_version version;
  struct entry *e;
  size_t ne;
  size_t null_owed;   /* errors owed with a null id */
  json_t *cancels;    /* request ids the client cancelled, one per cancellation */
  bool refused_whole; /* a message refused whole is being handled */
  int refused_code;
  bool refused_answered;
};

static struct kiln_config cfg;
static struct fuzz_in in;
static struct front *front;
static struct mcp_server *server;
static struct view *view;
static json_t *ids;    /* usable ids sent, for cancellations and repeats */
static json_t *tokens; /* progress tokens sent */
static uint64_t counter;
static int idle_calls;
/* FUZZ_MCP_TRACE set: every message in and out is printed, for reading
   what a finding did.  */
static bool trace;

static bool
usable(json_t *id)
{
  return id && (json_is_string(id) || json_is_integer(id));
}

/* Whether S (a JSON string) is NAME, all its bytes.  */
static bool
is(json_t *s, const char *name)
{
  return json_is_string(s) && json_string_length(s) == strlen(name)
         && memcmp(json_string_value(s), name, strlen(name)) == 0;
}

static struct entry *
owe(struct view *w, json_t *id, enum kind kind)
{
  w->e = xrealloc(w->e, (w->ne + 1) * sizeof *w->e);
  struct entry *e = &w->e[w->ne++];
  memset(e, 0, sizeof *e);
  e->id = json_incref(id);
  e->kind = kind;
  e->tool = T_NONE;
  e->initialized = w->initialized;
  e->params_ok = true;
  return e;
}

/* Entries with ID not yet answered.  */
static size_t
live_with_id(struct view *w, json_t *id, struct entry **first)
{
  size_t n = 0;
  *first = NULL;
  for (size_t i = 0; i < w->ne; i++)
    if (!w->e[i].answered && json_equal(w->e[i].id, id)) {
      if (n++ == 0)
        *first = &w->e[i];
    }
  return n;
}

static void
cancel(struct view *w, json_t *rid)
{
  /* One cancellation excuses one unanswered request with that id.  */
  struct entry *first;
  size_t live = live_with_id(w, rid, &first), granted = 0;
  size_t i;
  json_t *c;
  json_array_foreach(w->cancels, i, c) granted += json_equal(c, rid);
  if (live > granted)
    json_array_append(w->cancels, rid);
}

/* What one object the harness sends (alone or in a batch) must be
   answered with, as jsonrpc.h classifies it.  */
static void
expect_object(struct view *w, json_t *o)
{
  json_t *id = json_object_get(o, "id"), *method = json_object_get(o, "method");
  json_t *params = json_object_get(o, "params");
  if (id && !usable(id)) {
    w->null_owed++;
    return;
  }
  if (!is(json_object_get(o, "jsonrpc"), "2.0")) {
    if (id)
      owe(w, id, K_INVALID);
    else
      w->null_owed++;
    return;
  }
  if (method == NULL) {
    if (id && (json_object_get(o, "result") || json_object_get(o, "error")))
      return; /* a response: kiln sent no request, so nothing to say */
    if (id)
      owe(w, id, K_INVALID);
    else
      w->null_owed++;
    return;
  }
  if (!json_is_string(method) || (params && !json_is_object(params) && !json_is_array(params))) {
    if (id)
      owe(w, id, K_INVALID);
    return;
  }
  if (id == NULL) {
    json_t *rid = json_object_get(params, "requestId");
    if (is(method, "notifications/cancelled") && json_is_object(params) && rid)
      cancel(w, rid);
    return;
  }
  enum kind k = K_UNKNOWN;
  static const struct {
    const char *name;
    enum kind kind;
  } methods[] = {
    { "initialize", K_INITIALIZE },         { "ping", K_PING },
    { "tools/call", K_TOOLS_CALL },         { "tools/list", K_TOOLS_LIST },
    { "resources/read", K_RESOURCES_READ }, { "completion/complete", K_COMPLETION },
    { "resources/list", K_OTHER },          { "resources/templates/list", K_OTHER },
    { "logging/setLevel", K_OTHER },
  };
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (is(method, methods[i].name))
      k = methods[i].kind;
  struct entry *e = owe(w, id, k);
  e->params_ok = params == NULL || json_is_object(params);
  if (k == K_INITIALIZE && json_is_object(params))
    e->asked_version = json_incref(json_object_get(params, "protocolVersion"));
  if (k == K_TOOLS_CALL && json_is_object(params)) {
    json_t *name = json_object_get(params, "name");
    for (int t = 0; t < T_NONE; t++)
      if (is(name, tool_names[t]))
        e->tool = t;
    json_t *token = json_object_get(json_object_get(params, "_meta"), "progressToken");
    if (e->tool == T_RUN && usable(token))
      e->token = json_incref(token);
  }
}

/* What the message [TEXT, TEXT+LEN) must be answered with.  */
static void
expect_message(struct view *w, const char *text, size_t len, size_t too_long)
{
  w->refused_whole = false;
  w->refused_answered = false;
  if (too_long) {
    w->refused_whole = true;
    w->refused_code = JRPC_INVALID_REQUEST;
    return;
  }
  json_t *root
      = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (root == NULL) {
    w->refused_whole = true;
    w->refused_code = JRPC_PARSE_ERROR;
  } else if (json_is_array(root)) {
    if (!w->initialized || w->version != MCP_2025_03_26 || json_array_size(root) == 0) {
      w->refused_whole = true;
      w->refused_code = JRPC_INVALID_REQUEST;
    } else {
      size_t i;
      json_t *item;
      json_array_foreach(root, i, item)
      {
        if (json_is_object(item))
          expect_object(w, item);
        else
          w->null_owed++;
      }
    }
  } else if (json_is_object(root))
    expect_object(w, root);
  else
    w->null_owed++;
  json_decref(root);
}

/* ---------------------------------------------------------------- checks */

static json_int_t
error_code(json_t *error)
{
  return json_integer_value(json_object_get(error, "code"));
}

/* A tools/call result: content blocks, and only what revision V defines.  */
static void
check_tool_result(struct view *w, struct entry *e, json_t *result)
{
  FUZZ_CHECK(json_is_object(result));
  json_t *content = json_object_get(result, "content");
  FUZZ_CHECK(json_is_array(content) && json_array_size(content) > 0);
  size_t i;
  json_t *block;
  json_array_foreach(content, i, block)
  {
    json_t *type = json_object_get(block, "type");
    FUZZ_CHECK(json_is_object(block) && json_is_string(type));
    if (w->version < MCP_2025_06_18)
      FUZZ_CHECK(!is(type, "resource_link"));
  }
  if (w->version < MCP_2025_06_18)
    FUZZ_CHECK(json_object_get(result, "structuredContent") == NULL);
  json_t *is_error = json_object_get(result, "isError");
  FUZZ_CHECK(is_error == NULL || json_is_boolean(is_error));
  bool failed = json_is_true(is_error);
  json_t *first = json_array_get(content, 0);
  const char *text = json_string_value(json_object_get(first, "text"));
  if (e->tool == T_RUN) {
    FUZZ_CHECK(is(json_object_get(first, "type"), "text") && text);
    if (!e->cell_replied)
      FUZZ_CHECK(failed);
    else {
      cleanup_free char *head = xasprintf("[session %s ", e->cell_session);
      FUZZ_CHECK(strncmp(text, head, strlen(head)) == 0);
      FUZZ_CHECK(failed == (e->cell_status != REPLY_OK));
      static const char *const statuses[] = { "ok", "error", "interrupted", "killed", "crashed" };
      json_t *sc = json_object_get(result, "structuredContent");
      if (w->version >= MCP_2025_06_18)
        FUZZ_CHECK(is(json_object_get(sc, "session_id"), e->cell_session)
                   && is(json_object_get(sc, "status"), statuses[e->cell_status]));
    }
  }
  if (e->tool == T_UPLOAD || e->tool == T_LIST_FILES || e->tool == T_READ_FILE) {
    FUZZ_CHECK(failed == (!e->file_replied || e->file_status != 0));
    json_t *sc = json_object_get(result, "structuredContent");
    if (!failed && w->version >= MCP_2025_06_18)
      FUZZ_CHECK(is(json_object_get(sc, "session_id"), e->file_session));
  }
}

static void
check_tools_list(struct view *w, json_t *result)
{
  json_t *tools = json_object_get(result, "tools");
  FUZZ_CHECK(json_is_array(tools) && json_array_size(tools) == T_NONE);
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t)
  {
    FUZZ_CHECK(is(json_object_get(t, "name"), tool_names[i]));
    if (w->version < MCP_2025_06_18)
      FUZZ_CHECK(!json_object_get(t, "title") && !json_object_get(t, "outputSchema"));
    if (w->version < MCP_2025_03_26)
      FUZZ_CHECK(!json_object_get(t, "annotations"));
  }
}

static void
check_resource(struct entry *e, json_t *result, json_t *error)
{
  if (error) {
    json_int_t code = error_code(error);
    FUZZ_CHECK(code == MCP_RESOURCE_NOT_FOUND || code == JRPC_INVALID_PARAMS);
    FUZZ_CHECK(!e->file_replied || e->file_status != 0);
    return;
  }
  FUZZ_CHECK(!e->file_replied || e->file_status == 0);
  json_t *contents = json_object_get(result, "contents");
  FUZZ_CHECK(json_is_array(contents) && json_array_size(contents) == 1);
  json_t *c = json_array_get(contents, 0);
  FUZZ_CHECK(json_is_string(json_object_get(c, "uri"))
             && json_is_string(json_object_get(c, "mimeType")));
  FUZZ_CHECK(json_is_string(json_object_get(c, "text"))
             != json_is_string(json_object_get(c, "blob")));
}

static void
check_completion(json_t *result, json_t *error)
{
  if (error) {
    FUZZ_CHECK(error_code(error) == JRPC_INVALID_PARAMS);
    return;
  }
  json_t *c = json_object_get(result, "completion");
  json_t *values = json_object_get(c, "values"), *total = json_object_get(c, "total");
  FUZZ_CHECK(json_is_array(values) && json_array_size(values) <= 100 && json_is_integer(total));
  FUZZ_CHECK((size_t)json_integer_value(total) >= json_array_size(values));
  FUZZ_CHECK(json_is_true(json_object_get(c, "hasMore"))
             == ((size_t)json_integer_value(total) > json_array_size(values)));
  size_t i;
  json_t *v;
  json_array_foreach(values, i, v) FUZZ_CHECK(json_is_string(v));
}

/* The answer to E, its request's method considered.  */
static void
check_answer(struct view *w, struct entry *e, json_t *result, json_t *error)
{
  json_int_t code = error ? error_code(error) : 0;
  if (e->kind == K_INVALID) {
    FUZZ_CHECK(error && code == JRPC_INVALID_REQUEST);
    return;
  }
  if (e->kind == K_UNKNOWN) {
    FUZZ_CHECK(error && code == JRPC_METHOD_NOT_FOUND);
    return;
  }
  if (!e->initialized && e->kind != K_INITIALIZE && e->kind != K_PING) {
    FUZZ_CHECK(error && code == JRPC_INVALID_REQUEST);
    return;
  }
  if (!e->params_ok) {
    FUZZ_CHECK(error && code == JRPC_INVALID_PARAMS);
    return;
  }
  switch (e->kind) {
  case K_INITIALIZE:
    if (error)
      break;
    FUZZ_CHECK(!w->initialized);
    json_t *v = json_object_get(result, "protocolVersion");
    int got = -1, asked = -1;
    for (int i = 0; i < 4; i++) {
      if (is(v, version_names[i]))
        got = i;
      if (is(e->asked_version, version_names[i]))
        asked = i;
    }
    FUZZ_CHECK(got >= 0 && got == (asked >= 0 ? asked : MCP_LATEST));
    w->initialized = true;
    w->version = (enum mcp_version)got;
    break;
  case K_PING:
    FUZZ_CHECK(json_is_object(result) && json_object_size(result) == 0);
    break;
  case K_TOOLS_CALL:
    if (e->tool == T_NONE)
      FUZZ_CHECK(error && code == JRPC_INVALID_PARAMS);
    else {
      FUZZ_CHECK(result);
      check_tool_result(w, e, result);
    }
    break;
  case K_TOOLS_LIST:
    if (result)
      check_tools_list(w, result);
    break;
  case K_RESOURCES_READ:
    check_resource(e, result, error);
    break;
  case K_COMPLETION:
    check_completion(result, error);
    break;
  default:
    FUZZ_CHECK(result ? json_is_object(result) : code == JRPC_INVALID_PARAMS);
  }
}

static void
check_response(struct view *w, json_t *r)
{
  json_t *id = json_object_get(r, "id");
  json_t *result = json_object_get(r, "result"), *error = json_object_get(r, "error");
  FUZZ_CHECK(id && json_object_size(r) == 3 && (result == NULL) != (error == NULL));
  if (error) {
    json_t *code = json_object_get(error, "code");
    FUZZ_CHECK(json_is_integer(code) && json_is_string(json_object_get(error, "message")));
    json_int_t c = json_integer_value(code);
    FUZZ_CHECK(c == JRPC_PARSE_ERROR || c == JRPC_INVALID_REQUEST || c == JRPC_METHOD_NOT_FOUND
               || c == JRPC_INVALID_PARAMS || c == MCP_RESOURCE_NOT_FOUND);
  }
  if (w->refused_whole && !w->refused_answered) {
    /* A message refused whole may still name the id it meant: one the
       scan of its bytes finds, whether or not one is pending.  */
    w->refused_answered = true;
    FUZZ_CHECK(error && error_code(error) == w->refused_code && (json_is_null(id) || usable(id)));
    return;
  }
  if (json_is_null(id)) {
    FUZZ_CHECK(error && w->null_owed > 0);
    w->null_owed--;
    return;
  }
  FUZZ_CHECK(usable(id));
  struct entry *e;
  size_t n = live_with_id(w, id, &e);
  FUZZ_CHECK(n > 0);
  if (n > 1)
    for (size_t i = 0; i < w->ne; i++)
      if (!w->e[i].answered && json_equal(w->e[i].id, id))
        w->e[i].ambiguous = true;
  e->answered = true;
  if (!e->ambiguous)
    check_answer(w, e, result, error);
}

/* Whether E's progress token may still be used: its request is not
   answered (or may not be: an ambiguous answer went to one of several).  */
static bool
token_live(struct view *w, struct entry *e)
{
  if (!e->answered)
    return true;
  struct entry *first;
  return e->ambiguous && live_with_id(w, e->id, &first) > 0;
}

static void
check_notification(struct view *w, json_t *n)
{
  json_t *method = json_object_get(n, "method"), *params = json_object_get(n, "params");
  FUZZ_CHECK(json_object_get(n, "id") == NULL && json_is_object(params));
  if (is(method, "notifications/message")) {
    static const char *const levels[]
        = { "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency" };
    bool known = false;
    for (size_t i = 0; i < 8; i++)
      known |= is(json_object_get(params, "level"), levels[i]);
    FUZZ_CHECK(w->initialized && known && is(json_object_get(params, "logger"), "kiln")
               && json_is_string(json_object_get(params, "data")));
    return;
  }
  FUZZ_CHECK(is(method, "notifications/progress"));
  json_t *token = json_object_get(params, "progressToken");
  json_t *progress = json_object_get(params, "progress");
  FUZZ_CHECK(usable(token) && json_is_integer(progress)
             && json_is_string(json_object_get(params, "message")));
  struct entry *only = NULL;
  size_t n_live = 0;
  for (size_t i = 0; i < w->ne; i++)
    if (w->e[i].token && json_equal(w->e[i].token, token) && token_live(w, &w->e[i])) {
      only = &w->e[i];
      n_live++;
    }
  FUZZ_CHECK(n_live > 0);
  if (n_live == 1 && !only->ambiguous) {
    FUZZ_CHECK(!only->cell_replied);
    FUZZ_CHECK(json_integer_value(progress) > only->progress);
    only->progress = json_integer_value(progress);
  }
}

/* Whether B, read back from what A was written as, is A: the same but
   for reals, which the transports write with 9 significant digits.  */
static bool
same_json(json_t *a, json_t *b)
{
  if (json_is_real(a) && json_is_number(b)) {
    double x = json_real_value(a), y = json_number_value(b);
    return x == y || fabs(x - y) <= 1e-8 * fabs(x);
  }
  if (json_typeof(a) != json_typeof(b))
    return false;
  if (json_is_array(a)) {
    if (json_array_size(a) != json_array_size(b))
      return false;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!same_json(json_array_get(a, i), json_array_get(b, i)))
        return false;
    return true;
  }
  if (json_is_object(a)) {
    if (json_object_size(a) != json_object_size(b))
      return false;
    const char *key;
    size_t len;
    json_t *v;
    json_object_keylen_foreach(a, key, len, v)
    {
      json_t *w = json_object_getn(b, key, len);
      if (w == NULL || !same_json(v, w))
        return false;
    }
    return true;
  }
  return json_equal(a, b);
}

/* The connection's send: every message checked as the file's header
   says.  */
static void
on_send(void *ctx, json_t *msg)
{
  struct view *w = ctx;
  FUZZ_CHECK(w == view);
  size_t len;
  char *line = jrpc_dump_line(msg, &len);
  FUZZ_CHECK(len > 0 && line[len - 1] == '\n' && memchr(line, '\n', len - 1) == NULL);
  if (trace)
    fprintf(stderr, "< %s", line);
  json_t *back = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
  FUZZ_CHECK(back != NULL && same_json(msg, back));
  json_decref(back);
  free(line);
  if (json_is_array(msg)) {
    FUZZ_CHECK(w->initialized && w->version == MCP_2025_03_26 && json_array_size(msg) > 0);
    FUZZ_CHECK(!w->refused_whole || w->refused_answered);
    size_t i;
    json_t *r;
    json_array_foreach(msg, i, r)
    {
      FUZZ_CHECK(json_is_object(r) && is(json_object_get(r, "jsonrpc"), "2.0"));
      FUZZ_CHECK(json_object_get(r, "method") == NULL);
      check_response(w, r);
    }
    return;
  }
  FUZZ_CHECK(json_is_object(msg) && is(json_object_get(msg, "jsonrpc"), "2.0"));
  if (json_object_get(msg, "method"))
    check_notification(w, msg);
  else
    check_response(w, msg);
}

/* The entry of the request the front is answering (CTX, the pending
   request mcp_defer made, call.h), or NULL when it is not known which.  */
static struct entry *
entry_of(void *ctx)
{
  struct mcp_pending *p = ctx;
  FUZZ_CHECK(p->conn == view->c);
  struct entry *e;
  size_t n = live_with_id(view, p->id, &e);
  FUZZ_CHECK(n > 0);
  return n == 1 && !e->ambiguous ? e : NULL;
}

static void
on_cell_reply(void *hctx, void *ctx, const struct cell_reply *r)
{
  struct entry *e = entry_of(ctx);
  if (e == NULL)
    return;
  /* The fake front answers a shell command as it answers a cell.  */
  FUZZ_CHECK(e->kind == K_TOOLS_CALL && (e->tool == T_RUN || e->tool == T_SHELL)
             && !e->cell_replied);
  e->cell_replied = true;
  e->cell_status = r->status;
  e->cell_session = xstrdup(r->session_id);
}

static void
on_file_reply(void *hctx, void *ctx, const struct file_reply *r)
{
  struct entry *e = entry_of(ctx);
  if (e == NULL)
    return;
  FUZZ_CHECK(!e->file_replied);
  e->file_replied = true;
  e->file_status = r->status;
  e->file_session = xstrdup(r->session_id);
}

static void
on_idle(void *ctx)
{
  idle_calls++;
}

/* ---------------------------------------------------------------- connections */

static struct view *
view_new(void)
{
  struct view *w = xzalloc(sizeof *w);
  w->version = MCP_LATEST;
  w->cancels = json_array();
  w->c = mcp_conn_new(server, on_send, w);
  return w;
}

static void
view_free(struct view *w)
{
  for (size_t i = 0; i < w->ne; i++) {
    json_decref(w->e[i].id);
    json_decref(w->e[i].token);
    json_decref(w->e[i].asked_version);
    free(w->e[i].cell_session);
    free(w->e[i].file_session);
  }
  free(w->e);
  json_decref(w->cancels);
  free(w);
}

/* Every request of W answered, but those cancelled.  */
static void
check_all_answered(struct view *w)
{
  FUZZ_CHECK(w->null_owed == 0);
  for (size_t i = 0; i < w->ne; i++) {
    if (w->e[i].answered)
      continue;
    size_t k;
    json_t *c;
    bool excused = false;
    json_array_foreach(w->cancels, k, c) if (json_equal(c, w->e[i].id))
    {
      json_array_remove(w->cancels, k);
      excused = true;
      break;
    }
    FUZZ_CHECK(excused);
  }
}

/* The client goes: its connection is freed with requests pending (their
   work in the front cancelled), and a new client connects.  */
static void
reconnect(void)
{
  struct view *old = view;
  mcp_conn_free(old->c);
  view_free(old);
  view = view_new();
}

static void
deliver(const char *text, size_t len, size_t too_long)
{
  if (trace)
    fprintf(stderr, "> %.*s%s\n", (int)len, text, too_long ? " (too long)" : "");
  expect_message(view, text, len, too_long);
  mcp_conn_handle(view->c, text, len, too_long);
  FUZZ_CHECK(!view->refused_whole || view->refused_answered);
  view->refused_whole = false;
}

static void
deliver_json(json_t *msg)
{
  char *text = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
  FUZZ_CHECK(text != NULL);
  deliver(text, strlen(text), 0);
  free(text);
  json_decref(msg);
}

/* ---------------------------------------------------------------- building messages */

static json_t *
text_json(size_t max, bool nul_ok)
{
  size_t len;
  char *t = fake_text(&in, fin_u8(&in) % (max + 1), nul_ok, &len);
  json_t *s = json_stringn(t, len);
  free(t);
  FUZZ_CHECK(s != NULL);
  return s;
}

/* An id: mostly new, sometimes one already used (a duplicate, or the
   target of a cancellation), sometimes one JSON-RPC does not allow.  */
static json_t *
make_id(void)
{
  uint8_t b = fin_u8(&in);
  json_t *id;
  switch (b % 10) {
  case 4:
    id = json_sprintf("r-%llu", (unsigned long long)++counter);
    break;
  case 5:
    id = json_integer(b >> 4 & 3);
    break;
  case 6:
    id = json_array_size(ids) ? json_incref(json_array_get(ids, (b >> 4) % json_array_size(ids)))
                              : json_integer((json_int_t)++counter);
    break;
  case 7: {
    static const char *const odd[] = {
      "null", "1.5",         "{}", "[]", "true", "-9223372036854775808", "9223372036854775807",
      "\"\"", "\"\\u0000\"", "-0"
    };
    id = json_loads(odd[(b >> 4) % 10], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    break;
  }
  case 8:
    id = text_json(12, true);
    break;
  default:
    id = json_integer((json_int_t)++counter);
  }
  if (usable(id))
    json_array_append(ids, id);
  return id;
}

static json_t *
request(const char *method, json_t *params)
{
  json_t *r = json_pack("{s:s, s:o, s:s}", "jsonrpc", "2.0", "id", make_id(), "method", method);
  if (params)
    json_object_set_new(r, "params", params);
  return r;
}

/* A session id argument: an open session's, none, or one the front
   does not know or cannot take.  NULL: leave it out.  */
static json_t *
session_arg(void)
{
  uint8_t b = fin_u8(&in);
  const char *open = fake_front_session(front, b >> 3);
  switch (b % 8) {
  case 0:
  case 1:
  case 2:
    return open ? json_string(open) : NULL;
  case 3:
    return NULL;
  case 4:
    return json_string("0123456789abcdef");
  case 5:
    return json_stringn("0123\0abcd", 9);
  case 6:
    return json_integer(7);
  default:
    return json_null();
  }
}

static json_t *
path_arg(void)
{
  static const char *const paths[]
      = { "",     "data.csv", "out/", "out/plot.png", "../etc/passwd", "/etc/passwd",
          "a//b", "./a",      "a/..", "a b#c?.txt",   "%41.txt",       "\xc3\xa9t\xc3\xa9/x" };
  uint8_t b = fin_u8(&in);
  if (b % 16 < 12)
    return json_string(paths[b % 16]);
  return text_json(40, b & 0x10);
}

static void
set_opt(json_t *o, const char *key, json_t *v)
{
  if (v)
    json_object_set_new(o, key, v);
}

static json_t *
tool_call(const char *name, json_t *args)
{
  json_t *params = json_pack("{s:s}", "name", name);
  set_opt(params, "arguments", args);
  return request("tools/call", params);
}

static json_t *
build_initialize(void)
{
  uint8_t b = fin_u8(&in);
  json_t *params = json_pack("{s:{}, s:{s:s, s:s}}", "capabilities", "clientInfo", "name", "fuzz",
                             "version", "1");
  if (b % 8 < 4)
    json_object_set_new(params, "protocolVersion", json_string(version_names[b % 8]));
  else if (b % 8 == 4)
    json_object_set_new(params, "protocolVersion", json_string("2099-12-31"));
  else if (b % 8 == 5)
    json_object_set_new(params, "protocolVersion", text_json(12, true));
  else if (b % 8 == 6)
    json_object_set_new(params, "protocolVersion", json_integer(2025));
  if (b & 0x80) {
    json_decref(params);
    params = NULL;
  }
  return request("initialize", params);
}

static json_t *
build_run(void)
{
  uint8_t b = fin_u8(&in);
  json_t *args = json_object();
  if ((b & 3) != 3)
    json_object_set_new(args, "code", text_json(40, true));
  set_opt(args, "session_id", session_arg());
  static const double timeouts[] = { 2.5, 0, -1, 1e9, 0.001, 600 };
  uint8_t t = fin_u8(&in);
  if (t % 8 < 6)
    json_object_set_new(args, "timeout_s", json_real(timeouts[t % 8]));
  else if (t % 8 == 6)
    json_object_set_new(args, "timeout_s", json_string("5"));
  if (b & 4)
    json_object_set_new(args, "bogus", json_true());
  json_t *m = tool_call("run_python", args);
  if (b & 0x18) {
    json_t *token;
    uint8_t k = fin_u8(&in);
    if (k % 4 == 0 && json_array_size(tokens))
      token = json_incref(json_array_get(tokens, (k >> 2) % json_array_size(tokens)));
    else if (k % 4 == 1)
      token = json_sprintf("p-%llu", (unsigned long long)++counter);
    else if (k % 4 == 2)
      token = json_object();
    else
      token = json_integer((json_int_t)++counter);
    json_array_append(tokens, token);
    json_object_set_new(json_object_get(m, "params"), "_meta",
                        json_pack("{s:o}", "progressToken", token));
  }
  return m;
}

static json_t *
build_file(void)
{
  uint8_t b = fin_u8(&in);
  json_t *args = json_object();
  set_opt(args, "session_id", session_arg());
  if ((b & 0x30) != 0x30)
    json_object_set_new(args, "path", path_arg());
  switch (b % 3) {
  case 0: {
    static const char *const enc[] = { "text", "base64", "hex", NULL };
    if (b & 0x40)
      json_object_set_new(args, "content", json_string("aGVsbG8sIHdvcmxk"));
    else
      json_object_set_new(args, "content", text_json(60, true));
    if (enc[b >> 2 & 3])
      json_object_set_new(args, "encoding", json_string(enc[b >> 2 & 3]));
    return tool_call("upload_file", args);
  }
  case 1:
    return tool_call("list_files", args);
  default:
    return tool_call("read_file", args);
  }
}

static json_t *
build_sessions(void)
{
  uint8_t b = fin_u8(&in);
  if (b & 1)
    return tool_call("list_sessions", b & 2 ? json_object() : NULL);
  json_t *args = json_object();
  set_opt(args, "session_id", session_arg());
  if ((b & 6) != 6)
    return tool_call("close_session", args);
  /* install_packages: requirements of any text, a list of any length,
     or something that is not a list.  */
  uint8_t n = fin_u8(&in);
  if (n & 0x80)
    json_object_set_new(args, "packages", text_json(20, true));
  else {
    json_t *list = json_array();
    for (uint8_t i = 0; i < n % 40; i++)
      json_array_append_new(list, i % 3 == 2 ? json_integer(i) : text_json(30, true));
    json_object_set_new(args, "packages", list);
  }
  return tool_call("install_packages", args);
}

static json_t *
build_read(void)
{
  uint8_t b = fin_u8(&in), s = fin_u8(&in);
  const char *sid = fake_front_session(front, s);
  if (sid == NULL || s & 0x80)
    sid = "0123456789abcdef";
  char *uri;
  switch (b % 8) {
  case 0: {
    const char *name = fake_front_artifact(front, s, fin_u8(&in));
    uri = uri_artifact(sid, name ? name : "cell1-1.png");
    break;
  }
  case 1: {
    json_t *p = path_arg();
    uri = uri_file(sid, json_string_value(p), json_string_length(p));
    json_decref(p);
    break;
  }
  case 2: {
    uint64_t cell = fake_front_cells(front, s) - fin_u8(&in) % 3;
    uri = b & 0x10 ? uri_cell_output(sid, cell, 1 + (b >> 5 & 1))
                   : xasprintf("kiln://sessions/%s/cells/%llu/%s", sid, (unsigned long long)cell,
                               b & 0x20 ? "stdin" : "0");
    break;
  }
  case 3:
    uri = xasprintf("KILN://Sessions/%s/artifacts/%s", sid, b & 0x10 ? "cell1-1.png" : "..");
    break;
  case 4: {
    static const char *const bad[]
        = { "%zz", "%00", "%C3", "a%2Fb", "%2e%2e", "a b", "\xc3\xa9", "" };
    uri = xasprintf("kiln://sessions/%s/files/%s", sid, bad[b >> 4 & 7]);
    break;
  }
  case 5: {
    json_t *t = text_json(60, true);
    json_t *m = request("resources/read", json_pack("{s:o}", "uri", t));
    return m;
  }
  case 6:
    uri = xasprintf("file:///etc/passwd");
    break;
  default: {
    json_t *params = json_object();
    if (b & 0x10)
      json_object_set_new(params, "uri", json_integer(1));
    return request("resources/read", params);
  }
  }
  json_t *m = request("resources/read", json_pack("{s:s}", "uri", uri));
  free(uri);
  return m;
}

static json_t *
build_list(void)
{
  uint8_t b = fin_u8(&in);
  static const char *const cursors[] = { "0", "100", "abc", "-1", "99999999999999999999", "" };
  json_t *params = b & 0x80 ? NULL : json_object();
  if (params && b & 0x40)
    json_object_set_new(params, "cursor", json_string(cursors[(b >> 3 & 7) % 6]));
  static const char *const methods[]
      = { "tools/list", "resources/list", "resources/templates/list" };
  return request(methods[b % 3], params);
}

static json_t *
build_complete(void)
{
  uint8_t b = fin_u8(&in), c = fin_u8(&in);
  static const char *const uris[] = { "kiln://sessions/{session_id}/artifacts/{name}",
                                      "kiln://sessions/{session_id}/files/{path}",
                                      "kiln://sessions/{session_id}/cells/{cell}/{stream}",
                                      "kiln://sessions/{session_id}/history", "kiln://other" };
  static const char *const names[] = { "session_id", "name", "path", "cell" };
  json_t *ref = json_pack("{s:s, s:s}", "type", b & 0x80 ? "ref/prompt" : "ref/resource", "uri",
                          uris[b % 5]);
  json_t *value;
  const char *sid = fake_front_session(front, c >> 2);
  if (c % 4 == 0 && sid)
    value = json_stringn(sid, fin_u8(&in) % 17);
  else if (c % 4 == 1)
    value = json_string(c & 0x10 ? "out/" : "cell");
  else
    value = text_json(20, true);
  json_t *params = json_pack("{s:o, s:{s:s, s:o}}", "ref", ref, "argument", "name",
                             names[b >> 2 & 3], "value", value);
  json_t *s = session_arg();
  if (s)
    json_object_set_new(params, "context", json_pack("{s:{s:o}}", "arguments", "session_id", s));
  if (b & 0x40)
    json_object_del(params, "argument");
  return request("completion/complete", params);
}

static json_t *
build_level(void)
{
  static const char *const levels[] = { "debug",    "info",  "notice",    "warning", "error",
                                        "critical", "alert", "emergency", "loud",    "Debug" };
  uint8_t b = fin_u8(&in);
  json_t *level = b % 12 < 10 ? json_string(levels[b % 12]) : text_json(10, true);
  return request("logging/setLevel", json_pack("{s:o}", "level", level));
}

static json_t *
build_cancel(void)
{
  uint8_t b = fin_u8(&in);
  json_t *rid = json_array_size(ids) && b % 4
                    ? json_incref(json_array_get(ids, fin_u8(&in) % json_array_size(ids)))
                    : make_id();
  json_t *m
      = json_pack("{s:s, s:s, s:{s:o, s:s}}", "jsonrpc", "2.0", "method", "notifications/cancelled",
                  "params", "requestId", rid, "reason", "the user pressed stop");
  if (b & 0x10)
    json_object_set_new(m, "id", make_id());
  return m;
}

static json_t *
build_misc(void)
{
  uint8_t b = fin_u8(&in);
  switch (b % 8) {
  case 0:
    return request("ping", b & 0x10 ? json_array() : NULL);
  case 1:
    return json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
  case 2: {
    /* A method kiln lacks, and one that is a method kiln has but for the
       NUL at its end.  */
    json_t *m = request("prompts/list", NULL);
    if (b & 0x10)
      json_object_set_new(m, "method", json_stringn("tools/call\0", 11));
    return m;
  }
  case 3:
    return json_pack("{s:s, s:o, s:{}}", "jsonrpc", "2.0", "id", make_id(), "result");
  case 4:
    return json_pack("{s:s, s:o, s:s}", "jsonrpc", "1.0", "id", make_id(), "method", "ping");
  case 5:
    return json_pack("{s:s, s:o, s:i}", "jsonrpc", "2.0", "id", make_id(), "method", 7);
  case 6:
    return json_pack("{s:s, s:o, s:s, s:i}", "jsonrpc", "2.0", "id", make_id(), "method", "ping",
                     "params", 3);
  default:
    return json_pack("{s:s, s:o}", "jsonrpc", "2.0", "id", make_id());
  }
}

static json_t *build_one(uint8_t op);

static json_t *
build_batch(void)
{
  uint8_t b = fin_u8(&in);
  json_t *batch = json_array();
  for (size_t i = 0, n = b % 6; i < n; i++) {
    uint8_t op = fin_u8(&in);
    if (op % 16 == 15)
      json_array_append_new(batch, op & 0x10 ? json_integer(1) : json_array());
    else
      json_array_append_new(batch, build_one(OP_INITIALIZE + op % (OP_BATCH - OP_INITIALIZE)));
  }
  return batch;
}

static json_t *
build_one(uint8_t op)
{
  switch (op) {
  case OP_INITIALIZE:
    return build_initialize();
  case OP_RUN:
    return build_run();
  case OP_FILE:
    return build_file();
  case OP_SESSIONS:
    return build_sessions();
  case OP_READ:
    return build_read();
  case OP_LIST:
    return build_list();
  case OP_COMPLETE:
    return build_complete();
  case OP_LEVEL:
    return build_level();
  case OP_CANCEL:
    return build_cancel();
  case OP_MISC:
    return build_misc();
  default:
    return build_batch();
  }
}

/* ---------------------------------------------------------------- the run */

static void
raw(void)
{
  size_t len = fin_u8(&in);
  if (len == 255)
    len = fin_u16(&in);
  const uint8_t *p = fin_bytes(&in, len, &len);
  deliver((const char *)p, len, 0);
}

/* A built message cut short, with a byte changed, or only its start
   given as too long.  */
static void
mangled(bool too_long)
{
  uint8_t how = fin_u8(&in);
  json_t *msg = build_one(OP_INITIALIZE + fin_u8(&in) % (OP_MANGLED - OP_INITIALIZE));
  char *text = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(msg);
  size_t len = strlen(text), at = len ? fin_u16(&in) % len : 0;
  if (too_long)
    deliver(text, at, cfg.max_message + 1 + fin_u16(&in));
  else if (how & 1)
    deliver(text, at, 0);
  else {
    if (len)
      text[at] = (char)fin_u8(&in);
    deliver(text, len, 0);
  }
  free(text);
}

static void
front_logs(void)
{
  uint8_t level = fin_u8(&in);
  size_t len;
  const uint8_t *p = fin_bytes(&in, fin_u8(&in) % 80, &len);
  cleanup_free char *text = xstrndup((const char *)p, len);
  log_msg((enum log_level)(level % 4), "%s", text);
}

static void
setup(void)
{
  uint8_t limits = fin_u8(&in);
  static const size_t replies[] = { 0, 1024, 3000, 1 << 16 };
  cfg = (struct kiln_config){
    .timeout_s = 30,
    .max_timeout_s = 600,
    .max_reply = replies[limits & 3],
    .max_sessions = 1 + (limits >> 2 & 3),
    .max_queued = 1 + (limits >> 4 & 3),
    .max_code = limits & 0x40 ? 16 : 1 << 20,
    .max_message = 1 << 20,
  };
  static const struct fake_hooks hooks = { on_cell_reply, on_file_reply, NULL };
  front = fake_front_new(&in, &cfg, &hooks);
  server = mcp_server_new(&cfg, front);
  ids = json_array();
  tokens = json_array();
  counter = 0;
  idle_calls = 0;
  view = view_new();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* The log goes to the clients that ask, never to stderr here.  */
  log_setup(-1, 0);
  trace = getenv("FUZZ_MCP_TRACE") != NULL;
  in = (struct fuzz_in){ data, size };
  uint8_t first = fin_u8(&in);
  setup();
  if (first & 1) {
    cleanup_free char *init
        = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":\"init\",\"method\":\"initialize\",\"params\":{"
                    "\"protocolVersion\":\"%s\"}}",
                    version_names[first >> 1 & 3]);
    json_array_append_new(ids, json_string("init"));
    deliver(init, strlen(init), 0);
  }
  for (size_t ops = 0; in.n > 0 && ops < MAX_OPS; ops++) {
    uint8_t op = fin_u8(&in) % OP_COUNT;
    switch (op) {
    case OP_RAW:
      raw();
      break;
    case OP_TOO_LONG:
      mangled(true);
      break;
    case OP_MANGLED:
      mangled(false);
      break;
    case OP_ANSWER:
      fake_front_answer(front, fin_u8(&in));
      break;
    case OP_OUTPUT: {
      uint8_t i = fin_u8(&in);
      fake_front_output(front, i, fin_u8(&in) * 4u);
      break;
    }
    case OP_LOG:
      front_logs();
      break;
    case OP_FRONT: {
      unsigned mood = fin_u8(&in);
      size_t len;
      const uint8_t *reply = fin_bytes(&in, fin_u8(&in), &len);
      fake_front_mood(front, mood, reply, len);
      break;
    }
    case OP_CLOSE:
      reconnect();
      break;
    default:
      deliver_json(build_one(op));
    }
  }
  /* The end of the client's input: everything the front holds is
     answered, and every request with it.  */
  mcp_conn_when_idle(view->c, on_idle, NULL);
  for (size_t k = 0; fake_front_pending(front) > 0 && k < 100000; k++)
    fake_front_answer(front, 0);
  FUZZ_CHECK(fake_front_pending(front) == 0);
  FUZZ_CHECK(idle_calls == 1);
  check_all_answered(view);
  mcp_conn_free(view->c);
  view_free(view);
  view = NULL;
  mcp_server_free(server);
  front_free(front);
  json_decref(ids);
  json_decref(tokens);
  return 0;
}
