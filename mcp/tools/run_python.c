/* run_python: a cell run in a session, answered when the cell is done,
   and how its reply is shown (text a model reads first, images, links to
   the files it wrote, and structuredContent with every field).  */
#define _GNU_SOURCE
#include "tools.h"
#include "conn.h"
#include "uri.h"
#include "utf8.h"
#include "owners.h"
#include "util.h"

#include <math.h>
#include <string.h>

static const char run_python_description[]
    = "Run Python 3.12 code in a persistent, sandboxed session (like a notebook cell). Variables, "
      "imports and functions persist between calls with the same session_id; omit session_id to "
      "start a new session. The reply's first line names it: [session ID \xc2\xb7 cell N \xc2\xb7 "
      "T ms]. If the last statement is an expression its value is the result (like a notebook's "
      "Out). Printed output, display() and figures come back in the order the cell made them; "
      "long output is cut to its head and tail, the whole kept as a kiln:// resource the reply "
      "names. numpy, pandas, matplotlib and PIL are already imported in the interpreter and cost "
      "nothing to import. Top-level `await` works; input() is not available. Files the cell writes "
      "in its working directory (/work) are listed as resources. A cell that runs past timeout_s "
      "is interrupted (KeyboardInterrupt; the session keeps its state); one that does not stop "
      "is killed and the session starts over. The session has no network.";

static const char run_python_input[]
    = "{"
      "\"type\":\"object\","
      "\"properties\":{"
      "\"code\":{\"type\":\"string\",\"description\":\"Python source to run.\"},"
      "\"session_id\":{\"type\":\"string\",\"description\":\"A session_id from an earlier reply; "
      "omit to start a new session.\"},"
      "\"timeout_s\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"description\":\"Wall-clock "
      "limit for this cell in seconds.\"}"
      "},"
      "\"required\":[\"code\"],"
      "\"additionalProperties\":false"
      "}";

static const char run_python_output[]
    = "{"
      "\"type\":\"object\","
      "\"properties\":{"
      "\"session_id\":{\"type\":\"string\"},"
      "\"status\":{\"type\":\"string\",\"enum\":[\"ok\",\"error\",\"interrupted\",\"killed\","
      "\"crashed\"]},"
      "\"execution_count\":{\"type\":\"integer\"},"
      "\"result\":{\"type\":[\"string\",\"null\"]},"
      "\"stdout\":{\"type\":\"string\",\"description\":\"The whole stdout when it is at most "
      "4096 bytes; otherwise read stdout_uri.\"},"
      "\"stderr\":{\"type\":\"string\"},"
      "\"stdout_bytes\":{\"type\":\"integer\"},"
      "\"stderr_bytes\":{\"type\":\"integer\"},"
      "\"stdout_uri\":{\"type\":\"string\"},"
      "\"stderr_uri\":{\"type\":\"string\"},"
      "\"stdout_dropped\":{\"type\":\"integer\"},"
      "\"stderr_dropped\":{\"type\":\"integer\"},"
      "\"error\":{\"type\":[\"object\",\"null\"],\"properties\":{"
      "\"type\":{\"type\":\"string\"},\"message\":{\"type\":\"string\"},\"traceback\":{\"type\":"
      "\"string\"},"
      "\"lineno\":{\"type\":\"integer\"},\"offset\":{\"type\":\"integer\"}}},"
      "\"new_session\":{\"type\":\"boolean\"},"
      "\"state_lost\":{\"type\":\"boolean\"},"
      "\"notice\":{\"type\":[\"string\",\"null\"]},"
      "\"duration_ms\":{\"type\":\"number\"},"
      "\"artifacts\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
      "\"display\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
      "\"files\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
      "\"outputs_dropped\":{\"type\":\"integer\"}"
      "},"
      "\"required\":[\"session_id\",\"status\",\"execution_count\",\"result\",\"stdout_bytes\","
      "\"stderr_bytes\",\"stdout_dropped\","
      "\"stderr_dropped\",\"error\",\"new_session\",\"state_lost\",\"notice\",\"duration_ms\"]"
      "}";

