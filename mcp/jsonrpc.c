#define _GNU_SOURCE
#include "jsonrpc.h"
#include "util.h"

#include <string.h>

/* The longest error message sent: enough for any sentence kiln writes
   with a quoted path in it, short enough that a message built around a
   huge input stays small.  */
#define MAX_ERROR_MESSAGE 4096

static bool
is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Returns the end of the string token starting at the quote at P (one
   past its closing quote), or END when it is not closed.  */
static const char *
skip_string(const char *p, const char *end)
{
  for (p++; p < end; p++) {
    if (*p == '\\')
      p++;
    else if (*p == '"')
      return p + 1;
  }
  return end;
}

/* Decodes the single token [P, Q) as an id: an integer or a string.  */
static json_t *
decode_id(const char *p, const char *q)
{
  json_t *v = json_loadb(p, (size_t)(q - p), JSON_DECODE_ANY, NULL);
  if (v && !json_is_integer(v) && !json_is_string(v)) {
    json_decref(v);
    return NULL;
  }
  return v;
}

json_t *
jrpc_scan_id(const char *text, size_t len)
{
  const char *p = text, *end = text + len;
  while (p < end && is_space(*p))
    p++;
  if (p == end || *p != '{')
    return NULL;
  p++;
  /* The state is only followed at depth 1, the top-level object: deeper
     down, strings are skipped and brackets counted, nothing more.  */
  enum { KEY, COLON, VALUE, COMMA } state = KEY;
  size_t depth = 1;
  bool id_key = false;
  json_t *found = NULL;
  while (p < end) {
    char c = *p;
    if (is_space(c)) {
      p++;
      continue;
    }
    if (depth > 1) {
      if (c == '"') {
        p = skip_string(p, end);
        continue;
      }
      if (c == '{' || c == '[')
        depth++;
      else if (c == '}' || c == ']') {
        if (--depth == 1)
          state = COMMA;
      }
      p++;
      continue;
    }
    switch (state) {
    case KEY: {
      if (c != '"')
        return found;
      const char *q = skip_string(p, end);
      /* Only the plain spelling counts: "\u0069d" is an id to jansson,
         but no client writes it, and guessing wrong is worse than null.  */
      id_key = q - p == 4 && memcmp(p, "\"id\"", 4) == 0;
      p = q;
      state = COLON;
      break;
    }
    case COLON:
      if (c != ':')
        return found;
      p++;
      state = VALUE;
      break;
    case VALUE: {
      const char *q;
      if (c == '"')
        q = skip_string(p, end);
      else if (c == '{' || c == '[') {
        if (id_key) {
          json_decref(found);
          return NULL;
        }
        depth++;
        p++;
        continue;
      } else {
        q = p;
        while (q < end && !is_space(*q) && *q != ',' && *q != '}' && *q != ']')
          q++;
      }
      if (id_key) {
        /* Two ids: no way to tell which one the client meant.  */
        if (found) {
          json_decref(found);
          return NULL;
        }
        found = decode_id(p, q);
        if (found == NULL)
          return NULL;
      }
      p = q;
      state = COMMA;
      break;
    }
    case COMMA:
      if (c != ',')
        return found;
      p++;
      state = KEY;
      break;
    }
  }
  return found;
}

int
jrpc_parse(const char *text, size_t len, struct jrpc_msg *msg, json_t **reply)
{
  json_error_t jerr;
  *reply = NULL;
  memset(msg, 0, sizeof *msg);
  json_t *root
      = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (root == NULL) {
    cleanup_free char *m = xasprintf("parse error: %s (at byte %d)", jerr.text, jerr.position);
    json_t *id = jrpc_scan_id(text, len);
    *reply = jrpc_error(id, JRPC_PARSE_ERROR, m, NULL);
    json_decref(id);
    return -1;
  }
  if (json_is_array(root)) {
    msg->kind = JRPC_BATCH;
    msg->root = root;
    return 0;
  }
  return jrpc_classify(root, msg, reply);
}

