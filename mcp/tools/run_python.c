/* run_python: a cell run in a session, answered when the cell is done,
   and how its reply is shown (text a model reads first, images, links to
   the files it wrote, and structuredContent with every field).  */
#define _GNU_SOURCE
#include "tools.h"
#include "conn.h"
#include "uri.h"
#include "util.h"

#include <math.h>
#include <string.h>

static const char run_python_description[]
    = "Run Python 3.12 code in a persistent, sandboxed session (like a notebook cell). Variables, "
      "imports and "
      "functions persist between calls with the same session_id; omit session_id to start a new "
      "session and use "
      "the session_id from the reply afterwards. If the last statement is an expression its value "
      "is returned as "
      "the result (like a notebook's Out). stdout and stderr are returned separately. numpy, "
      "pandas, matplotlib "
      "and PIL are already imported in the interpreter and cost nothing to import. Top-level "
      "`await` works. "
      "input() is not available. A cell that runs past timeout_s is interrupted "
      "(KeyboardInterrupt; the session "
      "keeps its state); one that does not stop is killed and the session starts over.";

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
      "\"stdout\":{\"type\":\"string\"},"
      "\"stderr\":{\"type\":\"string\"},"
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
      "\"required\":[\"session_id\",\"status\",\"execution_count\",\"result\",\"stdout\","
      "\"stderr\",\"stdout_dropped\","
      "\"stderr_dropped\",\"error\",\"new_session\",\"state_lost\",\"notice\",\"duration_ms\"]"
      "}";

static const char *const status_names[] = { "ok", "error", "interrupted", "killed", "crashed" };

static void
append(char **text, size_t *len, const char *s, size_t n)
{
  if (n == 0)
    return;
  bool sep = *len > 0 && (*text)[*len - 1] != '\n';
  *text = xrealloc(*text, *len + n + 2);
  if (sep)
    (*text)[(*len)++] = '\n';
  memcpy(*text + *len, s, n);
  *len += n;
  (*text)[*len] = '\0';
}

static void
appends(char **text, size_t *len, const char *s)
{
  append(text, len, s, strlen(s));
}

/* Adds a line to STR, the text block's string, by lengths: cell output
   may hold NUL bytes.  The placeholder for an empty text goes.  */
static void
join_line(json_t *str, const char *add, size_t n)
{
  static const char none[] = "(no output)";
  const char *old = json_string_value(str);
  size_t olen = json_string_length(str);
  if (olen == strlen(none) && memcmp(old, none, olen) == 0)
    olen = 0;
  struct buf b = { 0 };
  if (olen) {
    buf_append(&b, old, olen);
    buf_append(&b, "\n", 1);
  }
  if (n)
    buf_append(&b, add, n);
  buf_append(&b, "", 1);
  json_string_setn(str, (const char *)b.data, b.len - 1);
  buf_free(&b);
}

/* Images sent inline per reply, and their bytes in all; past either, an
   image is a resource link the client can read when it wants it.  */
#define MAX_INLINE_IMAGES 8
#define MAX_INLINE_BYTES  (4u << 20)

/* Adds what the cell showed: an image block per image (or a resource link
   past the caps), its metadata to ARTIFACTS, text forms to DISPLAY and the
   plain-text ones to TEXT, the string of the block a model reads.  */
static void
add_outputs(const struct cell_reply *r, json_t *text, json_t *content, json_t *artifacts,
            json_t *display, json_t *files)
{
  size_t images = 0, bytes = 0;
  for (size_t i = 0; i < r->noutputs; i++) {
    const struct cell_output *o = &r->outputs[i];
    if (strcmp(o->mime, FILE_MIME) == 0) {
      /* The front's o->uri holds the path as it is; the link must be a
         URI, so it is built here from the path, encoded.  */
      cleanup_free char *uri = uri_file(r->session_id, o->name, strlen(o->name));
      json_array_append_new(files, json_pack("{s:s, s:s, s:I}", "path", o->name, "uri", uri, "size",
                                             (json_int_t)o->len));
      json_array_append_new(content,
                            json_pack("{s:s, s:s, s:s, s:I}", "type", "resource_link", "uri", uri,
                                      "name", o->name, "size", (json_int_t)o->len));
      continue;
    }
    if (o->uri == NULL) {
      json_array_append_new(display, json_pack("{s:s, s:s%}", "mime", o->mime, "text",
                                               (const char *)o->data, o->len));
      if (strcmp(o->mime, "text/plain") == 0 || strcmp(o->mime, "text/markdown") == 0)
        join_line(text, (const char *)o->data, o->len);
      continue;
    }
    cleanup_free char *uri = uri_artifact(r->session_id, o->name);
    json_array_append_new(artifacts,
                          json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "name", o->name, "uri",
                                    uri, "mime", o->mime, "size", (json_int_t)o->len, "width",
                                    (json_int_t)o->width, "height", (json_int_t)o->height, "cell",
                                    (json_int_t)r->execution_count));
    const uint8_t *data = o->inline_data ? o->inline_data : o->data;
    size_t len = o->inline_data ? o->inline_len : o->len;
    if (images < MAX_INLINE_IMAGES && bytes + len <= MAX_INLINE_BYTES) {
      cleanup_free char *b64 = base64_encode(data, len);
      json_array_append_new(
          content, json_pack("{s:s, s:s, s:s}", "type", "image", "data", b64, "mimeType", o->mime));
      images++;
      bytes += len;
    } else
      json_array_append_new(content, json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", "resource_link",
                                               "uri", uri, "name", o->name, "mimeType", o->mime,
                                               "size", (json_int_t)o->len));
  }
  if (json_string_length(text) == 0 && r->result == NULL)
    json_string_set(text, "(no output)");
}

