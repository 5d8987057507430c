#define _GNU_SOURCE
#include "uri.h"
#include "utf8.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool
unreserved(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
         || c == '.' || c == '_' || c == '~';
}

/* What RFC 3986 allows unencoded in a path segment (pchar, less the
   percent sign): unreserved, sub-delims, ':' and '@'.  */
static bool
pchar(unsigned char c)
{
  /* strchr finds the terminator too: a raw NUL is not a sub-delim.  */
  return unreserved(c) || (c != '\0' && strchr("!$&'()*+,;=:@", c) != NULL);
}

static int
hexval(unsigned char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* An encoding error: its status says so (see uri.h).  */
__attribute__((format(printf, 2, 3))) static int
bad_encoding(kiln_error_t *err, const char *fmt, ...)
{
  if (err == NULL)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  cleanup_free char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0)
    xoom();
  va_end(ap);
  kiln_error_make(err, 0, "%s", msg);
  (*err)->status = EILSEQ;
  return -1;
}

static char *
encode(const char *s, size_t n, bool keep_slash)
{
  static const char hex[] = "0123456789ABCDEF";
  char *out = xmalloc(n * 3 + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c) || (keep_slash && c == '/'))
      out[o++] = (char)c;
    else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
  return out;
}

char *
uri_encode_path(const char *s, size_t n)
{
  return encode(s, n, true);
}

int
uri_decode(const char *s, size_t n, char **out, size_t *out_len, kiln_error_t *err)
{
  cleanup_free char *d = xmalloc(n + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%') {
      if (n - i >= 3) {
        int hi = hexval((unsigned char)s[i + 1]);
        int lo = hexval((unsigned char)s[i + 2]);
        if (hi >= 0 && lo >= 0) {
          c = (unsigned char)(hi << 4 | lo);
          if (c == '\0')
            return bad_encoding(err, "%%00 (a NUL byte) is not allowed in a kiln URI");
          d[o++] = (char)c;
          i += 2;
          continue;
        }
      }
      cleanup_free char *shown = utf8_excerpt(s + i, n - i < 3 ? n - i : 3, 3);
      return bad_encoding(err, "'%s' is not a percent-encoded byte (%%XX, two hex digits)", shown);
    }
    if (c != '/' && !pchar(c)) {
      if (c == '#' || c == '?')
        return bad_encoding(err, "kiln URIs take no query or fragment: encode '%c' as %%%02X", c,
                            c);
      if (c <= 0x20 || c >= 0x7f)
        return bad_encoding(err, "byte 0x%02X must be percent-encoded in a kiln URI (%%%02X)", c,
                            c);
      return bad_encoding(err,
                          "'%c' must be percent-encoded in a kiln URI (%%%02X): only letters, "
                          "digits, '-._~', '/' and \"!$&'()*+,;=:@\" stand for themselves",
                          c, c);
    }
    d[o++] = (char)c;
  }
  d[o] = '\0';
  size_t clean_len;
  cleanup_free char *clean = utf8_sanitize(d, o, &clean_len);
  if (clean_len != o || memcmp(clean, d, o) != 0)
    return bad_encoding(err, "a kiln URI must decode to UTF-8 text");
  *out = steal_pointer(&d);
  *out_len = o;
  return 0;
}