static const char *const status_names[] = { "ok", "error", "interrupted", "killed", "crashed" };

/* Images sent inline per reply, and their bytes in all; past either, an
   image is a resource link the client can read when it wants it.  */
#define MAX_INLINE_IMAGES 8
#define MAX_INLINE_BYTES  (1u << 20)
/* The least --max-reply is taken to be.  */
#define MIN_REPLY 1024
/* The most parts a reply's text is made of; display texts past them are
   in structuredContent only.  */
#define MAX_PARTS 64

/* One piece of the text a model reads, and how much of it is shown.  */
struct part {
  const char *label; /* a line before it ("[stderr]"), or NULL */
  const char *s;
  size_t n;
  bool budgeted;   /* shares --max-reply; otherwise always whole */
  size_t floor;    /* shown whole up to this length whatever the budget */
  const char *uri; /* where the whole of it can be read, or NULL */
  size_t give;     /* bytes shown */
  /* Set by show_part: the shown head's end, where the shown tail
     begins, and the length of the line between.  */
  size_t head, tail, marker_len;
};

/* Shares BUDGET among the budgeted parts: each gets its length or an
   equal share of what the shorter ones left, whichever is less (so short
   parts are whole and long ones split the rest), but at least its
   floor.  */
static void
share_budget(struct part *p, size_t np, size_t budget)
{
  size_t left = budget, nleft = 0;
  bool done[MAX_PARTS] = { false };
  for (size_t i = 0; i < np; i++) {
    p[i].give = p[i].n;
    if (p[i].budgeted)
      nleft++;
    else
      left = left > p[i].n ? left - p[i].n : 0;
  }
  while (nleft > 0) {
    /* The shortest part not yet given its share.  */
    size_t best = np;
    for (size_t i = 0; i < np; i++)
      if (p[i].budgeted && !done[i] && (best == np || p[i].n < p[best].n))
        best = i;
    size_t share = left / nleft;
    size_t g = p[best].n < share ? p[best].n : share;
    size_t floor = p[best].floor < p[best].n ? p[best].floor : p[best].n;
    if (g < floor)
      g = floor;
    p[best].give = g;
    left = left > g ? left - g : 0;
    done[best] = true;
    nleft--;
  }
}

/* Appends part P to B as it is shown: whole, or its head and tail around
   a line saying how much is not shown and where all of it is.  Records
   in P where the cut is, for shown_pos.  */
static void
show_part(struct buf *b, struct part *p)
{
  if (p->n == 0)
    return;
  if (b->len > 0 && b->data[b->len - 1] != '\n')
    buf_append(b, "\n", 1);
  if (p->label) {
    buf_append(b, p->label, strlen(p->label));
    buf_append(b, "\n", 1);
  }
  if (p->give >= p->n) {
    p->head = p->tail = p->n;
    buf_append(b, p->s, p->n);
    return;
  }
  size_t head = utf8_boundary_before(p->s, p->give * 2 / 3);
  size_t tail = p->n - (p->give - p->give * 2 / 3);
  while (tail < p->n && ((unsigned char)p->s[tail] & 0xc0) == 0x80)
    tail++;
  buf_append(b, p->s, head);
  cleanup_free char *marker
      = p->uri ? xasprintf("\n[... %zu bytes not shown; all of it: %s ...]\n", tail - head, p->uri)
               : xasprintf("\n[... %zu bytes not shown ...]\n", tail - head);
  buf_append(b, marker, strlen(marker));
  buf_append(b, p->s + tail, p->n - tail);
  p->head = head;
  p->tail = tail;
  p->marker_len = strlen(marker);
}

/* Where byte POS of part P's text lands in what show_part made of it
   (the end of the marker line for a byte not shown).  */
static size_t
shown_pos(const struct part *p, size_t pos)
{
  if (pos <= p->head)
    return pos;
  if (pos < p->tail)
    return p->head + p->marker_len;
  return p->head + p->marker_len + (pos - p->tail);
}

