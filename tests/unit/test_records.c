#define _GNU_SOURCE
/* The records inside frame fields (cell outputs, listing entries), the
   display frame, and the path rule under /work: what a worker may send, and what the front
   refuses when a worker lies.  */
#include "check.h"
#include "frame.h"
#include "records.h"
#include "util.h"

static bool
path_ok(const char *p, bool root)
{
  return rec_path_ok(p, strlen(p), root);
}

static void
the_path_rule_allows_relative_paths_without_dot_components(void)
{
  CHECK(path_ok("a", false));
  CHECK(path_ok("out/report.txt", false));
  CHECK(path_ok("a b#c%.txt", false));
  CHECK(path_ok("dir/\xc3\xbc.txt", false));
  CHECK(path_ok(".hidden", false));
  CHECK(path_ok("..more", false));
  CHECK(path_ok("a/...", false));
  CHECK(path_ok("", true)); /* /work itself, where allowed */
}

static void
the_path_rule_refuses_escapes_and_odd_spellings(void)
{
  CHECK(!path_ok("", false));
  CHECK(!path_ok("/etc/passwd", false));
  CHECK(!path_ok("/", true));
  CHECK(!path_ok("..", false));
  CHECK(!path_ok("../etc/passwd", false));
  CHECK(!path_ok("a/../../b", false));
  CHECK(!path_ok("a/..", false));
  CHECK(!path_ok(".", false));
  CHECK(!path_ok("./a", false));
  CHECK(!path_ok("a/./b", false));
  CHECK(!path_ok("a//b", false));
  CHECK(!path_ok("a/", false));
  CHECK(!rec_path_ok("a\0b", 3, false));
  CHECK(!rec_path_ok("\0", 1, true));
  char *long_path = xmalloc(REC_PATH_MAX + 2);
  memset(long_path, 'x', REC_PATH_MAX + 1);
  CHECK(rec_path_ok(long_path, REC_PATH_MAX, false));
  CHECK(!rec_path_ok(long_path, REC_PATH_MAX + 1, false));
  free(long_path);
}

static void
outputs_round_trip(void)
{
  struct buf b = { 0 };
  struct rec_output in[] = {
    { "image/png", 9, "fig-1.png", 9, (const uint8_t *)"\x89PNG", 4, 640, 480 },
    { REC_FILE_MIME, strlen(REC_FILE_MIME), "a b/\xc3\xbc.txt", 10, (const uint8_t *)"", 0, 12, 0 },
    { "text/plain", 10, "", 0, (const uint8_t *)"a\0b", 3, 0, 0 },
  };
  for (size_t i = 0; i < 3; i++)
    CHECK(rec_output_put(&b, &in[i], 1 << 20) == 0);
  size_t off = 0;
  struct rec_output o;
  for (size_t i = 0; i < 3; i++) {
    CHECK(rec_output_next(b.data, b.len, &off, &o) == 1);
    CHECK(o.mime_len == in[i].mime_len && memcmp(o.mime, in[i].mime, o.mime_len) == 0);
    CHECK(o.name_len == in[i].name_len && memcmp(o.name, in[i].name, o.name_len) == 0);
    CHECK(o.data_len == in[i].data_len
          && (o.data_len == 0 || memcmp(o.data, in[i].data, o.data_len) == 0));
    CHECK(o.width == in[i].width && o.height == in[i].height);
  }
  CHECK(rec_output_next(b.data, b.len, &off, &o) == 0);
  CHECK(off == b.len);
  buf_free(&b);
}

static void
an_output_that_does_not_fit_is_not_written(void)
{
  struct buf b = { 0 };
  struct rec_output o = { "text/plain", 10, "n", 1, (const uint8_t *)"0123456789", 10, 0, 0 };
  size_t one = REC_OUTPUT_HDR + 10 + 1 + 10;
  CHECK(rec_output_put(&b, &o, one) == 0);
  CHECK(b.len == one);
  CHECK(rec_output_put(&b, &o, 2 * one - 1) == -1);
  CHECK(b.len == one);
  struct rec_output big = { "text/plain", 70000, "n", 1, (const uint8_t *)"", 0, 0, 0 };
  CHECK(rec_output_put(&b, &big, SIZE_MAX) == -1); /* the mime length is 16 bits */
  CHECK(b.len == one);
  buf_free(&b);
}

/* One output record with the given lengths in its header, followed by
   AVAIL bytes of body.  */
static size_t
forged_output(uint8_t *p, uint16_t ml, uint16_t nl, uint32_t dl, size_t avail)
{
  memset(p, 'x', REC_OUTPUT_HDR + avail);
  p[0] = (uint8_t)ml, p[1] = (uint8_t)(ml >> 8);
  p[2] = (uint8_t)nl, p[3] = (uint8_t)(nl >> 8);
  for (int i = 0; i < 4; i++)
    p[4 + i] = (uint8_t)(dl >> (8 * i));
  return REC_OUTPUT_HDR + avail;
}

