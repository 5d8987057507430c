/* One MCP client's connection: where its replies go, the requests it is
   still waiting for, and what initialize negotiated.  A transport makes
   one per client and feeds it whole messages; the connection parses
   them, checks them against the method table (methods.h) and answers
   through SEND, now or when the front is done.  */
#ifndef KILN_MCP_CONN_H
#define KILN_MCP_CONN_H

#include "call.h"
#include "server.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Sends one message (borrowed) to the client.  */
typedef void (*mcp_send_fn)(void *ctx, json_t *msg);

struct mcp_conn {
  struct mcp_server *server;
  mcp_send_fn send;
  void *ctx;
  bool initialized;
  const char *protocol_version; /* static; NULL until initialize */
  struct mcp_pending *pending;  /* owned, newest first */
  /* Called once no request is pending after mcp_conn_when_idle.  */
  void (*idle)(void *ctx);
  void *idle_ctx;
};

/* A connection on S answering through SEND (with CTX); both outlive it.
   The caller frees it with mcp_conn_free.  */
struct mcp_conn *mcp_conn_new(struct mcp_server *s, mcp_send_fn send, void *ctx);

/* Handles one incoming message, [TEXT, TEXT+LEN).  TOO_LONG > 0 says
   the message was TOO_LONG bytes, over the limit, and TEXT holds only
   its start (which is searched for the id to answer with).  */
void mcp_conn_handle(struct mcp_conn *c, const char *text, size_t len, size_t too_long);

/* Calls FN (CTX) once no request is pending: now, or after the reply
   that answers the last one.  For the end of a client's input: its
   requests are still answered.  FN must not free C.  */
void mcp_conn_when_idle(struct mcp_conn *c, void (*fn)(void *ctx), void *ctx);

/* Drops the pending request REQUEST_ID (borrowed) without answering it,
   as MCP asks of a cancelled request, and cancels its work in the front.
   Unknown ids are ignored: the answer may already be on its way.  */
void mcp_conn_cancel(struct mcp_conn *c, json_t *request_id);

/* Forgets C's pending requests without answering them (the client is
   gone), cancelling their work in the front, which must still exist
   unless nothing is pending; then frees C.  */
void mcp_conn_free(struct mcp_conn *c);

#endif
