/* What a method or tool handler sees: the request it serves, how it
   answers, and how it keeps a request to answer later.

   A handler returns one of

     MCP_ANSWERED   *RESULT holds the answer (a new reference).  A NULL
                    *RESULT — a reply json_pack could not build — is
                    answered as an internal error, never taken to mean
                    anything else;
     MCP_DEFERRED   the handler kept the request with mcp_defer and will
                    answer it through mcp_answer or mcp_fail;
     < 0            the request failed with ERR set: the value is the
                    JSON-RPC error code for a method handler; a tool
                    handler's failures (any negative value, so
                    `return kiln_error_make (err, ...)` will do) become a
                    tool result with isError set.  */
#ifndef KILN_MCP_CALL_H
#define KILN_MCP_CALL_H

#include "error.h"
#include "jsonrpc.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct mcp_batch;
struct mcp_conn;
struct mcp_server;

enum mcp_outcome {
  MCP_ANSWERED = 0,
  MCP_DEFERRED = 1,
};

/* The code that makes a failure a tool result with isError set rather
   than a JSON-RPC error (no JSON-RPC code is -1).  */
#define MCP_TOOL_ERROR (-1)
/* MCP's code for a resource that does not exist.  */
#define MCP_RESOURCE_NOT_FOUND (-32002)

/* One request being handled: valid only during the handler's call.  */
struct mcp_call {
  struct mcp_server *server;
  struct mcp_conn *conn;
  json_t *id;             /* borrowed */
  json_t *progress_token; /* params._meta.progressToken (borrowed), or NULL */
};

typedef int (*mcp_method_fn)(struct mcp_call *c, json_t *params, json_t **result,
                             kiln_error_t *err);

/* The one place a kiln error becomes something a client reads: a
   JSON-RPC error response with CODE, or, for CODE MCP_TOOL_ERROR, a
   result whose tool result has isError set.  The message is cut on a
   character boundary and made valid UTF-8 on the way.  Returns the whole
   response (new reference, never NULL); does not release ERR.  */
json_t *mcp_failure(json_t *id, int code, kiln_error_t err);

/* A tool result with isError set and MESSAGE (copied, made valid UTF-8)
   as its text: a new reference, never NULL.  */
json_t *mcp_tool_error(const char *message);

/* A request kept for a later answer.  Handlers embed it first in their
   own struct, allocated by mcp_defer.  */
struct mcp_pending {
  struct mcp_pending *next; /* the connection's list */
  struct mcp_conn *conn;
  json_t *id;              /* owned */
  int64_t handle;          /* the front's, for cancellation; 0 until started, or none */
  int fail_code;           /* how mcp_fail reports: a JSON-RPC code or MCP_TOOL_ERROR */
  bool starting;           /* between mcp_defer and mcp_started */
  bool answered;           /* answered while starting: freed by mcp_started */
  bool tool;               /* a tools/call: its result is shaped for VERSION */
  int version;             /* the connection's enum mcp_version */
  struct mcp_batch *batch; /* the batch it came in, or NULL */
  /* Frees what the handler added to its struct (not the struct), or NULL.  */
  void (*release)(struct mcp_pending *p);
};

/* Keeps C's request: allocates SIZE bytes (at least sizeof (struct
   mcp_pending), zeroed), links them to the connection and returns them.
   The connection owns the allocation: it is freed once the request is
   answered, cancelled or the connection closes.  The handler then starts
   the front's work and passes its handle to mcp_started.  */
void *mcp_defer(struct mcp_call *c, size_t size, int fail_code);

/* Ends the start of P.  HANDLE < 0 (the front refused, with ERR set by
   it) drops P and returns P's fail code for the handler to return;
   otherwise records HANDLE and returns MCP_DEFERRED.  HANDLE 0 says the
   work is not the front's (a timer, an answer awaited from the client):
   nothing is cancelled in the front, and P's release function, called
   however P ends, is what stops it.  The front may have
   answered P from inside the call that returned HANDLE: that reply was
   sent, and P is freed here.  */
int mcp_started(struct mcp_pending *p, int64_t handle);

/* Answers P with RESULT (stolen; NULL becomes an internal error) or
   with ERR (not released) through mcp_failure and P's fail code, then
   frees P (later, if it is still starting).  */
void mcp_answer(struct mcp_pending *p, json_t *result);
void mcp_fail(struct mcp_pending *p, kiln_error_t err);

#endif
