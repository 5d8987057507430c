/* One JSON-RPC message from a client, on hostile bytes: jrpc_parse as the
   MCP transports call it, the input being the message.

   Oracles, beside the sanitizers (jansson parses the input again here, as
   the reference): a message is refused with a parse error exactly when
   it is not JSON; a refusal without a reply is a notification's (an
   object with no "id"); every reply is a JSON-RPC error object with one
   of the standard codes, the request's id when it had a usable one (for
   bytes that are not JSON, the id jrpc_scan_id recovers, which must be a
   string or an integer) and null otherwise, and dumps as one line that reads back as the same
   JSON; an accepted message's kind agrees with its "id" and "method",
   and what MSG borrows is what the message holds.  */
#include "fuzz.h"
#include "jsonrpc.h"

#include <stdbool.h>
#include <string.h>

static bool
usable_id(json_t *id)
{
  return id != NULL && (json_is_string(id) || json_is_integer(id));
}

static void
check_reply(json_t *reply, json_t *root, const char *text, size_t size)
{
  FUZZ_CHECK(json_is_object(reply) && json_object_size(reply) == 3);
  json_t *version = json_object_get(reply, "jsonrpc");
  FUZZ_CHECK(json_is_string(version) && strcmp(json_string_value(version), "2.0") == 0);

  json_t *error = json_object_get(reply, "error");
  FUZZ_CHECK(json_is_object(error));
  json_t *code = json_object_get(error, "code"), *message = json_object_get(error, "message");
  FUZZ_CHECK(json_is_integer(code) && json_is_string(message));
  json_int_t c = json_integer_value(code);
  FUZZ_CHECK(c == JRPC_PARSE_ERROR || c == JRPC_INVALID_REQUEST || c == JRPC_METHOD_NOT_FOUND
             || c == JRPC_INVALID_PARAMS || c == JRPC_INTERNAL_ERROR);
  FUZZ_CHECK((c == JRPC_PARSE_ERROR) == (root == NULL));

  json_t *id = json_object_get(reply, "id");
  json_t *asked = json_is_object(root) ? json_object_get(root, "id") : NULL;
  json_t *scanned = root == NULL ? jrpc_scan_id(text, size) : NULL;
  FUZZ_CHECK(scanned == NULL || usable_id(scanned));
  if (root == NULL)
    FUZZ_CHECK(scanned ? json_equal(id, scanned) : json_is_null(id));
  else
    FUZZ_CHECK(usable_id(asked) ? json_equal(id, asked) : json_is_null(id));
  json_decref(scanned);

  size_t len = 0;
  char *line = jrpc_dump_line(reply, &len);
  FUZZ_CHECK(len > 0 && line[len - 1] == '\n' && memchr(line, '\n', len - 1) == NULL);
  /* The id may hold a NUL, which JSON writes as \u0000.  */
  json_t *back = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
  FUZZ_CHECK(back != NULL && json_equal(back, reply));
  json_decref(back);
  free(line);
}

static void
check_message(const struct jrpc_msg *m, json_t *root)
{
  if (m->kind == JRPC_BATCH) {
    /* Each member is classified on its own, as the connection does.  */
    FUZZ_CHECK(json_is_array(m->root) && json_equal(m->root, root));
    size_t i;
    json_t *item;
    json_array_foreach(m->root, i, item)
    {
      struct jrpc_msg one;
      json_t *reply = (json_t *)1;
      if (jrpc_classify(json_incref(item), &one, &reply) == 0) {
        FUZZ_CHECK(reply == NULL && one.kind != JRPC_BATCH);
        check_message(&one, item);
        jrpc_msg_free(&one);
      } else if (reply)
        json_decref(reply);
    }
    return;
  }
  FUZZ_CHECK(json_is_object(m->root) && json_equal(m->root, root));
  json_t *id = json_object_get(m->root, "id"), *method = json_object_get(m->root, "method");
  FUZZ_CHECK(m->id == id && (id == NULL || usable_id(id)));
  switch (m->kind) {
  case JRPC_REQUEST:
  case JRPC_NOTIFICATION:
    FUZZ_CHECK((m->kind == JRPC_REQUEST) == (id != NULL));
    FUZZ_CHECK(json_is_string(method) && m->method == json_string_value(method));
    FUZZ_CHECK(m->params == json_object_get(m->root, "params"));
    FUZZ_CHECK(m->params == NULL || json_is_object(m->params) || json_is_array(m->params));
    break;
  case JRPC_RESPONSE:
    FUZZ_CHECK(id != NULL && method == NULL && m->method == NULL);
    FUZZ_CHECK(json_object_get(m->root, "result") || json_object_get(m->root, "error"));
    break;
  default:
    FUZZ_CHECK(!"a kind jsonrpc.h does not name");
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *text = (const char *)data;
  json_t *root
      = json_loadb(text, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  struct jrpc_msg m;
  json_t *reply = (json_t *)1;
  int r = jrpc_parse(text, size, &m, &reply);
  if (r == 0) {
    FUZZ_CHECK(reply == NULL && root != NULL);
    check_message(&m, root);
    jrpc_msg_free(&m);
  } else {
    FUZZ_CHECK(r == -1);
    if (reply == NULL)
      FUZZ_CHECK(json_is_object(root) && json_object_get(root, "id") == NULL);
    else
      check_reply(reply, root, text, size);
    json_decref(reply);
  }
  json_decref(root);
  return 0;
}
