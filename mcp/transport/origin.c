#define _GNU_SOURCE
#include "origin.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Whether the comma-separated LIST holds ITEM ([ITEM, ITEM+LEN)),
   compared without case, or "*".  */
static bool
listed(const char *list, const char *item, size_t len)
{
  if (list == NULL)
    return false;
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == ',')
      p++;
    size_t n = strcspn(p, ",");
    size_t m = n;
    while (m > 0 && p[m - 1] == ' ')
      m--;
    if ((m == 1 && p[0] == '*') || (m == len && m > 0 && strncasecmp(p, item, len) == 0))
      return true;
    p += n;
  }
  return false;
}

bool
http_addr_is_loopback(const char *addr)
{
  struct in_addr a4;
  struct in6_addr a6;
  if (strcasecmp(addr, "localhost") == 0)
    return true;
  if (inet_pton(AF_INET, addr, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, addr, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

/* Splits "host[:port]" or "[v6][:port]" into the host's span (without
   brackets).  Returns false when it is malformed.  */
static bool
split_host(const char *s, size_t len, const char **host, size_t *host_len)
{
  const char *end = s + len;
  if (len == 0)
    return false;
  if (s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (close == NULL || (close + 1 != end && close[1] != ':'))
      return false;
    *host = s + 1;
    *host_len = (size_t)(close - s - 1);
    s = close + 1;
  } else {
    const char *colon = memchr(s, ':', len);
    *host = s;
    *host_len = colon ? (size_t)(colon - s) : len;
    s = colon ? colon : end;
  }
  if (s < end) {
    /* ":port": digits only.  */
    if (*s != ':' || s + 1 == end)
      return false;
    for (const char *p = s + 1; p < end; p++)
      if (!isdigit((unsigned char)*p))
        return false;
  }
  if (*host_len == 0 || *host_len > 253)
    return false;
  for (size_t i = 0; i < *host_len; i++) {
    unsigned char c = (unsigned char)(*host)[i];
    if (!(isalnum(c) || c == '.' || c == '-' || c == ':' || c == '_'))
      return false;
  }
  return true;
}

static bool
is_ip_literal(const char *host, size_t len)
{
  char buf[64];
  struct in_addr a4;
  struct in6_addr a6;
  if (len >= sizeof buf)
    return false;
  memcpy(buf, host, len);
  buf[len] = '\0';
  return inet_pton(AF_INET, buf, &a4) == 1 || inet_pton(AF_INET6, buf, &a6) == 1;
}

static bool
is_loopback_name(const char *host, size_t len)
{
  char buf[64];
  if (len >= sizeof buf)
    return false;
  memcpy(buf, host, len);
  buf[len] = '\0';
  return http_addr_is_loopback(buf);
}

bool
http_origin_ok(const char *origin, const char *allow, bool loopback)
{
  if (origin == NULL)
    return true;
  size_t len = strlen(origin);
  if (listed(allow, origin, len))
    return true;
  const char *sep = strstr(origin, "://");
  if (sep == NULL || !loopback)
    return false;
  size_t scheme_len = (size_t)(sep - origin);
  if (!((scheme_len == 4 && strncasecmp(origin, "http", 4) == 0)
        || (scheme_len == 5 && strncasecmp(origin, "https", 5) == 0)))
    return false;
  const char *host;
  size_t host_len;
  const char *rest = sep + 3;
  return split_host(rest, strlen(rest), &host, &host_len) && is_loopback_name(host, host_len);
}

bool
http_host_ok(const char *host_header, const char *allow)
{
  if (host_header == NULL)
    return false;
  const char *host;
  size_t host_len;
  if (!split_host(host_header, strlen(host_header), &host, &host_len))
    return false;
  if (is_ip_literal(host, host_len) || (host_len == 9 && strncasecmp(host, "localhost", 9) == 0))
    return true;
  return listed(allow, host, host_len);
}
