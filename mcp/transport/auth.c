#define _GNU_SOURCE
#include "auth.h"
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define HASH_LEN 32
/* The longest token line read; longer lines are refused, not cut.  */
#define MAX_TOKEN 4096
/* A token file of more lines than this is a mistake.  */
#define MAX_TOKENS 10000

struct http_auth {
  char *file;                        /* owned, NULL when no tokens are required */
  unsigned char (*hashes)[HASH_LEN]; /* owned */
  size_t n;
};

static void
hash(const char *s, size_t len, unsigned char out[HASH_LEN])
{
  crypto_generichash(out, HASH_LEN, (const unsigned char *)s, len, NULL, 0);
}

static int
load(struct http_auth *a, kiln_error_t *err)
{
  FILE *f = fopen(a->file, "re");
  if (f == NULL)
    return kiln_error_make(err, errno, "--token-file %s", a->file);
  unsigned char(*hashes)[HASH_LEN] = NULL;
  size_t n = 0, line_no = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int rc = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    line_no++;
    char *s = line;
    while (len > 0
           && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
      s[--len] = '\0';
    while (*s == ' ' || *s == '\t')
      s++, len--;
    if (len == 0 || s[0] == '#')
      continue;
    if (len > MAX_TOKEN || strpbrk(s, " \t") != NULL) {
      rc = kiln_error_make(err, 0, "--token-file %s: line %zu is not one token", a->file, line_no);
      break;
    }
    if (n == MAX_TOKENS) {
      rc = kiln_error_make(err, 0, "--token-file %s: more than %d tokens", a->file, MAX_TOKENS);
      break;
    }
    hashes = xrealloc(hashes, (n + 1) * sizeof *hashes);
    hash(s, (size_t)len, hashes[n++]);
  }
  if (rc == 0 && ferror(f))
    rc = kiln_error_make(err, errno, "--token-file %s", a->file);
  if (rc == 0 && n == 0)
    rc = kiln_error_make(err, 0, "--token-file %s holds no token", a->file);
  sodium_memzero(line, cap);
  free(line);
  fclose(f);
  if (rc < 0) {
    free(hashes);
    return rc;
  }
  free(a->hashes);
  a->hashes = hashes;
  a->n = n;
  return 0;
}

struct http_auth *
http_auth_new(const char *file, kiln_error_t *err)
{
  if (sodium_init() < 0) {
    kiln_error_make(err, 0, "libsodium cannot start");
    return NULL;
  }
  struct http_auth *a = xzalloc(sizeof *a);
  if (file == NULL)
    return a;
  a->file = xstrdup(file);
  if (load(a, err) < 0) {
    http_auth_free(a);
    return NULL;
  }
  return a;
}

void
http_auth_free(struct http_auth *a)
{
  if (a == NULL)
    return;
  free(a->file);
  free(a->hashes);
  free(a);
}

int
http_auth_reload(struct http_auth *a, kiln_error_t *err)
{
  return a->file ? load(a, err) : 0;
}

bool
http_auth_required(const struct http_auth *a)
{
  return a->file != NULL;
}

size_t
http_auth_count(const struct http_auth *a)
{
  return a->n;
}

bool
http_auth_check(const struct http_auth *a, const char *authorization, char client[HTTP_CLIENT_NAME])
{
  if (a->file == NULL) {
    client[0] = '\0';
    return true;
  }
  if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
    return false;
  const char *token = authorization + 7;
  while (*token == ' ')
    token++;
  size_t len = strlen(token);
  if (len == 0 || len > MAX_TOKEN)
    return false;
  unsigned char h[HASH_LEN];
  hash(token, len, h);
  /* Every loaded token is compared, whichever matches: the time taken
     says nothing about which one, or how close.  */
  int found = -1;
  for (size_t i = 0; i < a->n; i++)
    if (sodium_memcmp(h, a->hashes[i], HASH_LEN) == 0)
      found = (int)i;
  if (found < 0)
    return false;
  sodium_bin2hex(client, HTTP_CLIENT_NAME, h, (HTTP_CLIENT_NAME - 1) / 2);
  return true;
}
