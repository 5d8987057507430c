#define _GNU_SOURCE
/* kiln:// URIs: names leave encoded, come back decoded, and anything that
   does not decode to a clean name is refused with a reason.  */
#include "check.h"
#include "uri.h"
#include "util.h"

#include <errno.h>

static bool
encodes_to(const char *in, const char *want)
{
  char *got = uri_encode_path(in, strlen(in));
  bool ok = strcmp(got, want) == 0;
  if (!ok)
    fprintf(stderr, "  encode '%s': got '%s', want '%s'\n", in, got, want);
  free(got);
  return ok;
}

/* Decodes IN; returns whether it was accepted and whether the result is
   WANT (NULL: must be refused, with an error message containing WHY).  */
static bool
decodes_to(const char *in, const char *want, const char *why)
{
  char *out = NULL;
  size_t len = 0;
  kiln_error_t err = NULL;
  int r = uri_decode(in, strlen(in), &out, &len, &err);
  bool ok;
  if (want)
    ok = r == 0 && err == NULL && len == strlen(want) && memcmp(out, want, len) == 0
         && out[len] == '\0';
  else
    ok = r == -1 && out == NULL && err != NULL && err->status == EILSEQ
         && (why == NULL || strstr(err->msg, why) != NULL);
  if (!ok)
    fprintf(stderr, "  decode '%s': r=%d out='%s' err='%s'\n", in, r, out ? out : "(null)",
            err ? err->msg : "");
  free(out);
  kiln_error_release(&err);
  return ok;
}

static void
paths_are_percent_encoded_except_unreserved_characters_and_slashes(void)
{
  CHECK(encodes_to("out/report.txt", "out/report.txt"));
  CHECK(encodes_to("AZaz09-._~/", "AZaz09-._~/"));
  CHECK(encodes_to("a b#c%.txt", "a%20b%23c%25.txt"));
  CHECK(encodes_to("dir/\xc3\xbc.txt", "dir/%C3%BC.txt"));
  CHECK(encodes_to("q?x=1&y", "q%3Fx%3D1%26y"));
  CHECK(encodes_to("", ""));
  /* Every byte outside the unreserved set and '/' is encoded.  */
  for (int c = 1; c < 256; c++) {
    char in[2] = { (char)c, 0 };
    char *got = uri_encode_path(in, 1);
    bool kept = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                || strchr("-._~/", c);
    CHECK(kept ? strlen(got) == 1 : strlen(got) == 3 && got[0] == '%');
    free(got);
  }
}

static void
encoded_paths_decode_back_to_the_same_bytes(void)
{
  const char *names[] = { "a b#c%.txt",
                          "dir/\xc3\xbc.txt",
                          "x/y/z",
                          "~tilde",
                          "\xf0\x9f\x98\x80",
                          "100% sure?",
                          "semi;colon,comma+plus=eq&amp@at:colon!$'()*" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char *enc = uri_encode_path(names[i], strlen(names[i]));
    CHECK(decodes_to(enc, names[i], NULL));
    free(enc);
  }
}

static void
equivalent_spellings_are_accepted(void)
{
  CHECK(decodes_to("%c3%bc", "\xc3\xbc", NULL)); /* lower-case hex */
  CHECK(decodes_to("%41%7E", "A~", NULL));       /* encoded unreserved characters */
  CHECK(decodes_to(
      "a:b@c!$&'()*+,;=", "a:b@c!$&'()*+,;=", NULL)); /* sub-delims stand for themselves */
  CHECK(decodes_to("a%2Fb", "a/b", NULL));
  CHECK(decodes_to("", "", NULL));
}

static void
malformed_encodings_are_refused(void)
{
  CHECK(decodes_to("%", NULL, "percent-encoded"));
  CHECK(decodes_to("a%2", NULL, "percent-encoded"));
  CHECK(decodes_to("%zz", NULL, "percent-encoded"));
  CHECK(decodes_to("%g0", NULL, "percent-encoded"));
  CHECK(decodes_to("%%41", NULL, "percent-encoded"));
  CHECK(decodes_to("a%00b", NULL, "NUL"));
  CHECK(decodes_to("a b", NULL, "0x20"));
  CHECK(decodes_to("a#b", NULL, "fragment"));
  CHECK(decodes_to("a?b", NULL, "query"));
  CHECK(decodes_to("a\tb", NULL, "0x09"));
  CHECK(decodes_to("a\x7f", NULL, "0x7F"));
  CHECK(decodes_to("\xc3\xbc", NULL, "0xC3")); /* raw non-ASCII must be encoded */
  CHECK(decodes_to("a\"b", NULL, "percent-encoded"));
  CHECK(decodes_to("a<b>", NULL, "percent-encoded"));
  CHECK(decodes_to("a\\b", NULL, "percent-encoded"));
  CHECK(decodes_to("a{b}|^`[]", NULL, "percent-encoded"));
  /* A raw NUL inside the text (found by the fuzzer: strchr matched the
     terminator of the sub-delims).  */
  char *out = NULL;
  size_t len = 0;
  kiln_error_t err = NULL;
  CHECK(uri_decode("a\0b", 3, &out, &len, &err) == -1 && out == NULL && err != NULL
        && err->status == EILSEQ);
  kiln_error_release(&err);
}