int
uri_parse(const char *s, size_t n, struct kiln_uri *u, kiln_error_t *err)
{
  static const char files[] = "files/", artifacts[] = "artifacts/", cells[] = "cells/",
                    history[] = "history";
  const size_t plen = strlen(URI_PREFIX);
  memset(u, 0, sizeof *u);
  /* The messages do not quote the URI: the caller, who shows it, does.  */
  if (n < plen || strncasecmp(s, URI_PREFIX, plen) != 0)
    return kiln_error_make(err, 0, "not a kiln URI (kiln://sessions/...)");
  const char *p = s + plen, *end = s + n;
  if (p == end || *p == '/')
    return kiln_error_make(err, 0, "the URI names no session");
  const char *slash = memchr(p, '/', (size_t)(end - p));
  const char *rest = slash ? slash + 1 : end;
  size_t rest_len = (size_t)(end - rest);
  const char *what;
  if (rest_len >= strlen(files) && memcmp(rest, files, strlen(files)) == 0) {
    u->kind = URI_FILE;
    what = rest + strlen(files);
  } else if (rest_len >= strlen(artifacts) && memcmp(rest, artifacts, strlen(artifacts)) == 0) {
    u->kind = URI_ARTIFACT;
    what = rest + strlen(artifacts);
  } else if (rest_len >= strlen(cells) && memcmp(rest, cells, strlen(cells)) == 0) {
    u->kind = URI_CELL;
    what = rest + strlen(cells);
  } else if ((rest_len == strlen(history) && memcmp(rest, history, rest_len) == 0)
             || (rest_len > strlen(history) && memcmp(rest, history, strlen(history)) == 0
                 && rest[strlen(history)] == '/')) {
    /* The newest page, or the page below a cursor: NAME is "" or it.  */
    u->kind = URI_HISTORY;
    what = rest_len == strlen(history) ? end : rest + strlen(history) + 1;
    if (what == end) {
      size_t sid_len;
      if (uri_decode(p, (size_t)(rest - 1 - p), &u->session_id, &sid_len, err) < 0)
        return -1;
      u->name = xstrdup("");
      return 0;
    }
  } else
    return kiln_error_make(err, 0,
                           "the URI names none of a session's files, artifacts, cells or history");
  if (what == end)
    return kiln_error_make(err, 0, "the URI names no %s",
                           u->kind == URI_FILE       ? "file"
                           : u->kind == URI_ARTIFACT ? "artifact"
                                                     : "cell");
  size_t sid_len;
  if (uri_decode(p, (size_t)(rest - 1 - p), &u->session_id, &sid_len, err) < 0
      || uri_decode(what, (size_t)(end - what), &u->name, &u->name_len, err) < 0) {
    uri_clear(u);
    return -1;
  }
  return 0;
}

void
uri_clear(struct kiln_uri *u)
{
  free(u->session_id);
  free(u->name);
  memset(u, 0, sizeof *u);
}

char *
uri_file(const char *session_id, const char *path, size_t len)
{
  cleanup_free char *sid = encode(session_id, strlen(session_id), false);
  cleanup_free char *p = encode(path, len, true);
  return xasprintf(URI_PREFIX "%s/files/%s", sid, p);
}

char *
uri_artifact(const char *session_id, const char *name)
{
  cleanup_free char *sid = encode(session_id, strlen(session_id), false);
  cleanup_free char *nm = encode(name, strlen(name), false);
  return xasprintf(URI_PREFIX "%s/artifacts/%s", sid, nm);
}

char *
uri_cell_output(const char *session_id, uint64_t cell, int stream)
{
  cleanup_free char *sid = encode(session_id, strlen(session_id), false);
  return xasprintf(URI_PREFIX "%s/cells/%llu/%s", sid, (unsigned long long)cell,
                   stream == 2 ? "stderr" : "stdout");
}

int
uri_cell_parts(const struct kiln_uri *u, uint64_t *cell, int *stream)
{
  const char *p = u->name, *end = u->name + u->name_len;
  uint64_t n = 0;
  size_t digits = 0;
  for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
    if (n > (UINT64_MAX - 9) / 10)
      return -1;
    n = n * 10 + (uint64_t)(*p - '0');
  }
  if (digits == 0 || (digits > 1 && u->name[0] == '0'))
    return -1;
  size_t rest = (size_t)(end - p);
  if (rest == 7 && memcmp(p, "/stdout", 7) == 0)
    *stream = 1;
  else if (rest == 7 && memcmp(p, "/stderr", 7) == 0)
    *stream = 2;
  else
    return -1;
  *cell = n;
  return 0;
}

char *
uri_history(const char *session_id, int64_t before)
{
  cleanup_free char *sid = encode(session_id, strlen(session_id), false);
  if (before > 0)
    return xasprintf(URI_PREFIX "%s/history/%lld", sid, (long long)before);
  return xasprintf(URI_PREFIX "%s/history", sid);
}
