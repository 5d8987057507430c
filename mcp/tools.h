/* The tools kiln offers: their schemas, argument checks and results.  */
#ifndef KILN_MCP_TOOLS_H
#define KILN_MCP_TOOLS_H

#include "kiln.h"

#include <jansson.h>

/* The tools/list result (new reference).  */
json_t *tools_list(void);

/* A tool result with isError set and MESSAGE as its text (new reference).  */
json_t *tools_error_result(const char *message);

/* The tools/call result for a finished cell (new reference).  */
json_t *tools_cell_result(const struct cell_reply *r);

/* The result of list_sessions (new reference).  */
json_t *tools_sessions_result(const struct session_info *v, size_t n);

/* Checks run_python's arguments.  On success returns 0 and fills the
   borrowed outputs (SESSION_ID NULL when absent, TIMEOUT 0 when absent);
   otherwise returns -1 with a message for the caller in ERR.  */
int tools_run_python_args(json_t *args, const char **code, size_t *code_len,
                          const char **session_id, double *timeout, kiln_error_t *err);

/* Checks an arguments object holding exactly one string "session_id".  */
int tools_session_id_arg(json_t *args, const char **session_id, kiln_error_t *err);

#endif
