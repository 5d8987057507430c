/* JSON-RPC 2.0 framing for MCP: classifying incoming messages, finding
   the id of one that does not parse, and building responses.  Nothing
   here knows MCP's methods.  */
#ifndef KILN_JSONRPC_H
#define KILN_JSONRPC_H

#include "error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum {
  JRPC_PARSE_ERROR = -32700,
  JRPC_INVALID_REQUEST = -32600,
  JRPC_METHOD_NOT_FOUND = -32601,
  JRPC_INVALID_PARAMS = -32602,
  JRPC_INTERNAL_ERROR = -32603,
};

/* Whether CODE is a JSON-RPC error code (the reserved range and the
   implementation-defined one below it).  */
static inline bool
jrpc_is_code(int code)
{
  return code >= -32768 && code <= -32000;
}

enum jrpc_kind {
  JRPC_REQUEST,      /* method + id */
  JRPC_NOTIFICATION, /* method, no id */
  JRPC_RESPONSE,     /* result or error + id: an answer to the server */
  JRPC_BATCH,        /* an array of messages: ROOT is the array, for jrpc_classify */
};

struct jrpc_msg {
  enum jrpc_kind kind;
  json_t *root;       /* owned: the whole message */
  json_t *id;         /* borrowed from ROOT; NULL for notifications */
  const char *method; /* borrowed from ROOT; may hold NUL bytes: use METHOD_LEN */
  size_t method_len;
  json_t *params; /* borrowed; NULL when absent */
};

/* Parses one message.  On success fills MSG (release with jrpc_msg_free)
   and returns 0.  On failure returns -1 and stores in *REPLY the error
   response to send (new reference), or NULL when none must be sent (a
   notification).  A message that does not parse is answered with the id
   jrpc_scan_id finds in TEXT, so that the client can tell which request
   failed.  */
int jrpc_parse(const char *text, size_t len, struct jrpc_msg *msg, json_t **reply);
void jrpc_msg_free(struct jrpc_msg *msg);

/* Classifies ROOT (stolen), one message of a batch (or a whole one),
   as jrpc_parse does after parsing.  A nested array is refused.  */
int jrpc_classify(json_t *root, struct jrpc_msg *msg, json_t **reply);

/* The id of a message that jansson refused ([TEXT, TEXT+LEN) may also be
   only the start of one): the value of the top-level "id" key when it is
   an integer or a string that decode on their own, found by a scan that
   looks at each byte once and keeps no state but the nesting depth.
   Returns a new reference, or NULL when there is no such id, or more
   than one "id" key.  */
json_t *jrpc_scan_id(const char *text, size_t len);

/* Responses.  Both return a new reference and never NULL.  ID is
   borrowed (NULL becomes JSON null).  jrpc_result steals RESULT; a NULL
   RESULT (a reply that could not be built) becomes an internal error.
   jrpc_error copies MESSAGE, cut to a few KiB on a character boundary,
   with invalid UTF-8 replaced; DATA, if not NULL, is stolen.  */
json_t *jrpc_result(json_t *id, json_t *result);
json_t *jrpc_error(json_t *id, int code, const char *message, json_t *data);

/* Serialises MSG as one line (compact, no embedded newline, '\n' added).
   Returns a newly allocated string and its length; the caller frees it.  */
char *jrpc_dump_line(json_t *msg, size_t *len);

#endif