/* Whether output O is a text form a model reads in the text block.  */
static bool
shown_as_text(const struct cell_output *o)
{
  return o->uri == NULL
         && (strcmp(o->mime, "text/plain") == 0 || strcmp(o->mime, "text/markdown") == 0);
}

/* The reply's content under construction: blocks so far, and the text
   that will be the next text block.  */
struct content {
  json_t *blocks;
  struct buf text;
  bool failed; /* a text was not valid UTF-8 */
};

/* Ends the text under way as a text block, if it holds anything.  */
static void
end_text(struct content *c)
{
  size_t n = c->text.len;
  while (n > 0 && c->text.data[n - 1] == '\n')
    n--;
  if (n > 0) {
    json_t *t = json_stringn((const char *)c->text.data, n);
    if (t == NULL)
      c->failed = true;
    else
      json_array_append_new(c->blocks, json_pack("{s:s, s:o}", "type", "text", "text", t));
  }
  buf_consume(&c->text, c->text.len);
}

/* Adds image output O: inline while the reply's image caps allow
   (*IMAGES, *BYTES so far), else a resource link.  */
static void
add_image(struct content *c, const struct cell_reply *r, const struct cell_output *o,
          size_t *images, size_t *bytes)
{
  end_text(c);
  cleanup_free char *uri = uri_artifact(r->session_id, o->name);
  const uint8_t *data = o->inline_data ? o->inline_data : o->data;
  size_t len = o->inline_data ? o->inline_len : o->len;
  if (*images < MAX_INLINE_IMAGES && *bytes + len <= MAX_INLINE_BYTES) {
    cleanup_free char *b64 = base64_encode(data, len);
    json_array_append_new(
        c->blocks, json_pack("{s:s, s:s, s:s}", "type", "image", "data", b64, "mimeType", o->mime));
    (*images)++;
    *bytes += len;
  } else
    json_array_append_new(c->blocks, json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", "resource_link",
                                               "uri", uri, "name", o->name, "mimeType", o->mime,
                                               "size", (json_int_t)o->len));
}

/* The content a model reads, in the order a notebook shows it: a header
   naming the session; the cell's stdout with what it displayed (texts,
   images) where it displayed them; then stderr, what went wrong and the
   value; then links to the files it wrote.  Text is kept within
   MAX_REPLY bytes (see share_budget).  Returns NULL if a text was not
   valid UTF-8.  */
