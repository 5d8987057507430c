/* MCP's server-wide state: what every connection shares (the
   configuration and the front its tools run on).  Per-client state —
   pending requests, the negotiated protocol version — lives in a
   connection (conn.h), so that a transport may hold many.  */
#ifndef KILN_MCP_SERVER_H
#define KILN_MCP_SERVER_H

#include "config.h"
#include "kiln.h"

struct mcp_conn;
struct mcp_owned;

struct mcp_server {
  const struct kiln_config *cfg; /* borrowed */
  struct front *front;           /* borrowed */
  struct mcp_conn *conns;        /* every live connection (not owned) */
  struct mcp_owned *owned;       /* which client made each session (owners.h) */
};

/* CFG and FRONT must outlive the server; the caller frees it with
   mcp_server_free once its connections are gone.  */
struct mcp_server *mcp_server_new(const struct kiln_config *cfg, struct front *front);
void mcp_server_free(struct mcp_server *s);

#endif
