/* Tool arguments checked against the tool's input schema, so that what
   tools/list promises and what tools/call accepts cannot drift apart.  */
#ifndef KILN_MCP_SCHEMA_H
#define KILN_MCP_SCHEMA_H

#include "error.h"

#include <jansson.h>

/* Checks ARGS against SCHEMA (both borrowed), the subset of JSON Schema
   kiln's tools use: an object; each key one of "properties" (compared
   with all its bytes); every "required" key present; each value of its
   property's "type" (a name or a list of names), in its "enum" (strings
   compared with their lengths) and above its "exclusiveMinimum".  A null
   value for an optional argument counts as absent.  TOOL names the tool
   in messages.  Returns 0, or -1 with ERR naming the argument.  */
int schema_check_args(json_t *schema, const char *tool, json_t *args, kiln_error_t *err);

#endif