static json_t *
cell_content(const struct cell_reply *r, size_t max_reply, const char *out_uri, const char *err_uri)
{
  struct part parts[MAX_PARTS];
  size_t np = 0, display_part[MAX_PARTS];
#define PART(...) parts[np++] = (struct part){ __VA_ARGS__ }
  PART(.s = r->state_lost && r->notice ? r->notice : "",
       .n = r->state_lost && r->notice ? strlen(r->notice) : 0);
  size_t out_part = np;
  PART(.s = r->out, .n = r->out_len, .budgeted = true, .floor = FRONT_OUTPUT_INLINE_MAX,
       .uri = out_uri);
  /* Display texts past the table's room are in structuredContent only.  */
  for (size_t i = 0; i < r->noutputs && i < MAX_PARTS; i++) {
    display_part[i] = SIZE_MAX;
    if (np < MAX_PARTS - 5 && shown_as_text(&r->outputs[i])) {
      display_part[i] = np;
      PART(.s = (const char *)r->outputs[i].data, .n = r->outputs[i].len, .budgeted = true);
    }
  }
  size_t tail_parts = np;
  PART(.label = "[stderr]", .s = r->err, .n = r->err_len, .budgeted = true,
       .floor = FRONT_OUTPUT_INLINE_MAX, .uri = err_uri);
  cleanup_free char *line = NULL;
  if (r->err_type) {
    if (r->err_traceback && r->err_traceback[0])
      PART(.s = r->err_traceback, .n = strlen(r->err_traceback), .budgeted = true);
    else {
      line = xasprintf("%s: %s", r->err_type, r->err_message ? r->err_message : "");
      PART(.s = line, .n = strlen(line), .budgeted = true);
    }
    /* The notice (deadline, kill, crash) unless the line above said it.  */
    bool said = !(r->err_traceback && r->err_traceback[0]) && r->err_message && r->notice
                && strcmp(r->notice, r->err_message) == 0;
    if (r->notice && !r->state_lost && !said)
      PART(.s = r->notice, .n = strlen(r->notice));
  } else if (r->notice && !r->state_lost)
    /* A cell that called exit(0), a session that is not isolated.  */
    PART(.s = r->notice, .n = strlen(r->notice));
  if (r->result)
    PART(.s = r->result, .n = strlen(r->result), .budgeted = true);
  /* A shell command's end, last, as a terminal shows it.  */
  cleanup_free char *exit_line = NULL;
  if (r->shell && (r->exit_code >= 0 || r->signal > 0)) {
    exit_line = r->exit_code >= 0
                    ? xasprintf("[exit status %d]", r->exit_code)
                    : xasprintf("[killed by %s (signal %d)]", signal_name(r->signal), r->signal);
    PART(.s = exit_line, .n = strlen(exit_line));
  }
#undef PART
  share_budget(parts, np, max_reply < MIN_REPLY ? MIN_REPLY : max_reply);

  struct content c = { .blocks = json_array() };
  cleanup_free char *header = xasprintf(
      "[session %s \xc2\xb7 %s %llu \xc2\xb7 %.0f ms%s%s%s%s]\n", r->session_id,
      r->shell ? "command" : "cell", (unsigned long long)r->execution_count, r->duration_ms,
      r->new_session ? " \xc2\xb7 new session" : "", r->state_lost ? " \xc2\xb7 state lost" : "",
      r->status != REPLY_OK ? " \xc2\xb7 " : "",
      r->status != REPLY_OK ? status_names[r->status] : "");
  buf_append(&c.text, header, strlen(header));
  show_part(&c.text, &parts[0]);
  /* Stdout as shown, cut into the pieces between the outputs.  */
  struct buf out = { 0 };
  show_part(&out, &parts[out_part]);
  size_t at = 0, images = 0, bytes = 0;
  bool any = parts[0].n > 0 || out.len > 0;
  /* Twice over the outputs: those shown while the cell ran, between its
     lines; then, after the rest of the text, those with no place (the
     figures still open at the end, as a notebook shows them after the
     value).  */
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < r->noutputs; i++) {
      const struct cell_output *o = &r->outputs[i];
      bool image = o->uri && strcmp(o->mime, FILE_MIME) != 0;
      bool text = i < MAX_PARTS && display_part[i] != SIZE_MAX;
      if ((!image && !text) || (o->out_pos == SIZE_MAX) != (pass == 1))
        continue;
      if (pass == 0) {
        size_t to = shown_pos(&parts[out_part], o->out_pos);
        to = utf8_boundary_before((const char *)out.data, to > out.len ? out.len : to);
        if (to > at) {
          buf_append(&c.text, out.data + at, to - at);
          at = to;
        }
      }
      if (text)
        show_part(&c.text, &parts[display_part[i]]);
      else
        add_image(&c, r, o, &images, &bytes);
      any = true;
    }
    if (pass == 0) {
      /* An empty stdout has no buffer at all: NULL + 0 is undefined.  */
      if (out.len > at)
        buf_append(&c.text, out.data + at, out.len - at);
      for (size_t i = tail_parts; i < np; i++) {
        any = any || parts[i].n > 0;
        show_part(&c.text, &parts[i]);
      }
    }
  }
  buf_free(&out);
  if (!any)
    buf_append(&c.text, "(no output)", 11);
  end_text(&c);
  buf_free(&c.text);
  /* The files the cell wrote, last.  */
  for (size_t i = 0; i < r->noutputs; i++) {
    const struct cell_output *o = &r->outputs[i];
    if (strcmp(o->mime, FILE_MIME) != 0)
      continue;
    /* The front's o->uri holds the path as it is; the link must be a
       URI, so it is built here from the path, encoded.  */
    cleanup_free char *uri = uri_file(r->session_id, o->name, strlen(o->name));
    json_array_append_new(c.blocks,
                          json_pack("{s:s, s:s, s:s, s:I}", "type", "resource_link", "uri", uri,
                                    "name", o->name, "size", (json_int_t)o->len));
  }
  if (c.failed) {
    json_decref(c.blocks);
    return NULL;
  }
  return c.blocks;
}

