/* completion/complete for the arguments of kiln's resource templates.  */
#ifndef KILN_MCP_COMPLETIONS_H
#define KILN_MCP_COMPLETIONS_H

#include "call.h"

int completion_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);

#endif
