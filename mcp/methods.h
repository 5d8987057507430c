/* The methods MCP clients call, as tables: the connection looks a
   method up by name (all its bytes, NUL included), refuses it before
   initialize unless the table allows it, and calls its handler.  A
   server may add a table of its own (server.h), consulted first.  */
#ifndef KILN_MCP_METHODS_H
#define KILN_MCP_METHODS_H

#include "call.h"
#include "server.h"

#include <stdbool.h>
#include <stddef.h>

struct mcp_method {
  const char *name;
  mcp_method_fn fn;
  bool before_initialize; /* may be called before initialize is answered */
};

struct mcp_notification {
  const char *name;
  /* PARAMS is an object or NULL.  Notifications are never answered.  */
  void (*fn)(struct mcp_call *c, json_t *params);
};

/* S's entry for the method NAME (LEN bytes): from S's own table, else
   kiln's, else NULL.  */
const struct mcp_method *mcp_method_find(const struct mcp_server *s, const char *name, size_t len);
const struct mcp_notification *mcp_notification_find(const char *name, size_t len);

#endif
