/* UTF-8 and base64 on hostile bytes: the input's first byte is the
   excerpt's size, the rest is the text.

   Oracles, beside the sanitizers, each against a validator written here
   from the Unicode standard's table of well-formed sequences:
   utf8_sanitize gives valid UTF-8, the input itself when it was valid,
   and otherwise the input with each ill-formed byte replaced by U+FFFD;
   utf8_boundary_before never splits a well-formed sequence, goes back to
   the start of one it falls in and stays after one it follows; utf8_excerpt is valid UTF-8
   without NUL, at most the asked size plus the ellipsis, and the longest
   whole-character prefix of the sanitized text that fits.  Base64: the
   input survives an encode and decode; text that decodes is accepted
   exactly when a check written here accepts it, and encodes back to
   itself up to whitespace, padding, the URL-safe alphabet and the bits
   past the last byte.  */
#include "base64.h"
#include "fuzz.h"
#include "utf8.h"

#include <stdbool.h>
#include <string.h>

static const char ellipsis[] = "\xe2\x80\xa6";

/* Length of the well-formed sequence at S (Unicode 15, table 3-7), or 0
   when the bytes there are not one.  */
static size_t
wf_len(const uint8_t *s, size_t n)
{
  uint8_t b = s[0], lo = 0x80, hi = 0xbf;
  size_t len;
  if (b <= 0x7f)
    return 1;
  else if (b >= 0xc2 && b <= 0xdf)
    len = 2;
  else if (b == 0xe0)
    len = 3, lo = 0xa0;
  else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef)
    len = 3;
  else if (b == 0xed)
    len = 3, hi = 0x9f;
  else if (b == 0xf0)
    len = 4, lo = 0x90;
  else if (b >= 0xf1 && b <= 0xf3)
    len = 4;
  else if (b == 0xf4)
    len = 4, hi = 0x8f;
  else
    return 0;
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xbf)
      return 0;
  return len;
}

static bool
valid(const char *s, size_t n)
{
  for (size_t i = 0; i < n;) {
    size_t l = wf_len((const uint8_t *)s + i, n - i);
    if (l == 0)
      return false;
    i += l;
  }
  return true;
}

/* The sanitized text by the rule utf8.h states.  Allocated.  */
static char *
reference_sanitize(const char *s, size_t n, size_t *len)
{
  char *out = malloc(3 * n + 1);
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t l = wf_len((const uint8_t *)s + i, n - i);
    if (l == 0) {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3, i++;
    } else {
      memcpy(out + o, s + i, l);
      o += l, i += l;
    }
  }
  *len = o;
  return out;
}

static void
check_sanitize(const char *s, size_t n)
{
  size_t len = 0, rlen;
  char *out = utf8_sanitize(s, n, &len);
  char *ref = reference_sanitize(s, n, &rlen);
  FUZZ_CHECK(out[len] == '\0' && valid(out, len));
  FUZZ_CHECK(len == rlen && memcmp(out, ref, len) == 0);
  if (valid(s, n))
    FUZZ_CHECK(len == n && memcmp(out, s, n) == 0);
  size_t len2 = 0;
  char *again = utf8_sanitize(out, len, &len2);
  FUZZ_CHECK(len2 == len && memcmp(again, out, len) == 0);
  free(again);
  free(ref);
  free(out);
}

static void
check_boundaries(const char *s, size_t n)
{
  /* Where each byte's well-formed sequence starts, NONE for a byte that
     is in none.  */
  enum { NONE = -1 };
  long *start = malloc((n + 1) * sizeof *start);
  for (size_t i = 0; i < n;) {
    size_t l = wf_len((const uint8_t *)s + i, n - i);
    if (l == 0)
      start[i++] = NONE;
    for (size_t j = 0; j < l; j++)
      start[i + j] = (long)i;
    i += l;
  }
  start[n] = (long)n;
  for (size_t k = 0; k <= n; k++) {
    size_t b = utf8_boundary_before(s, k);
    FUZZ_CHECK(b <= k && k - b <= 3);
    /* B never splits a sequence.  */
    FUZZ_CHECK(start[b] == NONE || start[b] == (long)b);
    /* A cut through a sequence goes back to its start; after a whole
       one there is nothing to cut.  */
    if (start[k] != NONE && start[k] < (long)k)
      FUZZ_CHECK(b == (size_t)start[k]);
    else if (k == 0 || start[k - 1] != NONE)
      FUZZ_CHECK(b == k);
  }
  free(start);
}

