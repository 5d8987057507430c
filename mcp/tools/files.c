/* upload_file, list_files and read_file: answered once the session's
   worker has served them between cells; every URI in their replies is
   built with uri.h from the path as given, encoded.  */
#define _GNU_SOURCE
#include "tools/files.h"
#include "tools.h"
#include "conn.h"
#include "pngenc.h"
#include "uri.h"
#include "owners.h"
#include "util.h"

#include <string.h>
#include <time.h>

/* Bytes a read or an upload may move at once.  */
#define MAX_FILE_BYTES (8u << 20)

static const char upload_input[]
    = "{"
      "\"type\":\"object\","
      "\"properties\":{"
      "\"session_id\":{\"type\":\"string\",\"description\":\"A session_id from an earlier reply; "
      "omit to upload into a new session.\"},"
      "\"path\":{\"type\":\"string\",\"description\":\"Where to write, relative to the session's "
      "/work.\"},"
      "\"content\":{\"type\":\"string\",\"description\":\"The file's content: text, or base64 with "
      "encoding base64.\"},"
      "\"encoding\":{\"type\":\"string\",\"enum\":[\"text\",\"base64\"],\"default\":\"text\"}"
      "},"
      "\"required\":[\"path\",\"content\"],"
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

enum file_reply_kind { FR_UPLOAD, FR_LIST, FR_READ, FR_RESOURCE };

struct file_pending {
  struct mcp_pending base; /* first: mcp_defer allocates the whole */
  enum file_reply_kind kind;
  char *path; /* owned, PATH_LEN bytes and a NUL */
  size_t path_len;
};

static const char *
sniff_image(const uint8_t *d, size_t n)
{
  if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
    return "image/png";
  if (n >= 3 && memcmp(d, "\xff\xd8\xff", 3) == 0)
    return "image/jpeg";
  if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
    return "image/gif";
  if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
    return "image/webp";
  return NULL;
}

/* Whether D is text worth showing as text: valid UTF-8 without NUL.  */
static bool
is_text(const uint8_t *d, size_t n)
{
  if (memchr(d, '\0', n))
    return false;
  size_t clean;
  cleanup_free char *s = utf8_sanitize((const char *)d, n, &clean);
  return clean == n && memcmp(s, d, n) == 0;
}

static json_t *
listing_json(const struct file_reply *r, json_t **text_out)
{
  json_t *files = json_array();
  struct buf text = { 0 };
  for (size_t i = 0; i < r->nentries; i++) {
    const struct file_entry *e = &r->entries[i];
    time_t secs = (time_t)(e->mtime_ns / 1000000000);
    struct tm tm;
    char when[32];
    gmtime_r(&secs, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *type = e->kind == 'f'   ? "file"
                       : e->kind == 'd' ? "directory"
                       : e->kind == 'l' ? "symlink"
                                        : "other";
    json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:s}", "path", e->path, "type", type,
                                           "size", (json_int_t)e->size, "modified", when));
    cleanup_free char *line
        = xasprintf("%s%s  %llu bytes  %s\n", e->path, e->kind == 'd' ? "/" : "",
                    (unsigned long long)e->size, when);
    buf_append(&text, line, strlen(line));
  }
  if (r->truncated) {
    static const char more[]
        = "(the listing stops here: it reached its limit of entries, bytes or depth)\n";
    buf_append(&text, more, strlen(more));
  }
  buf_append(&text, "", 1);
  *text_out = json_string(text.len > 1 ? (const char *)text.data : "(no files)\n");
  buf_free(&text);
  return files;
}

static json_t *
read_reply(struct file_pending *p, const struct file_reply *r)
{
  /* An empty file may come with no data at all (the worker sent none).  */
  const uint8_t *data = r->data ? r->data : (const uint8_t *)"";
  const char *image = sniff_image(data, r->len);
  uint32_t w, h;
  /* A PNG is sent as an image only when its header holds up.  */
  if (image && strcmp(image, "image/png") == 0 && !cap_png_check(data, r->len, &w, &h))
    image = NULL;
  bool text = !image && is_text(data, r->len);
  cleanup_free char *uri = uri_file(r->session_id, p->path, p->path_len);
  cleanup_free char *b64 = text ? NULL : base64_encode(data, r->len);
  const char *mime = image ? image : text ? "text/plain" : "application/octet-stream";
  json_t *block;
  if (p->kind == FR_RESOURCE) {
    if (text)
      block = json_pack("{s:s, s:s, s:s%}", "uri", uri, "mimeType", mime, "text",
                        (const char *)data, r->len);
    else
      block = json_pack("{s:s, s:s, s:s}", "uri", uri, "mimeType", mime, "blob", b64);
    return json_pack("{s:[o]}", "contents", block);
  }
  if (text)
    block = json_pack("{s:s, s:s%}", "type", "text", "text", (const char *)data, r->len);
  else if (image)
    block = json_pack("{s:s, s:s, s:s}", "type", "image", "data", b64, "mimeType", image);
  else
    block = json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "resource", "resource", "uri", uri,
                      "mimeType", mime, "blob", b64);
  return json_pack("{s:[o], s:{s:s, s:s%, s:I, s:s}}", "content", block, "structuredContent",
                   "session_id", r->session_id, "path", p->path, p->path_len, "size",
                   (json_int_t)r->len, "mime", mime);
}

