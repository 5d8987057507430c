/* Replies shaped for the protocol revision a client negotiated: a
   client of an older revision never receives a field or a content type
   its revision does not define (its SDK may refuse the whole reply).  */
#ifndef KILN_MCP_SHAPE_H
#define KILN_MCP_SHAPE_H

#include "conn.h"

#include <jansson.h>

/* A tools/call result (stolen; NULL passes through) as revision V may
   see it: before 2025-06-18, no structuredContent, and each resource
   link becomes a text line naming the kiln:// URI, which resources/read
   serves.  Returns the result, changed in place.  */
json_t *shape_tool_result(enum mcp_version v, json_t *result);

/* A tools/list result (stolen), likewise: no title or outputSchema
   before 2025-06-18, no annotations before 2025-03-26.  */
json_t *shape_tools_list(enum mcp_version v, json_t *result);

#endif
