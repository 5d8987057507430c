/* What the parts of the HTTP transport share: the transport, its MCP
   sessions, and their SSE streams.  Private to mcp/transport/http*.c.  */
#ifndef KILN_MCP_HTTP_INTERNAL_H
#define KILN_MCP_HTTP_INTERNAL_H

#include "auth.h"
#include "conn.h"
#include "http.h"
#include "metrics.h"
#include "util.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdint.h>

/* What one SSE stream keeps for a client that reconnects: past this, the
   oldest events are dropped (a client that stops reading costs this
   much, not more).  */
#define HTTP_STREAM_KEEP (1 << 20)
/* Ended streams kept per MCP session for a late reconnect.  */
#define HTTP_ENDED_KEPT 8
/* Idle SSE connections get a comment this often, so that a client that
   vanished is noticed.  */
#define HTTP_KEEPALIVE_NS (15 * 1000000000LL)

struct http_session;

/* One event of a stream, formatted as sent ("id: …\ndata: …\n\n").  */
struct sse_event {
  struct sse_event *next;
  uint64_t seq;
  size_t len;
  char text[];
};

/* The response body of an SSE stream being sent: which stream, and how
   far.  Owned by libmicrohttpd's response (freed with it).  */
struct http_reader {
  struct mcp_http *h;
  struct http_stream *stream; /* NULL once the stream is gone */
  struct MHD_Connection *conn;
  uint64_t next_seq; /* the next event to send */
  size_t off;        /* bytes of that event already sent */
  bool suspended;    /* waiting for an event */
  bool ping;         /* a keep-alive comment is due */
};

/* An SSE stream: a POST's answer with the progress before it, or the
   session's GET stream.  It outlives the HTTP connection that reads it,
   so that a client reconnecting with Last-Event-ID gets what it missed.  */
struct http_stream {
  struct http_stream *next; /* the session's list */
  struct http_session *sess;
  uint64_t id;
  uint64_t next_seq; /* of the next event */
  struct sse_event *head, *tail;
  size_t kept;                /* bytes of the events kept */
  bool ended;                 /* the answer is in: nothing follows it */
  bool standalone;            /* the GET stream */
  struct http_reader *reader; /* the connection sending it, or NULL */
};

struct http_req;

/* The requests of one POST, waiting for their answer.  */
struct http_route {
  struct http_route *next;
  json_t *ids;                /* the requests' ids */
  json_t *tokens;             /* their progress tokens */
  struct http_req *req;       /* an application/json answer: the waiting request, or NULL */
  struct http_stream *stream; /* an SSE answer */
};

/* One HTTP request being served (libmicrohttpd's con_cls).  */
struct http_req {
  struct mcp_http *h;
  struct MHD_Connection *conn;
  int kind; /* enum in http.c */
  struct buf body;
  size_t body_seen; /* bytes received, kept or not */
  bool too_big;
  bool suspended;
  bool answered; /* ANSWER holds the reply */
  char *answer;  /* owned JSON text */
  unsigned status;
  struct http_session *sess; /* borrowed; for the Mcp-Session-Id header */
  struct http_route *route;  /* borrowed */
};

struct http_session {
  struct http_session *next;
  struct mcp_http *h;
  char id[100];                /* [NODE "."] 128 random bits in hex */
  char client[64];             /* the token's name, or the peer's address */
  struct mcp_conn *conn;       /* owned */
  struct http_route *routes;   /* owned */
  struct http_stream *streams; /* owned, newest first */
  struct http_stream *standalone;
  uint64_t next_stream;
  struct http_route *current; /* the POST being handled, while it is */
  struct http_req *current_req;
  int64_t last_used;
};

struct mcp_http {
  struct loop *loop;
  struct mcp_server *server;
  const struct kiln_config *cfg;
  const struct kiln_http_config *hc;
  struct MHD_Daemon *d;
  int epfd; /* libmicrohttpd's */
  struct http_auth *auth;
  bool loopback;
  bool tls;
  bool ready;
  char *url;
  char *metadata_url;
  struct http_session *sessions;
  size_t nsessions;
  size_t nconnections;
  int64_t next_keepalive;
  struct http_link *links; /* every open connection, for the receive deadline */
  struct mcp_http_counts status; /* responses sent, by status, for /metrics */
};

/* http_session.c */
struct http_session *http_session_new(struct mcp_http *h, const char *client);
struct http_session *http_session_find(struct mcp_http *h, const char *id);
void http_session_end(struct http_session *s);
void http_sessions_expire(struct mcp_http *h, int64_t now);
size_t http_sessions_of(struct mcp_http *h, const char *client);
struct http_route *http_route_new(struct http_session *s, json_t *ids, json_t *tokens);
void http_route_drop(struct http_session *s, struct http_route *r);
struct http_stream *http_stream_new(struct http_session *s, bool standalone, bool prime);
struct http_stream *http_stream_find(struct http_session *s, uint64_t id);
struct http_reader *http_reader_attach(struct http_stream *st, struct MHD_Connection *c,
                                       uint64_t from_seq);
ssize_t http_reader_read(void *cls, uint64_t pos, char *buf, size_t max);
void http_reader_free(void *cls);
void http_keepalive(struct mcp_http *h);

#endif
