/* The kernel's five ZeroMQ sockets on kiln's event loop: shell, control
   and stdin (ROUTER), iopub (PUB) and the heartbeat (REP, answered
   here).  Incoming messages are checked (wire.h) and handed on; sending
   signs them.  */
#ifndef KILN_JUP_CHANNELS_H
#define KILN_JUP_CHANNELS_H

#include "connection.h"
#include "error.h"
#include "loop.h"
#include "wire.h"

#include <jansson.h>

struct jup_channels;

/* A message arrived on CH: M is the callee's, to free with jup_msg_free
   and free.  */
typedef void (*jup_msg_cb)(void *ctx, enum jup_channel ch, struct jup_msg *m);

/* Binds every channel of CONN (borrowed; its key is copied) and watches
   them on LOOP.  No frame may be larger than MAX_FRAME bytes: ZeroMQ
   drops the connection that sends one.  The caller must have blocked
   the signals it takes with signalfd (front_new does) before this call:
   ZeroMQ's threads, started here, inherit the mask, and an unblocked
   SIGINT on one of them would end the process.  Returns NULL with ERR
   when a channel cannot be bound.  */
struct jup_channels *jup_channels_new(struct loop *loop, const struct jup_connection *conn,
                                      size_t max_frame, jup_msg_cb cb, void *ctx,
                                      kiln_error_t *err);

/* Closes the sockets, giving what is still queued up to LINGER_MS to
   leave (a shutdown_reply just sent), and frees CH.  */
void jup_channels_free(struct jup_channels *ch, int linger_ms);

/* Sends a MSG_TYPE message with CONTENT (stolen) on channel TO, in
   reply to PARENT (borrowed; NULL for none): to PARENT's identities on a
   ROUTER channel, to every subscriber on iopub.  Never blocks: a message
   a slow client has no room for is dropped, and logged.  */
void jup_send(struct jup_channels *ch, enum jup_channel to, const struct jup_msg *parent,
              const char *msg_type, json_t *content);

/* The kernel's wire session (a UUID), the "session" of every header it
   sends.  Borrowed from CH.  */
const char *jup_channels_session(const struct jup_channels *ch);

#endif