static void
encodings_that_are_not_utf8_are_refused(void)
{
  CHECK(decodes_to("%C3", NULL, "UTF-8"));          /* truncated sequence */
  CHECK(decodes_to("%C3%28", NULL, "UTF-8"));       /* bad continuation */
  CHECK(decodes_to("%80", NULL, "UTF-8"));          /* lone continuation */
  CHECK(decodes_to("%C0%AF", NULL, "UTF-8"));       /* overlong '/' */
  CHECK(decodes_to("%E0%80%AF", NULL, "UTF-8"));    /* overlong, three bytes */
  CHECK(decodes_to("%ED%A0%80", NULL, "UTF-8"));    /* a surrogate */
  CHECK(decodes_to("%F4%90%80%80", NULL, "UTF-8")); /* past U+10FFFF */
  CHECK(decodes_to("%FF", NULL, "UTF-8"));
  CHECK(decodes_to("ok%F0%9F%98", NULL, "UTF-8")); /* cut emoji */
}

static bool
shape_error(const char *why)
{
  return why
         && (strstr(why, "not a kiln URI") || strstr(why, "no session") || strstr(why, "none of")
             || strstr(why, "no file") || strstr(why, "no artifact"));
}

/* Parses IN and checks the kind, session and name, or (SID NULL) that
   it is refused with WHY in the message.  */
static bool
parses_to(const char *in, enum uri_kind kind, const char *sid, const char *name, const char *why)
{
  struct kiln_uri u;
  kiln_error_t err = NULL;
  int r = uri_parse(in, strlen(in), &u, &err);
  bool ok;
  if (sid)
    ok = r == 0 && u.kind == kind && strcmp(u.session_id, sid) == 0 && u.name_len == strlen(name)
         && memcmp(u.name, name, u.name_len) == 0;
  else
    ok = r == -1 && u.session_id == NULL && u.name == NULL && err
         && (why == NULL || strstr(err->msg, why))
         /* A URI of the wrong shape is told apart from a bad encoding.  */
         && err->status == (shape_error(why) ? 0 : EILSEQ);
  if (!ok)
    fprintf(stderr, "  parse '%s': r=%d err='%s'\n", in, r, err ? err->msg : "");
  if (r == 0)
    uri_clear(&u);
  kiln_error_release(&err);
  return ok;
}

static void
file_and_artifact_uris_are_parsed_in_one_place(void)
{
  CHECK(parses_to("kiln://sessions/abc123/files/out/report.txt", URI_FILE, "abc123",
                  "out/report.txt", NULL));
  CHECK(parses_to("kiln://sessions/abc123/files/a%20b%23c%25.txt", URI_FILE, "abc123", "a b#c%.txt",
                  NULL));
  CHECK(parses_to("kiln://sessions/abc123/files/dir%2F%C3%BC.txt", URI_FILE, "abc123",
                  "dir/\xc3\xbc.txt", NULL));
  CHECK(parses_to("kiln://sessions/abc123/artifacts/fig-1.png", URI_ARTIFACT, "abc123", "fig-1.png",
                  NULL));
  CHECK(parses_to("kiln://sessions/abc/cells/12/stdout", URI_CELL, "abc", "12/stdout", NULL));
  /* A history: its newest page, or the page below a cursor.  */
  CHECK(parses_to("kiln://sessions/abc/history", URI_HISTORY, "abc", "", NULL));
  CHECK(parses_to("kiln://sessions/abc/history/42", URI_HISTORY, "abc", "42", NULL));
  CHECK(parses_to("kiln://sessions/abc/historyx", 0, NULL, NULL, "none of"));
  cleanup_free char *h0 = uri_history("a b", 0), *h1 = uri_history("abc", 42);
  CHECK(strcmp(h0, "kiln://sessions/a%20b/history") == 0);
  CHECK(strcmp(h1, "kiln://sessions/abc/history/42") == 0);
  struct kiln_uri u;
  uint64_t cell = 0;
  int stream = 0;
  CHECK(uri_parse("kiln://sessions/abc/cells/12/stderr", 35, &u, NULL) == 0
        && uri_cell_parts(&u, &cell, &stream) == 0 && cell == 12 && stream == 2);
  uri_clear(&u);
  static const char *const bad_cells[]
      = { "kiln://sessions/a/cells/012/stdout", "kiln://sessions/a/cells/1/stdin",
          "kiln://sessions/a/cells/x/stdout",
          "kiln://sessions/a/cells/99999999999999999999/stdout" };
  for (size_t i = 0; i < 4; i++) {
    CHECK(uri_parse(bad_cells[i], strlen(bad_cells[i]), &u, NULL) == 0);
    CHECK(uri_cell_parts(&u, &cell, &stream) < 0);
    uri_clear(&u);
  }
  cleanup_free char *built = uri_cell_output("a b", 7, 1);
  CHECK(strcmp(built, "kiln://sessions/a%20b/cells/7/stdout") == 0);
  /* RFC 3986: scheme and host are case-insensitive.  */
  CHECK(parses_to("KILN://Sessions/abc/files/x", URI_FILE, "abc", "x", NULL));
  /* '..' decodes as such: the front's path rule refuses it, not the URI.  */
  CHECK(parses_to("kiln://sessions/abc/files/%2E%2E/etc", URI_FILE, "abc", "../etc", NULL));
}

