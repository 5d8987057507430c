/* The proxy's request parser (proxy_request.h): only CONNECT host:port
   and absolute http:// GET and HEAD, with strict header syntax, pass.  */
#define _GNU_SOURCE
#include "proxy_request.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool
is_tchar(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
         || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
is_name_char(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
         || c == '-';
}

/* Parses "host[:port]" into RQ->host (lowercased, without brackets) and
   RQ->port.  Only DNS names and IP literals pass: no userinfo, no
   percent-encoding, no zone, nothing a resolver might read differently
   from how it was checked.  Returns 0 or -1.  */
static int
parse_authority(const char *s, size_t n, bool need_port, uint16_t default_port, struct request *rq)
{
  const char *host = s, *host_end;
  size_t i = 0;
  if (n > 0 && s[0] == '[') {
    host_end = memchr(s, ']', n);
    if (host_end == NULL)
      return -1;
    host++;
    for (const char *c = host; c < host_end; c++)
      if (*c == '\0' || !strchr("0123456789abcdefABCDEF:.", *c))
        return -1;
    if (memchr(host, ':', (size_t)(host_end - host)) == NULL)
      return -1;
    i = (size_t)(host_end - s) + 1;
  } else {
    while (i < n && is_name_char((unsigned char)s[i]))
      i++;
    host_end = s + i;
  }
  size_t hlen = (size_t)(host_end - host);
  if (hlen == 0 || hlen >= HOST_MAX)
    return -1;
  for (size_t k = 0; k < hlen; k++)
    rq->host[k] = (char)((host[k] >= 'A' && host[k] <= 'Z') ? host[k] + 32 : host[k]);
  rq->host[hlen] = '\0';
  if (i == n) {
    rq->port = default_port;
    return need_port ? -1 : 0;
  }
  if (s[i] != ':' || n - i - 1 < 1 || n - i - 1 > 5)
    return -1;
  unsigned port = 0;
  for (i++; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    port = port * 10 + (unsigned)(s[i] - '0');
  }
  if (port == 0 || port > 65535)
    return -1;
  rq->port = (uint16_t)port;
  return 0;
}

/* Parses the head.  Returns NULL, or the status to answer with and a
   reason in *WHY.  */
const char *
parse_request(const char *head, size_t head_len, struct request *rq, const char **why)
{
  *why = "malformed request";
  if (memchr(head, '\0', head_len) != NULL)
    return BAD_REQUEST;
  const char *end = head + head_len;
  const char *line = head;
  const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
  size_t n = (size_t)(eol - line);
  if (memchr(line, '\n', n) || memchr(line, '\r', n))
    return BAD_REQUEST;

  /* METHOD SP TARGET SP HTTP/1.x */
  const char *sp1 = memchr(line, ' ', n);
  if (sp1 == NULL || sp1 == line || sp1 - line >= (ptrdiff_t)sizeof rq->method)
    return BAD_REQUEST;
  for (const char *c = line; c < sp1; c++)
    if (*c < 'A' || *c > 'Z')
      return BAD_REQUEST;
  memcpy(rq->method, line, (size_t)(sp1 - line));
  rq->method[sp1 - line] = '\0';
  const char *target = sp1 + 1;
  const char *sp2 = memchr(target, ' ', (size_t)(eol - target));
  if (sp2 == NULL || sp2 == target)
    return BAD_REQUEST;
  for (const char *c = target; c < sp2; c++)
    if (*c < 0x21 || *c > 0x7e)
      return BAD_REQUEST;
  rq->version = sp2 + 1;
  if (eol - rq->version != 8
      || (memcmp(rq->version, "HTTP/1.1", 8) != 0 && memcmp(rq->version, "HTTP/1.0", 8) != 0))
    return BAD_REQUEST;

  /* Header lines, until the empty one that ends the head.  */
  bool seen_length = false;
  for (line = eol + 2;; line = eol + 2) {
    eol = memmem(line, (size_t)(end - line), "\r\n", 2);
    n = (size_t)(eol - line);
    if (n == 0)
      break;
    const char *colon = memchr(line, ':', n);
    if (colon == NULL || colon == line)
      return BAD_REQUEST;
    for (const char *c = line; c < colon; c++)
      if (!is_tchar((unsigned char)*c))
        return BAD_REQUEST;
    for (const char *c = colon + 1; c < eol; c++)
      if ((unsigned char)*c < 0x20 ? *c != '\t' : *c == 0x7f)
        return BAD_REQUEST;
    size_t name_len = (size_t)(colon - line);
    const char *v = colon + 1, *v_end = eol;
    while (v < v_end && (*v == ' ' || *v == '\t'))
      v++;
    while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t'))
      v_end--;
#define IS(name) (name_len == sizeof name - 1 && strncasecmp(line, name, name_len) == 0)
    if (IS("Content-Length")) {
      /* Two lengths, or a chunked body, are how requests get smuggled
         past whoever reads them differently: refuse both.  */
      if (seen_length || v == v_end || v_end - v > 15)
        return BAD_REQUEST;
      for (const char *c = v; c < v_end; c++) {
        if (*c < '0' || *c > '9')
          return BAD_REQUEST;
        rq->content_length = rq->content_length * 10 + (uint64_t)(*c - '0');
      }
      seen_length = true;
    } else if (IS("Transfer-Encoding")) {
      *why = "request bodies must have a Content-Length";
      return BAD_REQUEST;
    } else if (IS("Host")) {
      rq->has_host = true;
    }
    /* Hop-by-hop headers are the proxy's business, not the origin's;
       the origin gets Connection: close instead.  */
    if (IS("Proxy-Connection") || IS("Proxy-Authorization") || IS("Connection") || IS("Keep-Alive"))
      continue;
#undef IS
    buf_append(&rq->headers, line, n + 2);
  }

  size_t tlen = (size_t)(sp2 - target);
  if (strcmp(rq->method, "CONNECT") == 0) {
    rq->connect = true;
    *why = "CONNECT needs host:port";
    return parse_authority(target, tlen, true, 0, rq) < 0 ? BAD_REQUEST : NULL;
  }
  if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
    *why = "only CONNECT, GET and HEAD are relayed";
    return "405 Method Not Allowed";
  }
  if (tlen < 7 || strncasecmp(target, "http://", 7) != 0) {
    *why = "only absolute http:// URLs are relayed";
    return BAD_REQUEST;
  }
  const char *auth = target + 7;
  size_t alen = strcspn(auth, "/? ");
  if (alen > (size_t)(sp2 - auth))
    alen = (size_t)(sp2 - auth);
  rq->path = auth + alen;
  rq->path_len = (size_t)(sp2 - rq->path);
  *why = "malformed host";
  return parse_authority(auth, alen, false, 80, rq) < 0 ? BAD_REQUEST : NULL;
}
