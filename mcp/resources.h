/* MCP resources: a session's artifacts (stored images) and its files,
   named by the URIs of uri.h.  */
#ifndef KILN_MCP_RESOURCES_H
#define KILN_MCP_RESOURCES_H

#include "call.h"

/* The handlers of resources/list, resources/read and
   resources/templates/list (mcp_method_fn).  */
int resources_list_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);
int resources_read_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);
int resources_templates_method(struct mcp_call *c, json_t *params, json_t **result,
                               kiln_error_t *err);

#endif