static void
malformed_uris_are_refused_with_a_reason(void)
{
  CHECK(parses_to("file:///etc/passwd", 0, NULL, NULL, "not a kiln URI"));
  CHECK(parses_to("kiln://session/abc/files/x", 0, NULL, NULL, "not a kiln URI"));
  CHECK(parses_to("kiln://sessions/", 0, NULL, NULL, "no session"));
  CHECK(parses_to("kiln://sessions/abc", 0, NULL, NULL, "none of"));
  CHECK(parses_to("kiln://sessions//files/x", 0, NULL, NULL, "no session"));
  CHECK(parses_to("kiln://sessions/abc/other/x", 0, NULL, NULL, "none of"));
  CHECK(parses_to("kiln://sessions/abc/files", 0, NULL, NULL, "none of"));
  CHECK(parses_to("kiln://sessions/abc/files/", 0, NULL, NULL, "no file"));
  CHECK(parses_to("kiln://sessions/abc/artifacts/", 0, NULL, NULL, "no artifact"));
  CHECK(parses_to("kiln://sessions/abc/files/a b", 0, NULL, NULL, "0x20"));
  CHECK(parses_to("kiln://sessions/abc/files/a#frag", 0, NULL, NULL, "fragment"));
  CHECK(parses_to("kiln://sessions/abc/files/x%00y", 0, NULL, NULL, "NUL"));
  CHECK(parses_to("kiln://sessions/a%zz/files/x", 0, NULL, NULL, "percent-encoded"));
  CHECK(parses_to("kiln://sessions/abc/artifacts/%C3", 0, NULL, NULL, "UTF-8"));
}

static void
built_uris_parse_back_to_their_parts(void)
{
  const char *paths[] = { "a b#c%.txt", "dir/\xc3\xbc.txt", "x", "deep/er/and?deeper" };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    char *uri = uri_file("0123abcd", paths[i], strlen(paths[i]));
    CHECK(strncmp(uri, "kiln://sessions/0123abcd/files/", 31) == 0);
    CHECK(strpbrk(uri + 7, " #?") == NULL);
    CHECK(parses_to(uri, URI_FILE, "0123abcd", paths[i], NULL));
    free(uri);
  }
  char *a = uri_artifact("0123abcd", "fig 2.png");
  CHECK(strcmp(a, "kiln://sessions/0123abcd/artifacts/fig%202.png") == 0);
  CHECK(parses_to(a, URI_ARTIFACT, "0123abcd", "fig 2.png", NULL));
  free(a);
}

static const struct test_case cases[] = {
  { "paths are percent-encoded except unreserved characters and slashes",
    paths_are_percent_encoded_except_unreserved_characters_and_slashes },
  { "encoded paths decode back to the same bytes", encoded_paths_decode_back_to_the_same_bytes },
  { "equivalent spellings are accepted", equivalent_spellings_are_accepted },
  { "malformed encodings are refused", malformed_encodings_are_refused },
  { "encodings that are not UTF-8 are refused", encodings_that_are_not_utf8_are_refused },
  { "file and artifact URIs are parsed in one place",
    file_and_artifact_uris_are_parsed_in_one_place },
  { "malformed URIs are refused with a reason", malformed_uris_are_refused_with_a_reason },
  { "built URIs parse back to their parts", built_uris_parse_back_to_their_parts },
};

int
main(void)
{
  return RUN(cases);
}
