/* MCP's server-wide state: what every connection shares (the
   configuration and the front its tools run on).  Per-client state —
   pending requests, the negotiated protocol version — lives in a
   connection (conn.h), so that a transport may hold many.  */
#ifndef KILN_MCP_SERVER_H
#define KILN_MCP_SERVER_H

#include "config.h"
#include "kiln.h"

#include <stddef.h>

struct mcp_conn;
struct mcp_method;
struct mcp_owned;
struct mcp_tool;

struct mcp_server {
  const struct kiln_config *cfg; /* borrowed */
  struct front *front;           /* borrowed */
  struct mcp_conn *conns;        /* every live connection (not owned) */
  struct mcp_owned *owned;       /* which client made each session (owners.h) */
  /* What the server offers.  Zeroed, as mcp_server_new leaves them, they
     are kiln's own: its tools and its method table.  A program that
     links mcp/ to serve something else (a test fixture) sets them before
     its first connection; the tables are borrowed and must outlive the
     server.  TOOLS is the tools/list order.  METHODS are looked up
     before kiln's table, so an entry named as one of kiln's methods
     replaces it; initialize announces prompts when they include
     "prompts/list", and resource subscriptions when they include
     "resources/subscribe".  */
  const struct mcp_tool *const *tools; /* NULL: kiln's */
  size_t ntools;
  const struct mcp_method *methods; /* NULL: none beyond kiln's */
  size_t nmethods;
};

/* CFG and FRONT must outlive the server; the caller frees it with
   mcp_server_free once its connections are gone.  */
struct mcp_server *mcp_server_new(const struct kiln_config *cfg, struct front *front);
void mcp_server_free(struct mcp_server *s);

#endif
