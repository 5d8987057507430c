#define _GNU_SOURCE
#include "tools.h"
#include "util.h"

#include <math.h>
#include <string.h>
#include <time.h>

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

static const char session_id_input[] = "{"
                                       "\"type\":\"object\","
                                       "\"properties\":{\"session_id\":{\"type\":\"string\","
                                       "\"description\":\"The session to close.\"}},"
                                       "\"required\":[\"session_id\"],"
                                       "\"additionalProperties\":false"
                                       "}";

static const char upload_input[]
    = "{"
      "\"type\":\"object\","
      "\"properties\":{"
      "\"session_id\":{\"type\":\"string\"},"
      "\"path\":{\"type\":\"string\",\"description\":\"Where to write, relative to the session's "
      "/work.\"},"
      "\"content\":{\"type\":\"string\",\"description\":\"The file's content: text, or base64 with "
      "encoding base64.\"},"
      "\"encoding\":{\"type\":\"string\",\"enum\":[\"text\",\"base64\"],\"default\":\"text\"}"
      "},"
      "\"required\":[\"session_id\",\"path\",\"content\"],"
      "\"additionalProperties\":false"
      "}";

static const char list_input[] = "{"
                                 "\"type\":\"object\","
                                 "\"properties\":{"
                                 "\"session_id\":{\"type\":\"string\"},"
                                 "\"path\":{\"type\":\"string\",\"description\":\"A directory "
                                 "relative to /work; omit for all of /work.\"}"
                                 "},"
                                 "\"required\":[\"session_id\"],"
                                 "\"additionalProperties\":false"
                                 "}";

static const char read_input[]
    = "{"
      "\"type\":\"object\","
      "\"properties\":{"
      "\"session_id\":{\"type\":\"string\"},"
      "\"path\":{\"type\":\"string\",\"description\":\"A file relative to /work.\"}"
      "},"
      "\"required\":[\"session_id\",\"path\"],"
      "\"additionalProperties\":false"
      "}";

static const char empty_input[]
    = "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}";

static json_t *
schema(const char *text)
{
  json_error_t e;
  json_t *j = json_loads(text, 0, &e);
  if (j == NULL) {
    /* The schemas are constants: a typo is a bug caught by any test.  */
    fprintf(stderr, "kiln: bad built-in schema: %s\n", e.text);
    abort();
  }
  return j;
}

/* The tools, as tools/list shows them.  */
static const struct tool {
  const char *name, *title, *description;
  const char *input, *output; /* JSON Schema text; OUTPUT may be NULL */
} tools[] = {
  { "run_python", "Run Python", run_python_description, run_python_input, run_python_output },
  { "list_sessions", "List sessions",
    "List the open Python sessions with their state, worker pid, number of cells run, and creation "
    "and "
    "last-use times.",
    empty_input, NULL },
  { "close_session", "Close session",
    "Close a Python session: its interpreter is stopped and its variables are discarded. Use when "
    "a session "
    "is no longer needed.",
    session_id_input, NULL },
  { "upload_file", "Upload a file",
    "Write a file into a session's working directory (/work, the cells' current directory), as "
    "text or "
    "base64. Parent directories are created.",
    upload_input, NULL },
  { "list_files", "List files",
    "List the files in a session's /work (or a directory under it) with their sizes and "
    "modification times.",
    list_input, NULL },
  { "read_file", "Read a file",
    "Read a file from a session's /work: text comes back as text, images as images, other files as "
    "binary "
    "resources.",
    read_input, NULL },
};

json_t *
tools_list(void)
{
  json_t *list = json_array();
  for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++) {
    const struct tool *t = &tools[i];
    json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "name", t->name, "title", t->title, "description",
                          t->description, "inputSchema", schema(t->input));
    if (t->output)
      json_object_set_new(o, "outputSchema", schema(t->output));
    json_array_append_new(list, o);
  }
  return json_pack("{s:o}", "tools", list);
}

json_t *
tools_error_result(const char *message)
{
  return json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", message, "isError",
                   1);
}

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

/* Images sent inline per reply, and their bytes in all; past either, an
   image is a resource link the client can read when it wants it.  */
#define MAX_INLINE_IMAGES 8
#define MAX_INLINE_BYTES  (4u << 20)

/* Adds what the cell showed: an image block per image (or a resource link
   past the caps), its metadata to ARTIFACTS, text forms to DISPLAY and the
   plain-text ones to the text block a model reads.  */
