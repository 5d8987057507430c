/* MCP over JSON-RPC: the lifecycle (initialize, ping), tools, and
   cancellation, independent of the transport that carries it.  */
#ifndef KILN_MCP_SERVER_H
#define KILN_MCP_SERVER_H

#include "config.h"
#include "kiln.h"

#include <jansson.h>

struct mcp_server;

/* Sends one message (borrowed) to the client.  */
typedef void (*mcp_send_fn)(void *ctx, json_t *msg);

/* The server uses FRONT for tools and SEND to answer; both outlive it.  */
struct mcp_server *mcp_server_new(const struct kiln_config *cfg, struct front *front,
                                  mcp_send_fn send, void *ctx);
/* Handles one incoming message of LEN bytes.  TOO_LONG > 0 says a message
   of that size was dropped for being over the limit.  */
void mcp_server_handle(struct mcp_server *s, const char *text, size_t len, size_t too_long);
/* Drops pending requests without answering them (the client is gone).  */
void mcp_server_free(struct mcp_server *s);

#endif
