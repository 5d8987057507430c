/* JSON-RPC 2.0 framing for MCP: classifying incoming messages and
   building responses.  Every error a client sees goes through
   jrpc_error or jrpc_error_from.  */
#ifndef KILN_JSONRPC_H
#define KILN_JSONRPC_H

#include "error.h"

#include <jansson.h>
#include <stddef.h>

enum {
  JRPC_PARSE_ERROR = -32700,
  JRPC_INVALID_REQUEST = -32600,
  JRPC_METHOD_NOT_FOUND = -32601,
  JRPC_INVALID_PARAMS = -32602,
  JRPC_INTERNAL_ERROR = -32603,
};

enum jrpc_kind {
  JRPC_REQUEST,      /* method + id */
  JRPC_NOTIFICATION, /* method, no id */
  JRPC_RESPONSE,     /* result or error + id: an answer to the server */
};

struct jrpc_msg {
  enum jrpc_kind kind;
  json_t *root;       /* owned: the whole message */
  json_t *id;         /* borrowed from ROOT; NULL for notifications */
  const char *method; /* borrowed from ROOT */
  json_t *params;     /* borrowed; NULL when absent */
};

/* Parses one message.  On success fills MSG (release with jrpc_msg_free)
   and returns 0.  On failure returns -1 and stores in *REPLY the error
   response to send (new reference), or NULL when none must be sent.  */
int jrpc_parse(const char *text, size_t len, struct jrpc_msg *msg, json_t **reply);
void jrpc_msg_free(struct jrpc_msg *msg);

/* Both return a new reference.  jrpc_result steals RESULT; ID is
   borrowed (NULL becomes JSON null).  DATA, if not NULL, is stolen.  */
json_t *jrpc_result(json_t *id, json_t *result);
json_t *jrpc_error(json_t *id, int code, const char *message, json_t *data);
/* The error response for a kiln error; does not release ERR.  */
json_t *jrpc_error_from(json_t *id, int code, kiln_error_t err);

/* Serialises MSG as one line (compact, no embedded newline, '\n' added).
   Returns a newly allocated string and its length; the caller frees it.  */
char *jrpc_dump_line(json_t *msg, size_t *len);

#endif