static void
add_outputs(const struct cell_reply *r, json_t *content, json_t *artifacts, json_t *display,
            json_t *files)
{
  size_t images = 0, bytes = 0;
  json_t *text = json_object_get(json_array_get(content, 0), "text");
  for (size_t i = 0; i < r->noutputs; i++) {
    const struct cell_output *o = &r->outputs[i];
    if (strcmp(o->mime, FILE_MIME) == 0) {
      json_array_append_new(files, json_pack("{s:s, s:s, s:I}", "path", o->name, "uri", o->uri,
                                             "size", (json_int_t)o->len));
      json_array_append_new(content,
                            json_pack("{s:s, s:s, s:s, s:I}", "type", "resource_link", "uri",
                                      o->uri, "name", o->name, "size", (json_int_t)o->len));
      continue;
    }
    if (o->uri == NULL) {
      json_array_append_new(display, json_pack("{s:s, s:s%}", "mime", o->mime, "text",
                                               (const char *)o->data, o->len));
      if (strcmp(o->mime, "text/plain") == 0 || strcmp(o->mime, "text/markdown") == 0) {
        const char *old = json_string_value(text);
        cleanup_free char *joined
            = xasprintf("%s%s%.*s", strcmp(old, "(no output)") == 0 ? "" : old,
                        strcmp(old, "(no output)") == 0 || old[0] == '\0' ? "" : "\n", (int)o->len,
                        (const char *)o->data);
        json_string_set(text, joined);
      }
      continue;
    }
    json_array_append_new(artifacts,
                          json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "name", o->name, "uri",
                                    o->uri, "mime", o->mime, "size", (json_int_t)o->len, "width",
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
                                               "uri", o->uri, "name", o->name, "mimeType", o->mime,
                                               "size", (json_int_t)o->len));
  }
  if (json_string_value(text)[0] == '\0' && r->result == NULL)
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
  json_t *content = json_pack("[{s:s, s:s%}]", "type", "text", "text", text ? text : "", len);
  json_t *artifacts = json_array(), *display = json_array(), *files = json_array();
  add_outputs(r, content, artifacts, display, files);
  json_object_set_new(sc, "files", files);
  /* The value last, after what the cell displayed, as a notebook's Out.  */
  if (r->result) {
    json_t *t = json_object_get(json_array_get(content, 0), "text");
    const char *old = json_string_value(t);
    cleanup_free char *joined = xasprintf("%s%s%s", old, old[0] ? "\n" : "", r->result);
    json_string_set(t, joined);
  }
  json_object_set_new(sc, "artifacts", artifacts);
  json_object_set_new(sc, "display", display);
  if (r->outputs_dropped)
    json_object_set_new(sc, "outputs_dropped", json_integer((json_int_t)r->outputs_dropped));
  free(text);
  return json_pack("{s:o, s:o, s:b}", "content", content, "structuredContent", sc, "isError",
                   r->status != REPLY_OK);
}

static json_t *
iso_time(time_t t)
{
  struct tm tm;
  char buf[32];
  gmtime_r(&t, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return json_string(buf);
}

json_t *
tools_sessions_result(const struct session_info *v, size_t n)
{
  json_t *arr = json_array();
  cleanup_free char *text = NULL;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:I, s:I, s:o, s:o}", "session_id", v[i].session_id, "state", v[i].state,
        "pid", v[i].pid ? json_integer(v[i].pid) : json_null(), "execution_count",
        (json_int_t)v[i].execution_count, "queued", (json_int_t)v[i].queued, "created_at",
        iso_time(v[i].created_at), "last_used_at", iso_time(v[i].last_used_at));
    json_array_append_new(arr, o);
    cleanup_free char *line = xasprintf("%s  %-8s  cells=%llu", v[i].session_id, v[i].state,
                                        (unsigned long long)v[i].execution_count);
    appends(&text, &len, line);
  }
  if (n == 0)
    appends(&text, &len, "(no sessions)");
  return json_pack("{s:[{s:s, s:s}], s:{s:o}}", "content", "type", "text", "text", text,
                   "structuredContent", "sessions", arr);
}

static int
check_keys(json_t *args, const char *const *allowed, kiln_error_t *err)
{
  const char *key;
  json_t *v;
  json_object_foreach(args, key, v)
  {
    bool ok = false;
    for (const char *const *a = allowed; *a; a++)
      ok |= strcmp(key, *a) == 0;
    if (!ok)
      return kiln_error_make(err, 0, "unknown argument '%s'", key);
  }
  return 0;
}

int
tools_run_python_args(json_t *args, const char **code, size_t *code_len, const char **session_id,
                      double *timeout, kiln_error_t *err)
{
  static const char *const allowed[] = { "code", "session_id", "timeout_s", NULL };
  if (!json_is_object(args))
    return kiln_error_make(err, 0, "arguments must be an object with a 'code' string");
  if (check_keys(args, allowed, err) < 0)
    return -1;
  json_t *c = json_object_get(args, "code");
  if (c == NULL)
    return kiln_error_make(err, 0, "missing required argument 'code' (the Python source to run)");
  if (!json_is_string(c))
    return kiln_error_make(err, 0, "argument 'code' must be a string");
  *code = json_string_value(c);
  *code_len = json_string_length(c);
  json_t *sid = json_object_get(args, "session_id");
  *session_id = NULL;
  if (sid != NULL && !json_is_null(sid)) {
    if (!json_is_string(sid))
      return kiln_error_make(err, 0, "argument 'session_id' must be a string");
    *session_id = json_string_value(sid);
  }
  json_t *t = json_object_get(args, "timeout_s");
  *timeout = 0;
  if (t != NULL && !json_is_null(t)) {
    if (!json_is_number(t))
      return kiln_error_make(err, 0, "argument 'timeout_s' must be a number of seconds");
    double v = json_number_value(t);
    if (!(v > 0) || !isfinite(v))
      return kiln_error_make(err, 0, "argument 'timeout_s' must be greater than 0 (got %g)", v);
    *timeout = v;
  }
  return 0;
}

int
tools_session_id_arg(json_t *args, const char **session_id, kiln_error_t *err)
{
  static const char *const allowed[] = { "session_id", NULL };
  if (!json_is_object(args))
    return kiln_error_make(err, 0, "arguments must be an object with a 'session_id' string");
  if (check_keys(args, allowed, err) < 0)
    return -1;
  json_t *sid = json_object_get(args, "session_id");
  if (sid == NULL)
    return kiln_error_make(err, 0, "missing required argument 'session_id'");
  if (!json_is_string(sid) || strlen(json_string_value(sid)) != json_string_length(sid))
    return kiln_error_make(err, 0, "argument 'session_id' must be a string");
  *session_id = json_string_value(sid);
  return 0;
}
