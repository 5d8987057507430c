/* MCP's Streamable HTTP transport (revision 2025-11-25, and the older
   ones a client negotiates): kiln serve --http.  libmicrohttpd parses
   HTTP; kiln's own loop drives it, so requests, workers' frames and
   timers share one thread.  Each MCP session (Mcp-Session-Id) is one
   connection of the MCP layer (conn.h), and the kiln sessions it makes
   are its own (owners.h).  */
#ifndef KILN_MCP_HTTP_H
#define KILN_MCP_HTTP_H

#include "config.h"
#include "error.h"
#include "loop.h"
#include "server.h"

#include <stdbool.h>

struct mcp_http;

/* Listens as CFG->http says and serves S's methods, on LOOP.  S, CFG
   and LOOP must outlive the transport.  Returns NULL with ERR when the
   address cannot be bound, the token file or TLS files cannot be read,
   or the settings are unsafe (a non-loopback address without tokens).  */
struct mcp_http *mcp_http_new(struct loop *loop, struct mcp_server *s,
                              const struct kiln_config *cfg, kiln_error_t *err);

/* The endpoint's URL, with the port actually bound (borrowed).  */
const char *mcp_http_url(const struct mcp_http *h);

/* /readyz answers 200 once READY (the zygote is up).  */
void mcp_http_set_ready(struct mcp_http *h, bool ready);

/* Reads the token file again (SIGHUP).  On failure the old tokens stay
   and ERR says why.  */
int mcp_http_reload(struct mcp_http *h, kiln_error_t *err);

/* Ends every MCP session (their kiln sessions are closed) and stops
   listening.  */
void mcp_http_free(struct mcp_http *h);

#endif
