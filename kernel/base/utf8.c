#include "utf8.h"
#include "util.h"

#include <string.h>

/* Returns the length of the valid UTF-8 sequence at S (at most N bytes
   available), or 0 if it is invalid or truncated.  */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80)
    return 1;
  else if (c >= 0xc2 && c <= 0xdf)
    len = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
      || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

char *
utf8_sanitize(const char *s, size_t n, size_t *out_len)
{
  const unsigned char *u = (const unsigned char *)s;
  /* Every invalid byte becomes three: size for the worst case.  */
  char *out = xmalloc(n * 3 + 1);
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t l = utf8_seq_len(u + i, n - i);
    if (l == 0) {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
      continue;
    }
    memcpy(out + o, s + i, l);
    o += l;
    i += l;
  }
  out[o] = '\0';
  if (out_len)
    *out_len = o;
  return out;
}

size_t
utf8_boundary_before(const char *s, size_t n)
{
  const unsigned char *u = (const unsigned char *)s;
  /* Step back over at most three continuation bytes to the lead byte.  */
  size_t i = n;
  for (int k = 0; k < 3 && i > 0 && (u[i - 1] & 0xc0) == 0x80; k++)
    i--;
  if (i == 0)
    return n;
  unsigned char lead = u[i - 1];
  size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if (lead < 0x80 || (lead & 0xc0) == 0x80)
    return n;
  return (n - (i - 1) >= need) ? n : i - 1;
}

char *
utf8_excerpt(const char *s, size_t n, size_t max)
{
  /* Cut after sanitizing, not before: a replaced byte grows to three.
     MAX + 1 bytes of S sanitize to more than MAX, so the text is cut
     when S is longer; a character that the first cut split becomes
     replacements that end past MAX and go with the second.  */
  size_t len;
  cleanup_free char *clean = utf8_sanitize(s, n > max ? max + 1 : n, &len);
  bool cut = len > max;
  size_t keep = cut ? utf8_boundary_before(clean, max) : len;
  /* A NUL inside would end the text early wherever it is shown.  */
  for (size_t i = 0; i < keep; i++)
    if (clean[i] == '\0')
      clean[i] = '?';
  return xasprintf("%.*s%s", (int)keep, clean, cut ? "\u2026" : "");
}