/* Adds what the cell showed to structuredContent: the metadata of its
   images to ARTIFACTS, its text forms to DISPLAY, and the files it
   wrote to FILES.  */
static void
add_outputs(const struct cell_reply *r, json_t *artifacts, json_t *display, json_t *files)
{
  for (size_t i = 0; i < r->noutputs; i++) {
    const struct cell_output *o = &r->outputs[i];
    if (strcmp(o->mime, FILE_MIME) == 0) {
      cleanup_free char *uri = uri_file(r->session_id, o->name, strlen(o->name));
      json_array_append_new(files, json_pack("{s:s, s:s, s:I}", "path", o->name, "uri", uri, "size",
                                             (json_int_t)o->len));
    } else if (o->uri == NULL)
      json_array_append_new(display, json_pack("{s:s, s:s%}", "mime", o->mime, "text",
                                               (const char *)o->data, o->len));
    else {
      cleanup_free char *uri = uri_artifact(r->session_id, o->name);
      json_array_append_new(artifacts,
                            json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "name", o->name, "uri",
                                      uri, "mime", o->mime, "size", (json_int_t)o->len, "width",
                                      (json_int_t)o->width, "height", (json_int_t)o->height, "cell",
                                      (json_int_t)r->execution_count));
    }
  }
}

/* Adds a stream's fields to SC: its size and what was dropped, and its
   text when it is short or else the URI of the kept whole, which the
   text block cut.  */
static void
add_stream(json_t *sc, const char *name, const char *s, size_t n, uint64_t dropped, const char *uri)
{
  cleanup_free char *bytes = xasprintf("%s_bytes", name);
  cleanup_free char *drop = xasprintf("%s_dropped", name);
  cleanup_free char *key_uri = xasprintf("%s_uri", name);
  json_object_set_new(sc, bytes, json_integer((json_int_t)n));
  json_object_set_new(sc, drop, json_integer((json_int_t)dropped));
  if (uri)
    json_object_set_new(sc, key_uri, json_string(uri));
  else
    json_object_set_new(sc, name, json_stringn(s, n));
}

json_t *
tools_cell_result(const struct cell_reply *r, size_t max_reply)
{
  cleanup_free char *out_uri
      = r->out_kept ? uri_cell_output(r->session_id, r->execution_count, 1) : NULL;
  cleanup_free char *err_uri
      = r->err_kept ? uri_cell_output(r->session_id, r->execution_count, 2) : NULL;
  json_t *error = json_null();
  if (r->err_type) {
    error = json_pack("{s:s, s:s, s:s}", "type", r->err_type, "message",
                      r->err_message ? r->err_message : "", "traceback",
                      r->err_traceback ? r->err_traceback : "");
    if (r->err_lineno >= 0)
      json_object_set_new(error, "lineno", json_integer(r->err_lineno));
    if (r->err_offset >= 0)
      json_object_set_new(error, "offset", json_integer(r->err_offset));
  }
  json_t *sc = json_object();
  json_object_set_new(sc, "session_id", json_string(r->session_id));
  json_object_set_new(sc, "status", json_string(status_names[r->status]));
  json_object_set_new(sc, "execution_count", json_integer((json_int_t)r->execution_count));
  json_object_set_new(sc, "result", r->result ? json_string(r->result) : json_null());
  add_stream(sc, "stdout", r->out, r->out_len, r->out_dropped, out_uri);
  add_stream(sc, "stderr", r->err, r->err_len, r->err_dropped, err_uri);
  json_object_set_new(sc, "error", error);
  json_object_set_new(sc, "new_session", json_boolean(r->new_session));
  json_object_set_new(sc, "state_lost", json_boolean(r->state_lost));
  json_object_set_new(sc, "notice", r->notice ? json_string(r->notice) : json_null());
  json_object_set_new(sc, "duration_ms", json_real(round(r->duration_ms * 1000) / 1000));
  if (r->shell) {
    json_object_set_new(sc, "exit_code",
                        r->exit_code >= 0 ? json_integer(r->exit_code) : json_null());
    json_object_set_new(sc, "signal",
                        r->signal > 0 ? json_string(signal_name(r->signal)) : json_null());
  }
  json_t *content = cell_content(r, max_reply, out_uri, err_uri);
  if (content == NULL) {
    /* Not valid UTF-8 after all: the caller answers with an internal
       error rather than a reply missing its text.  */
    json_decref(sc);
    return NULL;
  }
  json_t *artifacts = json_array(), *display = json_array(), *files = json_array();
  add_outputs(r, artifacts, display, files);
  json_object_set_new(sc, "files", files);
  json_object_set_new(sc, "artifacts", artifacts);
  json_object_set_new(sc, "display", display);
  if (r->outputs_dropped)
    json_object_set_new(sc, "outputs_dropped", json_integer((json_int_t)r->outputs_dropped));
  return json_pack("{s:o, s:o, s:b}", "content", content, "structuredContent", sc, "isError",
                   r->status != REPLY_OK);
}

