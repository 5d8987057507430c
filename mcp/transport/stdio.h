/* The stdio transport: newline-delimited JSON-RPC on fds 0 and 1, read
   and written without blocking the front's loop.  */
#ifndef KILN_STDIO_H
#define KILN_STDIO_H

#include "error.h"
#include "loop.h"

#include <jansson.h>
#include <stddef.h>

struct mcp_stdio;

/* Called for each complete line (without its newline; LEN may be 0 for a
   line that was over the limit, with TOO_LONG set to its size).  */
typedef void (*mcp_line_cb)(void *ctx, const char *line, size_t len, size_t too_long);
/* Called once when stdin reaches EOF (after the last line).  */
typedef void (*mcp_eof_cb)(void *ctx);

/* Watches fd 0 and 1 on LOOP.  MAX_LINE bounds one message.  Returns
   NULL with ERR.  */
struct mcp_stdio *mcp_stdio_new(struct loop *loop, size_t max_line, mcp_line_cb on_line,
                                mcp_eof_cb on_eof, void *ctx, kiln_error_t *err);
/* Queues MSG (borrowed) as one line on stdout.  */
void mcp_stdio_send(struct mcp_stdio *t, json_t *msg);
/* Writes whatever is still queued, blocking for at most TIMEOUT_MS.  */
void mcp_stdio_flush(struct mcp_stdio *t, int timeout_ms);
void mcp_stdio_free(struct mcp_stdio *t);

#endif
