/* The tools kiln offers, as one table (tools/registry.c): each entry's
   name, title, description, input and output schema and handler.
   tools/list, the argument checks (unknown, missing and mistyped
   arguments, from the input schema) and the "unknown tool" message are
   all derived from it.  */
#ifndef KILN_MCP_TOOLS_H
#define KILN_MCP_TOOLS_H

#include "call.h"
#include "kiln.h"

#include <jansson.h>

/* What a client may assume of a tool (MCP's tool annotations), as bits
   of struct mcp_tool's HINTS.  */
enum {
  MCP_TOOL_READ_ONLY = 1,   /* changes nothing */
  MCP_TOOL_DESTRUCTIVE = 2, /* may delete or overwrite what is there */
  MCP_TOOL_IDEMPOTENT = 4,  /* a repeat with the same arguments does nothing more */
  MCP_TOOL_OPEN_WORLD = 8,  /* reaches beyond the server (the network, other hosts) */
};

struct mcp_tool {
  const char *name, *title, *description;
  /* JSON Schema text.  The input schema is the subset tools/schema.c
     checks: an object with typed properties, "required" and
     "additionalProperties": false.  OUTPUT may be NULL.  */
  const char *input, *output;
  /* Called with ARGS (borrowed) that passed the input schema; returns
     as call.h says, any failure becoming a tool result with isError.  */
  int (*fn)(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err);
  unsigned hints; /* MCP_TOOL_* bits */
};

extern const struct mcp_tool tool_run_python, tool_run_shell, tool_list_sessions,
    tool_close_session, tool_upload_file, tool_list_files, tool_read_file, tool_install_packages;

/* run_shell's description with the programs on the session's PATH, as
   found on the host's read-only trees the sandbox binds (borrowed: made
   on the first call and kept).  */
const char *tools_run_shell_description(void);

/* The handlers of tools/list and tools/call (mcp_method_fn).  */
int tools_list_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);
int tools_call_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);

/* The tools/list result for S's tools (new reference), run_python's
   description naming PACKAGES ("name version,...") when not NULL.  */
json_t *tools_list(const struct mcp_server *s, const char *packages);

/* The parsed input schema of T, any tool of any table (borrowed: parsed
   once, kept for the life of the process).  */
json_t *tools_input_schema(const struct mcp_tool *t);

/* ARGS's value for KEY (borrowed), or NULL when absent or JSON null
   (which some clients send for an optional argument they leave out).  */
json_t *tools_arg(json_t *args, const char *key);

/* The optional string argument KEY of ARGS as a C string (borrowed, NULL
   when absent), for a name the front looks up: one holding a NUL byte
   would name whatever comes before the NUL, so it is refused (-1 with
   ERR).  */
int tools_arg_name(json_t *args, const char *key, const char **out, kiln_error_t *err);

/* Checks run_python's arguments against its schema.  On success returns
   0 and fills the borrowed outputs (SESSION_ID NULL when absent, TIMEOUT
   0 when absent); otherwise returns -1 with a message for the caller in
   ERR.  */
int tools_run_python_args(json_t *args, const char **code, size_t *code_len,
                          const char **session_id, double *timeout, kiln_error_t *err);

/* The tools/call result for a finished cell or shell command (R->shell:
   the header says "command", and its exit status is a line of the text
   and fields of structuredContent), its text within MAX_REPLY bytes
   (--max-reply) (new reference; NULL only if it could not be built).  */
json_t *tools_cell_result(const struct cell_reply *r, size_t max_reply);

/* A cell or shell command run for a client: its reply budget and, when
   the client asked for progress, the token its output streams under
   while it runs.  mcp_defer allocates it (BASE first); its release is
   tools_run_release.  */
struct run_pending {
  struct mcp_pending base;
  json_t *token; /* owned, or NULL */
  uint64_t sent; /* bytes streamed so far: the progress value */
  size_t max_reply;
};
void tools_run_release(struct mcp_pending *p);
/* Streams the output of run H to P's client as notifications/progress
   when the call C carried a progress token.  */
void tools_run_watch(struct mcp_call *c, int64_t h, struct run_pending *p);

/* The result of list_sessions (new reference, or NULL).  */
json_t *tools_sessions_result(const struct session_info *v, size_t n);

#endif
