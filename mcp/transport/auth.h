/* Bearer tokens for the HTTP transport: the --token-file, read at
   start-up and again on SIGHUP, and the check of a request's
   Authorization header.  Tokens are kept only as BLAKE2b hashes and
   compared in constant time, so neither their contents nor their
   lengths leak through timing.  */
#ifndef KILN_MCP_AUTH_H
#define KILN_MCP_AUTH_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>

/* The hex name of a token's hash: who a client is, for ownership and
   limits, without the token itself.  */
#define HTTP_CLIENT_NAME 33

struct http_auth;

/* Reads FILE (NULL: no tokens, every request is allowed).  Returns a new
   table the caller frees with http_auth_free, or NULL with ERR when the
   file cannot be read or holds no token.  */
struct http_auth *http_auth_new(const char *file, kiln_error_t *err);
void http_auth_free(struct http_auth *a);

/* Reads the file again.  On failure the tokens already loaded stay and
   ERR says why.  */
int http_auth_reload(struct http_auth *a, kiln_error_t *err);

/* Whether tokens are required at all.  */
bool http_auth_required(const struct http_auth *a);

/* The number of tokens loaded.  */
size_t http_auth_count(const struct http_auth *a);

/* Whether AUTHORIZATION (the header's value, NULL when absent) presents
   a loaded token as "Bearer TOKEN".  On success CLIENT gets the token's
   name.  */
bool http_auth_check(const struct http_auth *a, const char *authorization,
                     char client[HTTP_CLIENT_NAME]);

#endif