json_t *
tools_cell_result(const struct cell_reply *r)
{
  /* The text block is what a model reads: output first, then what went
     wrong, then the value, as a notebook shows them.  */
  char *text = NULL;
  size_t len = 0;
  if (r->state_lost && r->notice)
    appends(&text, &len, r->notice);
  append(&text, &len, r->out, r->out_len);
  if (r->err_len) {
    appends(&text, &len, "[stderr]");
    append(&text, &len, r->err, r->err_len);
  }
  if (r->err_type) {
    if (r->err_traceback && r->err_traceback[0])
      appends(&text, &len, r->err_traceback);
    else {
      cleanup_free char *line
          = xasprintf("%s: %s", r->err_type, r->err_message ? r->err_message : "");
      appends(&text, &len, line);
    }
    /* The notice (deadline, kill, crash) unless the line above said it.  */
    bool said = !(r->err_traceback && r->err_traceback[0]) && r->err_message && r->notice
                && strcmp(r->notice, r->err_message) == 0;
    if (r->notice && !r->state_lost && !said)
      appends(&text, &len, r->notice);
  }
  if (len == 0 && r->result == NULL)
    appends(&text, &len, "(no output)");

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
  json_object_set_new(sc, "stdout", json_stringn(r->out, r->out_len));
  json_object_set_new(sc, "stderr", json_stringn(r->err, r->err_len));
  json_object_set_new(sc, "stdout_dropped", json_integer((json_int_t)r->out_dropped));
  json_object_set_new(sc, "stderr_dropped", json_integer((json_int_t)r->err_dropped));
  json_object_set_new(sc, "error", error);
  json_object_set_new(sc, "new_session", json_boolean(r->new_session));
  json_object_set_new(sc, "state_lost", json_boolean(r->state_lost));
  json_object_set_new(sc, "notice", r->notice ? json_string(r->notice) : json_null());
  json_object_set_new(sc, "duration_ms", json_real(round(r->duration_ms * 1000) / 1000));
  json_t *artifacts = json_array(), *display = json_array(), *files = json_array();
  json_t *block_text = json_stringn(text ? text : "", len);
  free(text);
  json_t *content = json_pack("[{s:s, s:o}]", "type", "text", "text", block_text);
  if (content == NULL) {
    /* Not valid UTF-8 after all: the caller answers with an internal
       error rather than a reply missing its text.  */
    json_decref(artifacts), json_decref(display), json_decref(files), json_decref(sc);
    return NULL;
  }
  add_outputs(r, block_text, content, artifacts, display, files);
  json_object_set_new(sc, "files", files);
  /* The value last, after what the cell displayed, as a notebook's Out.  */
  if (r->result)
    join_line(block_text, r->result, strlen(r->result));
  json_object_set_new(sc, "artifacts", artifacts);
  json_object_set_new(sc, "display", display);
  if (r->outputs_dropped)
    json_object_set_new(sc, "outputs_dropped", json_integer((json_int_t)r->outputs_dropped));
  return json_pack("{s:o, s:o, s:b}", "content", content, "structuredContent", sc, "isError",
                   r->status != REPLY_OK);
}

static void
on_cell_reply(void *ctx, const struct cell_reply *r)
{
  mcp_answer(ctx, tools_cell_result(r));
}

static int
run_python(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  const char *code, *session_id;
  size_t len;
  double timeout;
  if (tools_run_python_args(args, &code, &len, &session_id, &timeout, err) < 0)
    return -1;
  struct mcp_pending *p = mcp_defer(c, sizeof *p, MCP_TOOL_ERROR);
  int64_t h
      = front_run_cell(c->server->front, session_id, code, len, timeout, on_cell_reply, p, err);
  return mcp_started(p, h);
}

const struct mcp_tool tool_run_python = {
  "run_python",     "Run Python",      run_python_description,
  run_python_input, run_python_output, run_python,
};