int
jrpc_classify(json_t *root, struct jrpc_msg *msg, json_t **reply)
{
  *reply = NULL;
  memset(msg, 0, sizeof *msg);
  if (!json_is_object(root)) {
    *reply = jrpc_error(NULL, JRPC_INVALID_REQUEST, "a JSON-RPC message must be an object", NULL);
    json_decref(root);
    return -1;
  }
  json_t *id = json_object_get(root, "id");
  json_t *version = json_object_get(root, "jsonrpc");
  json_t *method = json_object_get(root, "method");
  json_t *params = json_object_get(root, "params");
  bool id_ok = id == NULL || json_is_string(id) || json_is_integer(id);
  if (!id_ok) {
    *reply = jrpc_error(NULL, JRPC_INVALID_REQUEST, "\"id\" must be a string or an integer", NULL);
    json_decref(root);
    return -1;
  }
  if (!json_is_string(version) || json_string_length(version) != 3
      || memcmp(json_string_value(version), "2.0", 3) != 0) {
    *reply = jrpc_error(id, JRPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"", NULL);
    json_decref(root);
    return -1;
  }
  if (method == NULL) {
    if (id != NULL && (json_object_get(root, "result") || json_object_get(root, "error"))) {
      msg->kind = JRPC_RESPONSE;
      msg->root = root;
      msg->id = id;
      return 0;
    }
    *reply = jrpc_error(id, JRPC_INVALID_REQUEST, "a request needs a \"method\"", NULL);
    json_decref(root);
    return -1;
  }
  if (!json_is_string(method)) {
    *reply = id ? jrpc_error(id, JRPC_INVALID_REQUEST, "\"method\" must be a string", NULL) : NULL;
    json_decref(root);
    return -1;
  }
  if (params != NULL && !json_is_object(params) && !json_is_array(params)) {
    *reply = id ? jrpc_error(id, JRPC_INVALID_REQUEST, "\"params\" must be an object", NULL) : NULL;
    json_decref(root);
    return -1;
  }
  msg->kind = id ? JRPC_REQUEST : JRPC_NOTIFICATION;
  msg->root = root;
  msg->id = id;
  msg->method = json_string_value(method);
  msg->method_len = json_string_length(method);
  msg->params = params;
  return 0;
}

void
jrpc_msg_free(struct jrpc_msg *msg)
{
  json_decref(msg->root);
  memset(msg, 0, sizeof *msg);
}

json_t *
jrpc_result(json_t *id, json_t *result)
{
  if (result == NULL)
    return jrpc_error(id, JRPC_INTERNAL_ERROR, "internal error: the reply could not be built",
                      NULL);
  json_t *r = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "result",
                        result);
  if (r == NULL)
    return jrpc_error(id, JRPC_INTERNAL_ERROR, "internal error: the reply could not be built",
                      NULL);
  return r;
}

json_t *
jrpc_error(json_t *id, int code, const char *message, json_t *data)
{
  cleanup_free char *text = utf8_excerpt(message, strlen(message), MAX_ERROR_MESSAGE);
  /* Built field by field: with a sanitised message nothing here can
     fail but allocation, which aborts.  */
  json_t *e = json_object();
  json_object_set_new(e, "code", json_integer(code));
  json_object_set_new(e, "message", json_string(text));
  if (data)
    json_object_set_new(e, "data", data);
  json_t *r = json_object();
  json_object_set_new(r, "jsonrpc", json_string("2.0"));
  json_object_set(r, "id", id ? id : json_null());
  json_object_set_new(r, "error", e);
  return r;
}

char *
jrpc_dump_line(json_t *msg, size_t *len)
{
  char *s = json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(9));
  if (s == NULL)
    xoom();
  size_t n = strlen(s);
  char *line = xmalloc(n + 2);
  memcpy(line, s, n);
  line[n] = '\n';
  line[n + 1] = '\0';
  free(s);
  *len = n + 1;
  return line;
}
