/* Jupyter's wire format (messaging protocol 5.4): a message is the
   routing identities, the delimiter "<IDS|MSG>", an HMAC-SHA256
   signature in hex, then header, parent_header, metadata and content as
   JSON, then any binary buffers.  This file turns frames into messages
   and back; it knows nothing of sockets.  */
#ifndef KILN_JUP_WIRE_H
#define KILN_JUP_WIRE_H

#include "error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JUP_PROTOCOL_VERSION "5.4"
#define JUP_DELIMITER        "<IDS|MSG>"

/* One frame's bytes.  */
struct jup_frame {
  void *data;
  size_t len;
};

/* The key messages are signed with; empty (LEN 0): they are not.  */
struct jup_key {
  const uint8_t *data;
  size_t len;
};

/* A message received.  Everything is owned by the message and freed by
   jup_msg_free; MSG_TYPE and MSG_ID point into HEADER.  */
struct jup_msg {
  struct jup_frame *ids; /* copies of the routing identities */
  size_t nids;
  json_t *header, *parent, *metadata, *content;
  const char *msg_type, *msg_id;
  size_t wire_len; /* the bytes of all its frames, as it came */
};

/* Parses the N frames FRAMES (borrowed) into *M.  A message that is
   malformed, unsigned or signed with another key is refused with ERR
   saying why; the caller drops it.  The signature is compared in
   constant time.  */
int jup_msg_parse(const struct jup_key *key, const struct jup_frame *frames, size_t n,
                  struct jup_msg *m, kiln_error_t *err);
void jup_msg_free(struct jup_msg *m);

/* The frames of a message to send: IDS (NIDS, borrowed, copied), the
   delimiter, the signature of the four parts, and the parts as compact
   JSON.  Returns the frames (allocated, each frame's data too: free with
   jup_frames_free) and their number in *N.  HEADER, PARENT, METADATA
   and CONTENT are borrowed.  */
struct jup_frame *jup_msg_build(const struct jup_key *key, const struct jup_frame *ids, size_t nids,
                                json_t *header, json_t *parent, json_t *metadata, json_t *content,
                                size_t *n);
void jup_frames_free(struct jup_frame *frames, size_t n);

/* A new header (a new reference) for a message of type MSG_TYPE sent in
   the kernel's wire session SESSION: a fresh msg_id, the date now.  */
json_t *jup_header_new(const char *msg_type, const char *session);

/* The lowercase hex HMAC-SHA256 of the N parts PARTS under KEY, into
   HEX (64 characters and a NUL).  */
void jup_sign(const struct jup_key *key, const struct jup_frame *parts, size_t n, char hex[65]);

/* The signatures of the messages received lately, so that one sent again
   (captured and replayed by whoever can reach the ports) is refused, as
   jupyter_client's Session refuses a signature it has seen.  It holds at
   least the last JUP_REPLAY_WINDOW and at most twice as many.  */
#define JUP_REPLAY_WINDOW 8192
struct jup_replay;
struct jup_replay *jup_replay_new(void);
void jup_replay_free(struct jup_replay *r);
/* Records the signature SIG (64 hex digits); returns false when it was
   recorded before, and the message is a replay.  */
bool jup_replay_first(struct jup_replay *r, const char *sig);

/* A random (version 4) UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".  */
void jup_uuid(char out[37]);

/* The time now as ISO 8601 in UTC with microseconds,
   "2024-01-31T12:34:56.123456Z".  */
void jup_now_iso(char out[32]);

#endif
