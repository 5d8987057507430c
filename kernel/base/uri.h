/* kiln's resource URIs, built and read in one place:

     kiln://sessions/<session id>/files/<path under /work>
     kiln://sessions/<session id>/artifacts/<artifact name>
     kiln://sessions/<session id>/cells/<n>/<stdout|stderr>
     kiln://sessions/<session id>/history[/<cursor>]

   Names are percent-encoded (RFC 3986) on the way out, so that a file
   called "a b#c.txt" gives a URI every client parses the same way, and
   decoded and validated on the way in: what comes back from a client is
   the encoded form, and anything that does not decode to UTF-8 without
   NUL is refused before it names anything.  */
#ifndef KILN_URI_H
#define KILN_URI_H

#include "error.h"

#include <stddef.h>
#include <stdint.h>

#define URI_PREFIX "kiln://sessions/"

/* Percent-encodes [S, S+N) for a URI path: RFC 3986's unreserved
   characters (A-Z a-z 0-9 - . _ ~) and '/' are kept, every other byte
   becomes %XX with upper-case hex.  Returns a newly allocated string the
   caller frees.  */
char *uri_encode_path(const char *s, size_t n);

/* Decodes the percent-encoding in [S, S+N).  Refused, with a message in
   ERR: a '%' not followed by two hex digits; a character RFC 3986 does
   not allow in a path unencoded (space, '#', '?', controls, non-ASCII
   bytes...); a decoded NUL; a result that is not valid UTF-8.  Encoded
   unreserved characters and lower-case hex are accepted: RFC 3986 makes
   them equivalent to the canonical form.  On success returns 0 and a
   newly allocated, NUL-terminated *OUT of *OUT_LEN bytes the caller
   frees; on failure the error's status is EILSEQ, so that a caller can
   tell a badly encoded name from a URI of the wrong shape.  */
int uri_decode(const char *s, size_t n, char **out, size_t *out_len, kiln_error_t *err);

enum uri_kind {
  URI_FILE,     /* NAME is a path under /work */
  URI_ARTIFACT, /* NAME is an artifact's name */
  URI_CELL,     /* NAME is "N/stdout" or "N/stderr": a cell's kept output */
  URI_HISTORY,  /* NAME is "" (the newest page) or a page's cursor */
};

struct kiln_uri {
  enum uri_kind kind;
  char *session_id; /* decoded, owned */
  char *name;       /* decoded, owned; empty only for the newest page of a history */
  size_t name_len;
};

/* Parses one of the two URI forms above ([S, S+N)).  The scheme and host
   are matched without regard to case (RFC 3986 says they are
   case-insensitive); every part is decoded with uri_decode.  A '/' in a
   file path may come encoded (%2F): a template expansion encodes it, and
   no file name holds one.  On success returns 0 and fills U (release it
   with uri_clear); otherwise -1 with ERR, whose status is EILSEQ when the
   URI has the right shape but a badly encoded part, 0 when it is not one
   of the two forms.  */
int uri_parse(const char *s, size_t n, struct kiln_uri *u, kiln_error_t *err);
void uri_clear(struct kiln_uri *u);

/* The encoded URI of the file PATH (LEN bytes) of SESSION_ID, and of the
   artifact NAME: newly allocated strings the caller frees.  */
char *uri_file(const char *session_id, const char *path, size_t len);
char *uri_artifact(const char *session_id, const char *name);
/* ... and of the kept STREAM (1 stdout, 2 stderr) of cell CELL.  */
char *uri_cell_output(const char *session_id, uint64_t cell, int stream);

/* The cell and stream a URI_CELL names, when its name is spelled as
   uri_cell_output spells it (0); otherwise -1.  */
int uri_cell_parts(const struct kiln_uri *u, uint64_t *cell, int *stream);

/* The history of SESSION_ID, the page below cursor BEFORE (0: the
   newest): a newly allocated string the caller frees.  */
char *uri_history(const char *session_id, int64_t before);

#endif
