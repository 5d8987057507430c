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

/* The protocol revisions kiln speaks, oldest first, so that a feature
   can be tested with >=.  */
enum mcp_version {
  MCP_2024_11_05,
  MCP_2025_03_26,
  MCP_2025_06_18,
  MCP_2025_11_25,
  MCP_LATEST = MCP_2025_11_25,
};

/* The name of revision V ("2025-11-25").  */
const char *mcp_version_name(enum mcp_version v);

/* The log levels of logging/setLevel (RFC 5424's, most severe last).  */
enum mcp_log_level {
  MCP_LOG_DEBUG,
  MCP_LOG_INFO,
  MCP_LOG_NOTICE,
  MCP_LOG_WARNING,
  MCP_LOG_ERROR,
  MCP_LOG_CRITICAL,
  MCP_LOG_ALERT,
  MCP_LOG_EMERGENCY,
};

struct mcp_batch;
struct mcp_outgoing;

struct mcp_conn {
  struct mcp_server *server;
  mcp_send_fn send;
  void *ctx;
  bool initialized;
  enum mcp_version version; /* what initialize negotiated */
  /* notifications/message at this level and above; the default sends
     warnings and errors.  */
  enum mcp_log_level log_level;
  struct mcp_conn *next_in_server; /* the server's list, for broadcasts */
  /* The batch whose requests are being handled, while they are.  */
  struct mcp_batch *batch;
  bool closing; /* being freed: nothing more is sent */
  /* Whose sessions this client may use (owners.h): NULL sees every
     session; set by a transport that serves many clients.  Borrowed.  */
  const char *owner;
  struct mcp_pending *pending; /* owned, newest first */
  /* Called once no request is pending after mcp_conn_when_idle.  */
  void (*idle)(void *ctx);
  void *idle_ctx;
  struct mcp_outgoing *outgoing; /* requests sent to the client (owned) */
  int64_t last_request_id;       /* the id of the last one */
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

/* Starts and ends a batch: what C answers in between, now or later,
   goes into one array, sent once the batch has ended and its last
   request is answered.  */
struct mcp_batch *mcp_batch_begin(struct mcp_conn *c);
void mcp_batch_end(struct mcp_conn *c, struct mcp_batch *b);

/* Sends the notification METHOD with PARAMS (stolen) to C.  */
void mcp_notify(struct mcp_conn *c, const char *method, json_t *params);

/* The client's answer to a request the server sent it: its RESULT, or
   its ERROR object (both borrowed, exactly one not NULL).  */
typedef void (*mcp_reply_fn)(void *ctx, json_t *result, json_t *error);

/* Sends the request METHOD with PARAMS (stolen) to C's client (sampling,
   elicitation) and returns its id, a positive number.  ON_REPLY (CTX) is
   called once, when the client answers; never if the request is dropped
   first, or C freed.  A handler that waits for the answer keeps its
   request with mcp_defer and drops this one from its release function,
   so that CTX cannot outlive it.  */
int64_t mcp_request(struct mcp_conn *c, const char *method, json_t *params, mcp_reply_fn on_reply,
                    void *ctx);
/* Forgets the request ID of mcp_request: its answer, if it comes, is
   ignored.  Unknown ids (answered already) are ignored.  */
void mcp_request_drop(struct mcp_conn *c, int64_t id);

/* The name of log level L ("warning").  */
const char *mcp_log_level_name(enum mcp_log_level l);

/* Sends TEXT as a notifications/message at LEVEL to every initialized
   connection of S that asked for LEVEL or a lower one.  */
void mcp_conn_log(struct mcp_server *s, enum mcp_log_level level, const char *text);

/* Forgets C's pending requests without answering them (the client is
   gone), cancelling their work in the front, which must still exist
   unless nothing is pending; then frees C.  */
void mcp_conn_free(struct mcp_conn *c);

#endif
