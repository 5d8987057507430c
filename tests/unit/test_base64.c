#define _GNU_SOURCE
/* Base64 for binary data in JSON: RFC 4648's vectors, round trips of
   every length, and the text that is not base64.  */
#include "check.h"
#include "base64.h"
#include "util.h"

static bool
encodes_to(const char *in, const char *want)
{
  char *got = base64_encode((const uint8_t *)in, strlen(in));
  bool ok = strcmp(got, want) == 0;
  if (!ok)
    fprintf(stderr, "  encode '%s': got '%s', want '%s'\n", in, got, want);
  free(got);
  return ok;
}

static bool
decodes_to(const char *in, const char *want)
{
  size_t len = 12345;
  uint8_t *got = base64_decode(in, strlen(in), &len);
  bool ok = want ? got && len == strlen(want) && memcmp(got, want, len) == 0 : got == NULL;
  if (!ok)
    fprintf(stderr, "  decode '%s': got %s (%zu bytes)\n", in, got ? "bytes" : "NULL", len);
  free(got);
  return ok;
}

static void
rfc_4648_test_vectors_encode_and_decode(void)
{
  const char *v[][2] = { { "", "" },
                         { "f", "Zg==" },
                         { "fo", "Zm8=" },
                         { "foo", "Zm9v" },
                         { "foob", "Zm9vYg==" },
                         { "fooba", "Zm9vYmE=" },
                         { "foobar", "Zm9vYmFy" } };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    CHECK(encodes_to(v[i][0], v[i][1]));
    CHECK(decodes_to(v[i][1], v[i][0]));
  }
}

static void
every_length_and_byte_round_trips(void)
{
  uint8_t data[300];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 151 + 7);
  for (size_t n = 0; n <= sizeof data; n++) {
    char *text = base64_encode(data, n);
    CHECK(strlen(text) == (n + 2) / 3 * 4);
    size_t len = 0;
    uint8_t *back = base64_decode(text, strlen(text), &len);
    CHECK(back && len == n && memcmp(back, data, n) == 0);
    free(back);
    free(text);
  }
}

static void
unpadded_url_safe_and_wrapped_text_decodes(void)
{
  CHECK(decodes_to("Zm9vYg", "foob"));
  CHECK(decodes_to("Zm9vYmE", "fooba"));
  CHECK(decodes_to("Zm9v\r\nYmFy\n", "foobar"));
  CHECK(decodes_to(" Zm 9v\t", "foo"));
  CHECK(decodes_to("-_-_", "\xfb\xff\xbf"));
  CHECK(decodes_to("+/+/", "\xfb\xff\xbf"));
}

static void
text_that_is_not_base64_is_refused(void)
{
  CHECK(decodes_to("Zm9v!", NULL));    /* not in the alphabet */
  CHECK(decodes_to("Zm9v\x80", NULL)); /* a byte past ASCII */
  CHECK(decodes_to("Zg==Zg==", NULL)); /* data after padding */
  CHECK(decodes_to("Zg=a", NULL));
  CHECK(decodes_to("Z", NULL)); /* six bits are not a byte */
  CHECK(decodes_to("Zm9vY", NULL));
  CHECK(decodes_to("Zg===", NULL)); /* too much padding */
  /* A NUL inside the text is not whitespace.  */
  size_t len;
  CHECK(base64_decode("Zm\0v", 4, &len) == NULL);
}

static const struct test_case cases[] = {
  { "RFC 4648 test vectors encode and decode", rfc_4648_test_vectors_encode_and_decode },
  { "every length and byte round-trips", every_length_and_byte_round_trips },
  { "unpadded, URL-safe and wrapped text decodes", unpadded_url_safe_and_wrapped_text_decodes },
  { "text that is not base64 is refused", text_that_is_not_base64_is_refused },
};

int
main(void)
{
  return RUN(cases);
}