static void
on_file_reply(void *ctx, const struct file_reply *r)
{
  struct file_pending *p = ctx;
  if (r->new_session)
    mcp_owner_claim(p->base.conn, r->session_id);
  if (r->status != 0) {
    kiln_error_t err = NULL;
    /* The session made for a failed upload is still open: say which.  */
    kiln_error_make(&err, 0, "%s%s%s%s", r->message ? r->message : strerror(r->status),
                    r->new_session ? " (in a new session, " : "",
                    r->new_session ? r->session_id : "", r->new_session ? ")" : "");
    mcp_fail(&p->base, err);
    kiln_error_release(&err);
    return;
  }
  json_t *res;
  if (p->kind == FR_UPLOAD) {
    cleanup_free char *uri = uri_file(r->session_id, p->path, p->path_len);
    cleanup_free char *text
        = r->new_session
              ? xasprintf("Wrote /work/%s in a new session, session_id %s.", p->path, r->session_id)
              : xasprintf("Wrote /work/%s.", p->path);
    res = json_pack("{s:[{s:s, s:s}], s:{s:s, s:s%, s:s, s:b}}", "content", "type", "text", "text",
                    text, "structuredContent", "session_id", r->session_id, "path", p->path,
                    p->path_len, "uri", uri, "new_session", r->new_session);
  } else if (p->kind == FR_LIST) {
    json_t *text;
    json_t *files = listing_json(r, &text);
    res = json_pack("{s:[{s:s, s:o}], s:{s:s, s:s%, s:o}}", "content", "type", "text", "text", text,
                    "structuredContent", "session_id", r->session_id, "path", p->path, p->path_len,
                    "files", files);
  } else
    res = read_reply(p, r);
  mcp_answer(&p->base, res);
}

static void
release_file_pending(struct mcp_pending *p)
{
  free(((struct file_pending *)p)->path);
}

/* Starts OP on PATH (PLEN bytes) of SESSION_ID, answered later by
   on_file_reply; returns as a handler does.  DATA (LEN bytes) is copied
   by the front.  */
static int
start_file_op(struct mcp_call *c, enum file_reply_kind kind, enum front_file_op op,
              const char *session_id, const char *path, size_t plen, const uint8_t *data,
              size_t len, kiln_error_t *err)
{
  if (mcp_owner_check(c->conn, session_id, false, err) < 0)
    return kind == FR_RESOURCE ? MCP_RESOURCE_NOT_FOUND : MCP_TOOL_ERROR;
  struct file_pending *p
      = mcp_defer(c, sizeof *p, kind == FR_RESOURCE ? MCP_RESOURCE_NOT_FOUND : MCP_TOOL_ERROR);
  p->kind = kind;
  p->path = xmalloc(plen + 1);
  memcpy(p->path, path, plen);
  p->path[plen] = '\0';
  p->path_len = plen;
  p->base.release = release_file_pending;
  int64_t h = front_file_op(c->server->front, session_id, op, path, plen, data, len, MAX_FILE_BYTES,
                            on_file_reply, p, err);
  return mcp_started(&p->base, h);
}

int
files_read_resource(struct mcp_call *c, const char *session_id, const char *path, size_t len,
                    kiln_error_t *err)
{
  return start_file_op(c, FR_RESOURCE, FRONT_FILE_READ, session_id, path, len, NULL, 0, err);
}

static int
upload_file(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  const char *sid;
  if (tools_arg_name(args, "session_id", &sid, err) < 0)
    return -1;
  json_t *path = json_object_get(args, "path"), *content = json_object_get(args, "content");
  json_t *enc = tools_arg(args, "encoding");
  /* The schema has checked that ENCODING, when given, is text or base64.  */
  bool b64 = enc && json_string_length(enc) == 6;
  size_t len = json_string_length(content);
  cleanup_free uint8_t *bytes = b64 ? base64_decode(json_string_value(content), len, &len) : NULL;
  if (b64 && bytes == NULL)
    return kiln_error_make(err, 0, "argument 'content' is not valid base64");
  if (len > MAX_FILE_BYTES)
    return kiln_error_make(err, 0, "the file is %zu bytes, over the %u-byte upload limit", len,
                           MAX_FILE_BYTES);
  return start_file_op(c, FR_UPLOAD, FRONT_FILE_WRITE, sid, json_string_value(path),
                       json_string_length(path),
                       b64 ? bytes : (const uint8_t *)json_string_value(content), len, err);
}

static int
list_files(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  const char *sid;
  if (tools_arg_name(args, "session_id", &sid, err) < 0)
    return -1;
  json_t *path = tools_arg(args, "path");
  return start_file_op(c, FR_LIST, FRONT_FILE_LIST, sid, path ? json_string_value(path) : "",
                       path ? json_string_length(path) : 0, NULL, 0, err);
}

static int
read_file(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  const char *sid;
  if (tools_arg_name(args, "session_id", &sid, err) < 0)
    return -1;
  json_t *path = json_object_get(args, "path");
  return start_file_op(c, FR_READ, FRONT_FILE_READ, sid, json_string_value(path),
                       json_string_length(path), NULL, 0, err);
}

const struct mcp_tool tool_upload_file = {
  "upload_file",
  "Upload a file",
  "Write a file into a session's working directory (/work, the cells' current directory), as "
  "text or base64. Parent directories are created. Omit session_id to start a new session with "
  "the file in it, and use the session_id from the reply afterwards.",
  upload_input,
  NULL,
  upload_file,
  MCP_TOOL_DESTRUCTIVE | MCP_TOOL_IDEMPOTENT,
};

const struct mcp_tool tool_list_files = {
  "list_files",
  "List files",
  "List the files in a session's /work (or a directory under it) with their sizes and "
  "modification times.",
  list_input,
  NULL,
  list_files,
  MCP_TOOL_READ_ONLY,
};

const struct mcp_tool tool_read_file = {
  "read_file",
  "Read a file",
  "Read a file from a session's /work: text comes back as text, images as images, other files as "
  "binary resources.",
  read_input,
  NULL,
  read_file,
  MCP_TOOL_READ_ONLY,
};
