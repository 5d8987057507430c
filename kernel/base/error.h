/* Errors in live code (front, sessions, capture, MCP) follow one contract:
   a function that can fail returns a negative value and, when ERR is not
   NULL, stores an allocated error there.  Callers add context on the way up
   with kiln_error_wrap and whoever handles the error releases it.  */
#ifndef KILN_ERROR_H
#define KILN_ERROR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kiln_error {
  int status; /* errno, or 0 when the error is not a system error.  */
  char *msg;  /* Owned by the error.  */
};
typedef struct kiln_error *kiln_error_t;

/* Stores a new error in *ERR (if ERR is not NULL) and returns -1.  When
   STATUS is non-zero, strerror (STATUS) is appended to the message.  */
int kiln_error_make(kiln_error_t *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message of *ERR with context ("context: message") and
   returns -1.  */
int kiln_error_wrap(kiln_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees *ERR and sets it to NULL; safe on NULL.  */
void kiln_error_release(kiln_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
