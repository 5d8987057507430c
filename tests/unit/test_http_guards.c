#define _GNU_SOURCE
/* The HTTP transport's guards on their own: which Origin and Host headers
   pass (DNS rebinding), and how bearer tokens are read and checked.  */
#include "check.h"
#include "transport/auth.h"
#include "transport/origin.h"
#include "util.h"

#include <stdlib.h>
#include <unistd.h>

static void
origins(void)
{
  /* No Origin: not a browser, nothing to check.  */
  CHECK(http_origin_ok(NULL, NULL, true));
  CHECK(http_origin_ok(NULL, NULL, false));
  /* Loopback origins, only when bound to loopback.  */
  CHECK(http_origin_ok("http://localhost:3000", NULL, true));
  CHECK(http_origin_ok("http://127.0.0.1", NULL, true));
  CHECK(http_origin_ok("https://127.9.9.9:443", NULL, true));
  CHECK(http_origin_ok("http://[::1]:8080", NULL, true));
  CHECK(http_origin_ok("HTTP://LOCALHOST:1", NULL, true));
  CHECK(!http_origin_ok("http://localhost:3000", NULL, false));
  /* Names that merely start like loopback, other schemes, junk.  */
  CHECK(!http_origin_ok("http://localhost.evil.example", NULL, true));
  CHECK(!http_origin_ok("http://127.0.0.1.evil.example:80", NULL, true));
  CHECK(!http_origin_ok("http://evil.example", NULL, true));
  CHECK(!http_origin_ok("null", NULL, true));
  CHECK(!http_origin_ok("file://localhost", NULL, true));
  CHECK(!http_origin_ok("http://localhost:80x", NULL, true));
  CHECK(!http_origin_ok("http://[::1", NULL, true));
  CHECK(!http_origin_ok("http://", NULL, true));
  CHECK(!http_origin_ok("http://user@localhost", NULL, true));
  CHECK(!http_origin_ok("", NULL, true));
  /* The list: exact origins, without case, spaces around commas; "*".  */
  const char *list = "https://app.example.com, http://tool.example:8080";
  CHECK(http_origin_ok("https://app.example.com", list, false));
  CHECK(http_origin_ok("HTTPS://APP.EXAMPLE.COM", list, false));
  CHECK(http_origin_ok("http://tool.example:8080", list, false));
  CHECK(!http_origin_ok("http://tool.example", list, false));
  CHECK(!http_origin_ok("https://app.example.com.evil", list, false));
  CHECK(!http_origin_ok("https://app.example.co", list, false));
  CHECK(http_origin_ok("https://anything", "*", false));
  CHECK(!http_origin_ok("https://a", ",,, ,", false));
}

static void
hosts(void)
{
  CHECK(http_host_ok("127.0.0.1:8080", NULL));
  CHECK(http_host_ok("10.1.2.3", NULL));
  CHECK(http_host_ok("[::1]:8080", NULL));
  CHECK(http_host_ok("[2001:db8::1]", NULL));
  CHECK(http_host_ok("localhost:1234", NULL));
  CHECK(http_host_ok("LocalHost", NULL));
  CHECK(!http_host_ok(NULL, NULL));
  CHECK(!http_host_ok("", NULL));
  CHECK(!http_host_ok("attacker.example:8080", NULL));
  CHECK(!http_host_ok("localhost.attacker.example", NULL));
  CHECK(!http_host_ok("127.0.0.1.attacker.example", NULL));
  CHECK(!http_host_ok("127.0.0.1:80:80", NULL));
  CHECK(!http_host_ok("127.0.0.1:", NULL));
  CHECK(!http_host_ok("[::1", NULL));
  CHECK(!http_host_ok("::1", NULL));
  CHECK(!http_host_ok("a b", NULL));
  CHECK(http_host_ok("kiln.internal:443", "other.example, kiln.internal"));
  CHECK(http_host_ok("KILN.INTERNAL", "kiln.internal"));
  CHECK(!http_host_ok("kiln.internal.evil", "kiln.internal"));
  CHECK(!http_host_ok("kiln.interna", "kiln.internal"));
  CHECK(http_host_ok("anything.example", "*"));
  CHECK(http_addr_is_loopback("127.0.0.1"));
  CHECK(http_addr_is_loopback("::1"));
  CHECK(!http_addr_is_loopback("0.0.0.0"));
  CHECK(!http_addr_is_loopback("::"));
  CHECK(!http_addr_is_loopback("192.168.1.1"));
}

static char *
token_file(const char *content)
{
  char *path = xstrdup("/tmp/kiln-test-tokens.XXXXXX");
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  CHECK(write(fd, content, strlen(content)) == (ssize_t)strlen(content));
  close(fd);
  return path;
}

static void
tokens(void)
{
  char name[HTTP_CLIENT_NAME], other[HTTP_CLIENT_NAME];
  kiln_error_t err = NULL;
  struct http_auth *none = http_auth_new(NULL, &err);
  CHECK(none && !http_auth_required(none));
  CHECK(http_auth_check(none, NULL, name) && name[0] == '\0');
  http_auth_free(none);

  char *path = token_file("# comment\n  alpha \n\nbeta\r\n");
  struct http_auth *a = http_auth_new(path, &err);
  CHECK(a && http_auth_required(a) && http_auth_count(a) == 2);
  CHECK(http_auth_check(a, "Bearer alpha", name));
  CHECK(strlen(name) == HTTP_CLIENT_NAME - 1);
  CHECK(http_auth_check(a, "bearer beta", other));
  CHECK(strcmp(name, other) != 0);
  CHECK(!http_auth_check(a, NULL, name));
  CHECK(!http_auth_check(a, "Bearer ", name));
  CHECK(!http_auth_check(a, "Bearer alph", name));
  CHECK(!http_auth_check(a, "Bearer alphaa", name));
  CHECK(!http_auth_check(a, "Bearer # comment", name));
  CHECK(!http_auth_check(a, "Basic alpha", name));
  CHECK(!http_auth_check(a, "alpha", name));

  /* A reload that fails keeps the old tokens; one that works replaces them.  */
  FILE *f = fopen(path, "w");
  fputs("# nothing\n", f);
  fclose(f);
  CHECK(http_auth_reload(a, &err) < 0 && err && strstr(err->msg, "no token"));
  kiln_error_release(&err);
  CHECK(http_auth_check(a, "Bearer alpha", name));
  f = fopen(path, "w");
  fputs("gamma\n", f);
  fclose(f);
  CHECK(http_auth_reload(a, &err) == 0);
  CHECK(http_auth_check(a, "Bearer gamma", name) && !http_auth_check(a, "Bearer alpha", name));
  /* A line that is not one token is refused, not cut.  */
  f = fopen(path, "w");
  fputs("two words\n", f);
  fclose(f);
  CHECK(http_auth_reload(a, &err) < 0 && err && strstr(err->msg, "line 1"));
  kiln_error_release(&err);
  http_auth_free(a);
  unlink(path);
  CHECK(http_auth_new(path, &err) == NULL && err);
  kiln_error_release(&err);
  free(path);
}

static const struct test_case cases[] = {
  { "Origin: loopback when bound there, the list, nothing else", origins },
  { "Host: IP addresses, localhost and listed names", hosts },
  { "tokens: read, checked whole, reloaded or kept", tokens },
};

int
main(void)
{
  return RUN(cases);
}
