#define _GNU_SOURCE
/* The per-cell output cap: head and tail kept, the middle counted.  */
#include "check.h"
#include "output.h"
#include "util.h"

static void
output_under_the_cap_is_kept_whole(void)
{
  struct output o;
  output_init(&o, 100);
  output_add(&o, "hello ", 6);
  output_add(&o, "world\n", 6);
  size_t len;
  uint64_t dropped;
  char *s = output_take(&o, &len, &dropped);
  CHECK(len == 12 && strcmp(s, "hello world\n") == 0 && dropped == 0);
  free(s);
  /* Taking empties it for the next cell.  */
  s = output_take(&o, &len, &dropped);
  CHECK(len == 0 && dropped == 0);
  free(s);
  output_free(&o);
}

static void
output_over_the_cap_keeps_head_and_tail(void)
{
  struct output o;
  output_init(&o, 20);
  char big[1000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + i % 26);
  /* In small and large pieces alike.  */
  for (size_t i = 0; i < 500; i += 7)
    output_add(&o, big + i, i + 7 <= 500 ? 7 : 500 - i);
  output_add(&o, big + 500, 500);
  size_t len;
  uint64_t dropped;
  char *s = output_take(&o, &len, &dropped);
  CHECK(dropped == 980);
  CHECK(strncmp(s, big, 10) == 0);
  CHECK(len >= 10 && memcmp(s + len - 10, big + 990, 10) == 0);
  CHECK(strstr(s, "[... 980 bytes dropped ...]") != NULL);
  free(s);
  output_free(&o);
}

static void
ring_wraps_correctly_across_many_small_writes(void)
{
  struct output o;
  output_init(&o, 8); /* 4 head, 4 tail */
  const char *text = "0123456789abcdefghij";
  for (const char *p = text; *p; p++)
    output_add(&o, p, 1);
  size_t len;
  uint64_t dropped;
  char *s = output_take(&o, &len, &dropped);
  CHECK(dropped == 12);
  CHECK(strncmp(s, "0123", 4) == 0);
  CHECK(len >= 4 && memcmp(s + len - 4, "ghij", 4) == 0);
  free(s);
  output_free(&o);
}

static void
invalid_utf8_is_replaced_not_lost(void)
{
  struct output o;
  output_init(&o, 100);
  output_add(&o,
             "a\xff"
             "b\xc3\xa9",
             5);
  size_t len;
  uint64_t dropped;
  char *s = output_take(&o, &len, &dropped);
  CHECK(strcmp(s, "a\xef\xbf\xbd"
                  "b\xc3\xa9")
        == 0);
  free(s);
  output_free(&o);
}

static void
a_cut_never_splits_a_character(void)
{
  struct output o;
  output_init(&o, 6); /* 3 + 3 */
  /* "é" is two bytes; the head boundary falls inside the second one.  */
  output_add(&o, "a\xc3\xa9\xc3\xa9xxxxxxxx\xc3\xa9", 16);
  size_t len;
  uint64_t dropped;
  char *s = output_take(&o, &len, &dropped);
  CHECK(strncmp(s, "a\xc3\xa9\n[...", 7) == 0);
  CHECK(strstr(s, "\xef\xbf\xbd") == NULL);
  free(s);
  output_free(&o);
}

static void
places_in_the_stream_map_to_places_in_what_is_kept(void)
{
  struct output o;
  output_init(&o, 20);
  /* Whole: a place is where it was.  */
  output_add(&o, "0123456789", 10);
  struct output_cut cut;
  output_geometry(&o, &cut);
  CHECK(output_map(&cut, 0) == 0 && output_map(&cut, 4) == 4 && output_map(&cut, 10) == 10);
  CHECK(output_map(&cut, 99) == 10);
  /* Cut: the head keeps 10, the ring the last 10 of 100.  */
  for (int i = 1; i < 10; i++)
    output_add(&o, "abcdefghij", 10);
  output_geometry(&o, &cut);
  size_t len;
  uint64_t dropped;
  char *s = output_take(&o, &len, &dropped);
  CHECK(dropped == 80 && cut.head == 10 && cut.tail_from == 90);
  /* Before the cut, at the marker's end, and in the tail.  */
  CHECK(output_map(&cut, 5) == 5);
  size_t after_marker = output_map(&cut, 50);
  CHECK(after_marker == 10 + cut.marker_len);
  CHECK(strncmp(s + 10, "\n[... 80 bytes dropped ...]\n", cut.marker_len) == 0);
  CHECK(output_map(&cut, 93) == after_marker + 3 && s[output_map(&cut, 93)] == 'd');
  CHECK(output_map(&cut, 100) == len);
  free(s);
  output_free(&o);
}

static const struct test_case cases[] = {
  { "places in the stream map to places in what is kept",
    places_in_the_stream_map_to_places_in_what_is_kept },
  { "output under the cap is kept whole", output_under_the_cap_is_kept_whole },
  { "output over the cap keeps head and tail", output_over_the_cap_keeps_head_and_tail },
  { "the ring wraps correctly across many small writes",
    ring_wraps_correctly_across_many_small_writes },
  { "invalid UTF-8 is replaced, not lost", invalid_utf8_is_replaced_not_lost },
  { "a cut never splits a character", a_cut_never_splits_a_character },
};

int
main(void)
{
  return RUN(cases);
}
