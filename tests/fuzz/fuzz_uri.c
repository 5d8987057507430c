/* kiln:// resource URIs on hostile bytes: uri_parse as resources/read
   calls it, and uri_decode / uri_encode_path on their own.

   Oracles, beside the sanitizers: whatever uri_decode accepts has no NUL
   and is valid UTF-8 (checked with utf8_sanitize, which changes nothing
   in valid text), and encodes back (uri_encode_path) to a string that
   decodes to it again; every input encodes to characters RFC 3986 allows
   in a path and decodes back to itself; a parsed URI has a non-empty name
   of NAME_LEN bytes, no NUL in it or in its session id, and the URI built
   again from its parts (uri_file, uri_artifact) parses to the same
   parts.  */
#include "fuzz.h"
#include "uri.h"
#include "utf8.h"
#include "util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool
valid_text(const char *s, size_t n)
{
  if (memchr(s, '\0', n))
    return false;
  size_t m;
  char *clean = utf8_sanitize(s, n, &m);
  bool same = m == n && memcmp(clean, s, n) == 0;
  free(clean);
  return same;
}

static bool
path_chars(const char *s)
{
  for (; *s; s++)
    if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/%", *s))
      return false;
  return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *text = (const char *)data;

  char *enc = uri_encode_path(text, size);
  FUZZ_CHECK(path_chars(enc));
  char *back = NULL;
  size_t back_len = 0;
  kiln_error_t err = NULL;
  int r = uri_decode(enc, strlen(enc), &back, &back_len, &err);
  /* What does not decode is what uri_decode refuses whatever its
     spelling: a NUL or invalid UTF-8 in the input itself.  */
  FUZZ_CHECK((r == 0) == valid_text(text, size));
  if (r == 0)
    FUZZ_CHECK(back_len == size && memcmp(back, text, size) == 0);
  kiln_error_release(&err);
  free(back);
  free(enc);

  char *dec = NULL;
  size_t dec_len = 0;
  if (uri_decode(text, size, &dec, &dec_len, &err) == 0) {
    FUZZ_CHECK(valid_text(dec, dec_len) && dec[dec_len] == '\0');
    char *again = uri_encode_path(dec, dec_len);
    char *dec2 = NULL;
    size_t dec2_len = 0;
    FUZZ_CHECK(uri_decode(again, strlen(again), &dec2, &dec2_len, NULL) == 0);
    FUZZ_CHECK(dec2_len == dec_len && memcmp(dec2, dec, dec_len) == 0);
    free(dec2);
    free(again);
  }
  kiln_error_release(&err);
  free(dec);

  struct kiln_uri u;
  if (uri_parse(text, size, &u, &err) == 0) {
    /* Only a history's newest page has no name.  */
    FUZZ_CHECK((u.name_len > 0 || u.kind == URI_HISTORY) && strlen(u.name) == u.name_len);
    FUZZ_CHECK(valid_text(u.name, u.name_len) && valid_text(u.session_id, strlen(u.session_id)));
    uint64_t cell;
    int stream;
    bool cell_ok = u.kind == URI_CELL && uri_cell_parts(&u, &cell, &stream) == 0;
    if (u.kind == URI_CELL && !cell_ok) {
      uri_clear(&u);
      kiln_error_release(&err);
      return 0;
    }
    /* A history's cursor is the resource's business (it refuses all but
       a positive decimal); only those spellings are built again.  */
    bool cursor_ok = u.kind == URI_HISTORY && u.name_len <= 18
                     && strspn(u.name, "0123456789") == u.name_len
                     && (u.name_len == 0 || u.name[0] != '0');
    if (u.kind == URI_HISTORY && !cursor_ok) {
      uri_clear(&u);
      kiln_error_release(&err);
      return 0;
    }
    char *built = u.kind == URI_FILE       ? uri_file(u.session_id, u.name, u.name_len)
                  : u.kind == URI_ARTIFACT ? uri_artifact(u.session_id, u.name)
                  : u.kind == URI_HISTORY  ? uri_history(u.session_id, strtoll(u.name, NULL, 10))
                                           : uri_cell_output(u.session_id, cell, stream);
    struct kiln_uri v;
    FUZZ_CHECK(uri_parse(built, strlen(built), &v, NULL) == 0);
    FUZZ_CHECK(v.kind == u.kind && strcmp(v.session_id, u.session_id) == 0
               && v.name_len == u.name_len && memcmp(v.name, u.name, u.name_len) == 0);
    uri_clear(&v);
    free(built);
    uri_clear(&u);
  }
  kiln_error_release(&err);
  return 0;
}
