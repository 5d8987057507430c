#define _GNU_SOURCE
#include "jsonrpc.h"
#include "util.h"

#include <string.h>

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
    *reply = jrpc_error(NULL, JRPC_PARSE_ERROR, m, NULL);
    return -1;
  }
  if (json_is_array(root)) {
    *reply = jrpc_error(NULL, JRPC_INVALID_REQUEST, "JSON-RPC batches are not supported", NULL);
    json_decref(root);
    return -1;
  }
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
  if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0) {
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
  return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "result",
                   result);
}

json_t *
jrpc_error(json_t *id, int code, const char *message, json_t *data)
{
  json_t *e = json_pack("{s:i, s:s}", "code", code, "message", message);
  if (data)
    json_object_set_new(e, "data", data);
  return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", e);
}

json_t *
jrpc_error_from(json_t *id, int code, kiln_error_t err)
{
  return jrpc_error(id, code, err && err->msg ? err->msg : "internal error", NULL);
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