static void
check_excerpt(const char *s, size_t n, size_t max)
{
  char *out = utf8_excerpt(s, n, max);
  size_t len = strlen(out);
  FUZZ_CHECK(valid(out, len));

  size_t rlen;
  char *ref = reference_sanitize(s, n, &rlen);
  for (size_t i = 0; i < rlen; i++)
    if (ref[i] == '\0')
      ref[i] = '?';
  if (rlen <= max) {
    FUZZ_CHECK(len == rlen && memcmp(out, ref, rlen) == 0);
  } else {
    /* The longest prefix of whole characters within MAX, and the
       ellipsis.  */
    size_t keep = 0;
    for (size_t i = 0; i < rlen;) {
      size_t l = wf_len((const uint8_t *)ref + i, rlen - i);
      if (i + l > max)
        break;
      i += l;
      keep = i;
    }
    FUZZ_CHECK(len <= max + strlen(ellipsis));
    FUZZ_CHECK(len == keep + strlen(ellipsis));
    FUZZ_CHECK(memcmp(out, ref, keep) == 0 && strcmp(out + keep, ellipsis) == 0);
  }
  free(ref);
  free(out);
}

static int
b64_value(char c)
{
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (c == '-')
    c = '+';
  else if (c == '_')
    c = '/';
  const char *p = c ? strchr(alphabet, c) : NULL;
  return p ? (int)(p - alphabet) : -1;
}

static void
check_base64(const char *s, size_t n)
{
  /* Bytes to text and back.  */
  char *text = base64_encode((const uint8_t *)s, n);
  size_t tlen = strlen(text), len = 0;
  FUZZ_CHECK(tlen == (n + 2) / 3 * 4);
  uint8_t *back = base64_decode(text, tlen, &len);
  FUZZ_CHECK(back != NULL && len == n && memcmp(back, s, n) == 0);
  free(back);
  free(text);

  /* The input as text.  Data characters (either alphabet), then at most
     two '=', whitespace anywhere, and never one lone character of a
     final group (six bits make no byte).  */
  char *data = malloc(n + 1);
  size_t d = 0, pad = 0;
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++) {
    char c = s[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    if (c == '=')
      pad++;
    else if (b64_value(c) < 0 || pad > 0)
      ok = false;
    else
      data[d++] = c;
  }
  ok = ok && pad <= 2 && d % 4 != 1;
  uint8_t *out = base64_decode(s, n, &len);
  FUZZ_CHECK((out != NULL) == ok);
  if (out != NULL) {
    FUZZ_CHECK(len == d * 6 / 8);
    char *e = base64_encode(out, len);
    size_t elen = strlen(e), ed = elen;
    while (ed > 0 && e[ed - 1] == '=')
      ed--;
    FUZZ_CHECK(ed == d);
    /* The last character also carries bits past the last byte, which
       the encoder leaves zero.  */
    static const int used_bits[4] = { 0x3f, 0, 0x30, 0x3c };
    for (size_t i = 0; i < d; i++) {
      int mask = i + 1 < d ? 0x3f : used_bits[d % 4];
      FUZZ_CHECK(b64_value(e[i]) == (b64_value(data[i]) & mask));
    }
    free(e);
    free(out);
  }
  free(data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *input, size_t size)
{
  if (size == 0)
    return 0;
  size_t max = input[0];
  const char *s = (const char *)input + 1;
  size_t n = size - 1;
  check_sanitize(s, n);
  check_boundaries(s, n);
  check_excerpt(s, n, max);
  check_base64(s, n);
  return 0;
}
