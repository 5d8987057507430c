/* The file tools (upload_file, list_files, read_file), served by a
   session's worker between cells, and the read behind resources/read of
   a kiln://sessions/<id>/files/<path> URI.  */
#ifndef KILN_MCP_FILES_H
#define KILN_MCP_FILES_H

#include "call.h"

#include <stddef.h>

/* Reads PATH (LEN bytes, not NUL-terminated) of SESSION_ID for
   resources/read: returns MCP_DEFERRED, the reply (contents with the
   file's canonical URI) coming later, or MCP_RESOURCE_NOT_FOUND with ERR
   when the front refuses at once.  */
int files_read_resource(struct mcp_call *c, const char *session_id, const char *path, size_t len,
                        kiln_error_t *err);

#endif
