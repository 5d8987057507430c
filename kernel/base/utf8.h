/* UTF-8: every string that reaches JSON goes through here, so that no
   invalid sequence, and no cut through a character, reaches a client.  */
#ifndef KILN_UTF8_H
#define KILN_UTF8_H

#include <stddef.h>

/* Replaces invalid UTF-8 in [S, S+N) with U+FFFD.  Returns a newly
   allocated NUL-terminated string (which may contain NUL bytes before the
   end: *OUT_LEN says how long it is); the caller frees it.  */
char *utf8_sanitize(const char *s, size_t n, size_t *out_len);

/* Length of the longest prefix of [S, S+N) that does not end in the middle
   of a UTF-8 sequence (N itself when S+N falls on a boundary).  */
size_t utf8_boundary_before(const char *s, size_t n);

/* [S, S+N) for an error message, invalid UTF-8 replaced and NUL shown as
   '?', in at most MAX bytes: cut on a character boundary with an
   ellipsis added when cut.  Returns a newly allocated string the caller
   frees.  */
char *utf8_excerpt(const char *s, size_t n, size_t max);

#endif