void
tools_run_release(struct mcp_pending *p)
{
  json_decref(((struct run_pending *)p)->token);
}

/* Progress goes at most this often, this much at a time.  */
#define PROGRESS_INTERVAL_MS 100
#define PROGRESS_MAX_BYTES   8192

static void
on_output(void *ctx, int stream, const char *data, size_t len, uint64_t skipped)
{
  struct run_pending *p = ctx;
  struct buf b = { 0 };
  if (skipped) {
    cleanup_free char *m
        = xasprintf("[... %llu bytes not streamed ...]\n", (unsigned long long)skipped);
    buf_append(&b, m, strlen(m));
  }
  if (stream == 2)
    buf_append(&b, "[stderr] ", 9);
  buf_append(&b, data, len);
  p->sent += skipped + len;
  json_t *params = json_pack("{s:O, s:I, s:s%}", "progressToken", p->token, "progress",
                             (json_int_t)p->sent, "message", (const char *)b.data, b.len);
  buf_free(&b);
  if (params)
    mcp_notify(p->base.conn, "notifications/progress", params);
}

void
tools_run_watch(struct mcp_call *c, int64_t h, struct run_pending *p)
{
  if (h <= 0 || c->progress_token == NULL)
    return;
  p->token = json_incref(c->progress_token);
  front_watch_output(c->server->front, h, PROGRESS_INTERVAL_MS, PROGRESS_MAX_BYTES, on_output, p);
}

static void
on_cell_reply(void *ctx, const struct cell_reply *r)
{
  struct run_pending *p = ctx;
  if (r->new_session)
    mcp_owner_claim(p->base.conn, r->session_id);
  mcp_answer(&p->base, tools_cell_result(r, p->max_reply));
}

static int
run_python(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  const char *code, *session_id;
  size_t len;
  double timeout;
  if (tools_run_python_args(args, &code, &len, &session_id, &timeout, err) < 0
      || mcp_owner_check(c->conn, session_id, true, err) < 0)
    return -1;
  struct run_pending *p = mcp_defer(c, sizeof *p, MCP_TOOL_ERROR);
  p->base.release = tools_run_release;
  p->max_reply = c->server->cfg->max_reply;
  int64_t h
      = front_run_cell(c->server->front, session_id, code, len, timeout, on_cell_reply, p, err);
  tools_run_watch(c, h, p);
  return mcp_started(&p->base, h);
}

const struct mcp_tool tool_run_python = {
  "run_python",      "Run Python", run_python_description, run_python_input,
  run_python_output, run_python,   MCP_TOOL_DESTRUCTIVE,
};
