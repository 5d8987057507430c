/* The stdio transport: newline-delimited JSON-RPC on fds 0 and 1, read
   and written without blocking the front's loop.  stdin may be a pipe, a
   terminal or a socket (watched with epoll) or a regular file or
   /dev/null (which epoll refuses: read a chunk at a time from the loop
   instead, so that a file of requests is served like a client sending
   them).  */
#ifndef KILN_STDIO_H
#define KILN_STDIO_H

#include "error.h"
#include "loop.h"
#include "server.h"

/* How much of a line over the limit is kept: its start, where a
   message's id usually is, so that the refusal can name the request.  */
#define MCP_STDIO_KEPT_PREFIX (64u << 10)

struct mcp_stdio;

/* Serves one client on fds 0 and 1, watched on LOOP: its messages go to
   a connection (conn.h) on S, nothing is read before the loop runs, and
   a line over S's --max-message is refused by id.  DONE (CTX) is called
   once the client is finished with: its input ended and every request it
   sent is answered (a client may close stdin and keep reading, as
   `kiln serve < requests.jsonl` does), or stdout failed.  Returns NULL
   with ERR.  */
struct mcp_stdio *mcp_stdio_new(struct loop *loop, struct mcp_server *s, void (*done)(void *ctx),
                                void *ctx, kiln_error_t *err);
/* Writes whatever is still queued, blocking for at most TIMEOUT_MS.  */
void mcp_stdio_flush(struct mcp_stdio *t, int timeout_ms);
/* Frees T and its connection (whose pending requests must have been
   answered, or the front still exist to cancel them: see mcp_conn_free).  */
void mcp_stdio_free(struct mcp_stdio *t);

#endif