static void
malformed_outputs_are_refused(void)
{
  uint8_t p[256];
  size_t off = 0;
  struct rec_output o;
  /* A truncated header.  */
  size_t n = forged_output(p, 1, 1, 1, 3);
  for (size_t cut = 1; cut < REC_OUTPUT_HDR; cut++) {
    off = 0;
    CHECK(rec_output_next(p, cut, &off, &o) == -1);
  }
  off = 0;
  CHECK(rec_output_next(p, n, &off, &o) == 1 && off == n);
  /* Each length running past the end.  */
  n = forged_output(p, 4, 0, 0, 3);
  off = 0;
  CHECK(rec_output_next(p, n, &off, &o) == -1);
  n = forged_output(p, 1, 3, 0, 3);
  off = 0;
  CHECK(rec_output_next(p, n, &off, &o) == -1);
  n = forged_output(p, 1, 1, 2, 3);
  off = 0;
  CHECK(rec_output_next(p, n, &off, &o) == -1);
  /* Lengths whose sum wraps are still past the end.  */
  n = forged_output(p, 0xffff, 0xffff, 0xffffffff, 3);
  off = 0;
  CHECK(rec_output_next(p, n, &off, &o) == -1);
  /* An offset past the end, even where a valid record lies in memory
     beyond it.  */
  n = forged_output(p, 1, 1, 1, 3);
  p[n] = '-';
  forged_output(p + n + 1, 1, 1, 1, 3);
  off = n + 1;
  CHECK(rec_output_next(p, n, &off, &o) == -1);
}

static void
listing_entries_round_trip(void)
{
  struct buf b = { 0 };
  struct rec_entry in[] = {
    { 'f', 12, 1700000000123456789ull, "a b.txt", 7 },
    { 'd', 0, 0, "dir", 3 },
    { 'l', UINT64_MAX, UINT64_MAX, "dir/\xc3\xbc", 6 },
    { 'o', 1, 2, "fifo", 4 },
  };
  for (size_t i = 0; i < 4; i++)
    rec_entry_put(&b, &in[i]);
  size_t off = 0;
  struct rec_entry e;
  for (size_t i = 0; i < 4; i++) {
    CHECK(rec_entry_next(b.data, b.len, &off, &e) == 1);
    CHECK(e.kind == in[i].kind && e.size == in[i].size && e.mtime_ns == in[i].mtime_ns);
    CHECK(e.path_len == in[i].path_len && memcmp(e.path, in[i].path, e.path_len) == 0);
  }
  CHECK(rec_entry_next(b.data, b.len, &off, &e) == 0);
  buf_free(&b);
}

static void
malformed_listing_entries_are_refused(void)
{
  struct buf b = { 0 };
  struct rec_entry in = { 'f', 1, 2, "name", 4 };
  rec_entry_put(&b, &in);
  struct rec_entry e;
  size_t off;
  /* Truncated: in the header, and in the path.  */
  for (size_t cut = 1; cut < b.len; cut++) {
    off = 0;
    CHECK(rec_entry_next(b.data, cut, &off, &e) == -1);
  }
  /* A path length past the end.  */
  b.data[REC_ENTRY_HDR - 2] = 5;
  off = 0;
  CHECK(rec_entry_next(b.data, b.len, &off, &e) == -1);
  b.data[REC_ENTRY_HDR - 2] = 4;
  /* Kinds other than f, d, l, o.  */
  const char bad[] = { 'x', 'F', '\0', '/', (char)0xff };
  for (size_t i = 0; i < sizeof bad; i++) {
    b.data[0] = (uint8_t)bad[i];
    off = 0;
    CHECK(rec_entry_next(b.data, b.len, &off, &e) == -1);
  }
  b.data[0] = 'd';
  off = 0;
  CHECK(rec_entry_next(b.data, b.len, &off, &e) == 1 && e.kind == 'd');
  /* An offset past the end, even where a valid entry lies in memory
     beyond it.  */
  size_t n = b.len;
  buf_append(&b, "-", 1);
  rec_entry_put(&b, &in);
  off = n + 1;
  CHECK(rec_entry_next(b.data, n, &off, &e) == -1);
  buf_free(&b);
}

/* Parses the payload of FB (a finished FRAME_DISPLAY) into D; the frame's
   fields point into FB, which must outlive D.  */
static int
parse_display(struct fbuf *fb, struct rec_display *d)
{
  fbuf_finish(fb);
  struct frame f = { .type = FRAME_DISPLAY };
  CHECK(frame_parse_fields(&f, fb->data + FRAME_HDR_SIZE, fb->len - FRAME_HDR_SIZE, NULL) == 0);
  kiln_error_t err = NULL;
  int r = rec_display_parse(&f, d, &err);
  CHECK((r < 0) == (err != NULL));
  kiln_error_release(&err);
  return r;
}

