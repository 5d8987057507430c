#define _GNU_SOURCE
/* UTF-8: what reaches a client is valid, and a string cut for display is
   cut between characters, never through one.  */
#include "check.h"
#include "utf8.h"
#include "util.h"

#include <jansson.h>

static bool
sanitizes_to(const char *in, size_t n, const char *want, size_t want_len)
{
  size_t len = 0;
  char *got = utf8_sanitize(in, n, &len);
  bool ok = len == want_len && memcmp(got, want, len) == 0 && got[len] == '\0';
  if (!ok)
    fprintf(stderr, "  sanitize: got %zu bytes '%s'\n", len, got);
  free(got);
  return ok;
}

#define S(lit) lit, sizeof lit - 1
#define FFFD   "\xef\xbf\xbd"

static void
valid_text_passes_through_unchanged(void)
{
  CHECK(sanitizes_to(S(""), S("")));
  CHECK(sanitizes_to(S("plain ascii"), S("plain ascii")));
  CHECK(sanitizes_to(S("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"),
                     S("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80")));
  CHECK(sanitizes_to(S("a\0b"), S("a\0b")));                         /* NUL is valid UTF-8 */
  CHECK(sanitizes_to(S("\xf4\x8f\xbf\xbf"), S("\xf4\x8f\xbf\xbf"))); /* U+10FFFF */
}

static void
invalid_sequences_become_replacement_characters(void)
{
  CHECK(sanitizes_to(S("\x80"), S(FFFD)));                            /* lone continuation */
  CHECK(sanitizes_to(S("a\xc3"), S("a" FFFD)));                       /* truncated at the end */
  CHECK(sanitizes_to(S("\xc3("), S(FFFD "(")));                       /* bad continuation */
  CHECK(sanitizes_to(S("\xc0\x80"), S(FFFD FFFD)));                   /* overlong NUL */
  CHECK(sanitizes_to(S("\xe0\x80\xaf"), S(FFFD FFFD FFFD)));          /* overlong, 3 bytes */
  CHECK(sanitizes_to(S("\xed\xa0\x80"), S(FFFD FFFD FFFD)));          /* surrogate */
  CHECK(sanitizes_to(S("\xf4\x90\x80\x80"), S(FFFD FFFD FFFD FFFD))); /* past U+10FFFF */
  CHECK(sanitizes_to(S("\xf5"), S(FFFD)));
  CHECK(sanitizes_to(S("\xff\xfe"), S(FFFD FFFD)));
}

static void
a_cut_steps_back_to_a_character_boundary(void)
{
  const char *s = "a\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80"; /* a ü € 😀: 1+2+3+4 bytes */
  size_t want[] = { 0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10 };
  for (size_t n = 0; n <= 10; n++) {
    size_t got = utf8_boundary_before(s, n);
    if (got != want[n])
      fprintf(stderr, "  boundary before %zu: got %zu, want %zu\n", n, got, want[n]);
    CHECK(got == want[n]);
  }
}

static void
an_excerpt_is_valid_utf8_cut_between_characters(void)
{
  char *e = utf8_excerpt(S("short"), 200);
  CHECK(strcmp(e, "short") == 0);
  free(e);
  /* The path that once made json_pack fail: a two-byte character
     across byte 200.  */
  char path[300];
  memcpy(path, "../", 3);
  memset(path + 3, 'a', 196);
  memcpy(path + 199, "\xc3\xbc", 2);
  memset(path + 201, 'b', 20);
  e = utf8_excerpt(path, 221, 200);
  CHECK(strlen(e) == 199 + strlen("\u2026"));
  CHECK(strcmp(e + 199, "\u2026") == 0);
  json_t *j = json_string(e);
  CHECK(j != NULL);
  json_decref(j);
  free(e);
  /* Cut exactly after the character: it is kept whole.  */
  e = utf8_excerpt(path, 221, 201);
  CHECK(strncmp(e + 199, "\xc3\xbc\u2026", 5) == 0);
  free(e);
}

static void
an_excerpt_shows_nul_and_invalid_bytes_safely(void)
{
  char *e = utf8_excerpt(S("a\0b\xff"), 100);
  CHECK(strcmp(e, "a?b" FFFD) == 0);
  free(e);
  e = utf8_excerpt(S("\xf0\x9f\x98\x80\xf0\x9f\x98\x80"), 6);
  CHECK(strcmp(e, "\xf0\x9f\x98\x80\u2026") == 0);
  free(e);
  e = utf8_excerpt(S("\xf0\x9f\x98\x80"), 2);
  CHECK(strcmp(e, "\u2026") == 0);
  free(e);
}

static const struct test_case cases[] = {
  { "valid text passes through unchanged", valid_text_passes_through_unchanged },
  { "invalid sequences become replacement characters",
    invalid_sequences_become_replacement_characters },
  { "a cut steps back to a character boundary", a_cut_steps_back_to_a_character_boundary },
  { "an excerpt is valid UTF-8, cut between characters",
    an_excerpt_is_valid_utf8_cut_between_characters },
  { "an excerpt shows NUL and invalid bytes safely",
    an_excerpt_shows_nul_and_invalid_bytes_safely },
};

int
main(void)
{
  return RUN(cases);
}
