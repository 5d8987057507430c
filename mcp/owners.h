/* Which client each kiln session belongs to.  Over HTTP many clients
   share one kiln, and a session id is a capability only for the client
   that made it: to every other client it is "unknown session", word for
   word the answer an id that never existed gets.  A connection without
   an owner (stdio: one client, the whole kiln) sees every session.  */
#ifndef KILN_MCP_OWNERS_H
#define KILN_MCP_OWNERS_H

#include "error.h"

#include <stdbool.h>

struct mcp_conn;
struct mcp_server;

/* Records that SESSION_ID, just made for C, is C's.  No-op for a
   connection without an owner.  */
void mcp_owner_claim(struct mcp_conn *c, const char *session_id);

/* Whether C may use SESSION_ID.  */
bool mcp_owner_may(const struct mcp_conn *c, const char *session_id);

/* 0 when C may use SESSION_ID; otherwise -1 with ERR saying the session
   is unknown, as the front says it of one that does not exist (LONG: in
   run_python's words).  */
int mcp_owner_check(const struct mcp_conn *c, const char *session_id, bool long_form,
                    kiln_error_t *err);

/* Forgets SESSION_ID (closed).  */
void mcp_owner_forget(struct mcp_server *s, const char *session_id);

/* Closes every session OWNER holds (its MCP session ended) and forgets
   them.  */
void mcp_owner_close_all(struct mcp_server *s, const char *owner);

/* Frees the table.  */
void mcp_owner_free_all(struct mcp_server *s);

#endif