static void
a_display_frame_gives_its_kind_id_and_outputs(void)
{
  struct buf b = { 0 };
  struct rec_output o = {
    .mime = "text/html", .mime_len = 9, .name = "", .data = (const uint8_t *)"<b>", .data_len = 3
  };
  CHECK(rec_output_put(&b, &o, 1024) == 0);
  struct fbuf fb;
  struct rec_display d;
  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, DISPLAY_UPDATE);
  fbuf_put_str(&fb, TAG_DISPLAY_ID, "progress");
  fbuf_put(&fb, TAG_OUTPUTS, b.data, b.len);
  CHECK(parse_display(&fb, &d) == 0);
  CHECK(d.kind == DISPLAY_UPDATE && !d.wait);
  CHECK(d.display_id_len == 8 && memcmp(d.display_id, "progress", 8) == 0);
  CHECK(d.outputs_len == b.len);
  fbuf_free(&fb);

  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, DISPLAY_CLEAR);
  fbuf_put(&fb, TAG_WAIT, "", 0);
  CHECK(parse_display(&fb, &d) == 0);
  CHECK(d.kind == DISPLAY_CLEAR && d.wait && d.display_id == NULL && d.outputs == NULL);
  fbuf_free(&fb);

  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, DISPLAY_SHOW);
  fbuf_put(&fb, TAG_OUTPUTS, b.data, b.len);
  CHECK(parse_display(&fb, &d) == 0);
  CHECK(d.kind == DISPLAY_SHOW && d.display_id == NULL && d.outputs != NULL);
  fbuf_free(&fb);
  buf_free(&b);
}

static void
malformed_display_frames_are_refused(void)
{
  struct buf b = { 0 };
  struct rec_output o = {
    .mime = "text/plain", .mime_len = 10, .name = "", .data = (const uint8_t *)"x", .data_len = 1
  };
  CHECK(rec_output_put(&b, &o, 1024) == 0);
  char long_id[REC_DISPLAY_ID_MAX + 1];
  memset(long_id, 'i', sizeof long_id);
  struct fbuf fb;
  struct rec_display d;

  /* No kind, and a kind past the last.  */
  fbuf_init(&fb, FRAME_DISPLAY);
  CHECK(parse_display(&fb, &d) == -1);
  fbuf_free(&fb);
  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, DISPLAY_KIND_MAX + 1);
  CHECK(parse_display(&fb, &d) == -1);
  fbuf_free(&fb);
  /* An update of no display.  */
  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, DISPLAY_UPDATE);
  fbuf_put(&fb, TAG_OUTPUTS, b.data, b.len);
  CHECK(parse_display(&fb, &d) == -1);
  fbuf_free(&fb);
  /* Ids empty, too long, or with a NUL.  */
  const struct {
    const char *id;
    size_t len;
  } ids[] = { { "", 0 }, { long_id, sizeof long_id }, { "a\0b", 3 } };
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    fbuf_init(&fb, FRAME_DISPLAY);
    fbuf_put_u64(&fb, TAG_KIND, DISPLAY_SHOW);
    fbuf_put(&fb, TAG_DISPLAY_ID, ids[i].id, ids[i].len);
    CHECK(parse_display(&fb, &d) == -1);
    fbuf_free(&fb);
  }
  /* The longest id is fine.  */
  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, DISPLAY_SHOW);
  fbuf_put(&fb, TAG_DISPLAY_ID, long_id, REC_DISPLAY_ID_MAX);
  CHECK(parse_display(&fb, &d) == 0);
  fbuf_free(&fb);
  /* A clear with outputs; a wait on a show, or one carrying bytes.  */
  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, DISPLAY_CLEAR);
  fbuf_put(&fb, TAG_OUTPUTS, b.data, b.len);
  CHECK(parse_display(&fb, &d) == -1);
  fbuf_free(&fb);
  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, DISPLAY_SHOW);
  fbuf_put(&fb, TAG_WAIT, "", 0);
  CHECK(parse_display(&fb, &d) == -1);
  fbuf_free(&fb);
  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, DISPLAY_CLEAR);
  fbuf_put(&fb, TAG_WAIT, "y", 1);
  CHECK(parse_display(&fb, &d) == -1);
  fbuf_free(&fb);
  /* An output record cut short.  */
  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, DISPLAY_SHOW);
  fbuf_put(&fb, TAG_OUTPUTS, b.data, b.len - 1);
  CHECK(parse_display(&fb, &d) == -1);
  fbuf_free(&fb);
  buf_free(&b);
}

static const struct test_case cases[] = {
  { "the path rule allows relative paths without dot components",
    the_path_rule_allows_relative_paths_without_dot_components },
  { "the path rule refuses escapes and odd spellings",
    the_path_rule_refuses_escapes_and_odd_spellings },
  { "outputs round-trip", outputs_round_trip },
  { "an output that does not fit is not written", an_output_that_does_not_fit_is_not_written },
  { "malformed outputs are refused", malformed_outputs_are_refused },
  { "listing entries round-trip", listing_entries_round_trip },
  { "malformed listing entries are refused", malformed_listing_entries_are_refused },
  { "a display frame gives its kind, id and outputs",
    a_display_frame_gives_its_kind_id_and_outputs },
  { "malformed display frames are refused", malformed_display_frames_are_refused },
};

int
main(void)
{
  return RUN(cases);
}
