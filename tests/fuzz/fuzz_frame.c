/* The frame codec on hostile bytes, as the front meets a lying worker's
   frames: the input is a header and a payload.

   Oracles, beside the sanitizers: the header decodes to what its bytes
   say; the payload is accepted exactly when a field walk written here
   accepts it; accepted fields lie within the payload, tile it and have
   distinct tags; every getter agrees with the field's bytes; and putting
   the fields back with fbuf_* rebuilds the same frame, which parses to
   the same fields.  */
#include "frame.h"
#include "fuzz.h"
#include "util.h"

#include <string.h>

static uint32_t
le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t
le16(const uint8_t *p)
{
  return (uint16_t)(p[0] | p[1] << 8);
}

static void
check_header(const uint8_t *hdr, size_t payload_len)
{
  uint32_t declared = le32(hdr);
  bool reserved_zero = hdr[6] == 0 && hdr[7] == 0;
  uint32_t maxes[] = {
    0, declared, declared ? declared - 1 : 0, (uint32_t)payload_len, FRAME_MAX_PAYLOAD, UINT32_MAX
  };
  for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++) {
    uint16_t type = 0;
    int64_t r = frame_header_decode(hdr, &type, maxes[i]);
    FUZZ_CHECK(type == le16(hdr + 4));
    if (!reserved_zero || declared > maxes[i])
      FUZZ_CHECK(r == -1);
    else
      FUZZ_CHECK(r == declared);
  }
}

/* The rule frame_parse_fields implements, walked independently.  */
static bool
payload_ok(const uint8_t *p, size_t n)
{
  uint16_t tags[FRAME_MAX_FIELDS];
  size_t count = 0;
  for (size_t off = 0; off < n;) {
    if (n - off < 6 || count == FRAME_MAX_FIELDS)
      return false;
    uint16_t tag = le16(p + off);
    uint64_t flen = le32(p + off + 2);
    if (off + 6 + flen > n)
      return false;
    for (size_t i = 0; i < count; i++)
      if (tags[i] == tag)
        return false;
    tags[count++] = tag;
    off += 6 + (size_t)flen;
  }
  return true;
}

static void
check_fields(const struct frame *f, const uint8_t *p, size_t n)
{
  FUZZ_CHECK(f->nfields <= FRAME_MAX_FIELDS);
  size_t off = 0;
  for (size_t i = 0; i < f->nfields; i++) {
    const struct field *fl = &f->fields[i];
    FUZZ_CHECK(fuzz_within(fl->data, fl->len, p, n));
    /* Each field's bytes follow its own 6-byte header, right after the
       field before.  */
    FUZZ_CHECK(fl->data == p + off + 6);
    FUZZ_CHECK(le16(p + off) == fl->tag && le32(p + off + 2) == fl->len);
    off += 6 + fl->len;
    for (size_t j = 0; j < i; j++)
      FUZZ_CHECK(f->fields[j].tag != fl->tag);
  }
  FUZZ_CHECK(off == n);
}

static void
check_getters(const struct frame *f)
{
  for (size_t i = 0; i < f->nfields; i++) {
    const struct field *fl = &f->fields[i];
    enum frame_tag tag = (enum frame_tag)fl->tag;
    FUZZ_CHECK(frame_get(f, tag) == fl);

    kiln_error_t err = NULL;
    uint64_t v = 0;
    int r = frame_get_u64(f, tag, false, &v, &err);
    if (fl->len == 8) {
      uint64_t want = (uint64_t)le32(fl->data) | (uint64_t)le32(fl->data + 4) << 32;
      FUZZ_CHECK(r == 0 && err == NULL && v == want);
    } else {
      FUZZ_CHECK(r == -1 && err != NULL && err->msg != NULL);
      kiln_error_release(&err);
    }

    char *s = NULL;
    size_t len = 0;
    r = frame_get_str(f, tag, true, &s, &len, &err);
    if (memchr(fl->data, '\0', fl->len) == NULL) {
      FUZZ_CHECK(r == 0 && s != NULL && len == fl->len && strlen(s) == len);
      FUZZ_CHECK(memcmp(s, fl->data, len) == 0);
    } else {
      FUZZ_CHECK(r == -1 && s == NULL && err != NULL);
      kiln_error_release(&err);
    }
    free(s);
  }

  /* Some tag among FRAME_MAX_FIELDS + 1 is absent.  */
  enum frame_tag absent = 0;
  while (frame_get(f, absent) != NULL)
    absent++;
  kiln_error_t err = NULL;
  uint64_t v = 42;
  FUZZ_CHECK(frame_get_u64(f, absent, true, &v, &err) == 0 && v == 42 && err == NULL);
  FUZZ_CHECK(frame_get_u64(f, absent, false, &v, &err) == -1 && err != NULL);
  kiln_error_release(&err);
  char *s = (char *)"untouched";
  FUZZ_CHECK(frame_get_str(f, absent, true, &s, NULL, &err) == 0 && s == NULL && err == NULL);
  FUZZ_CHECK(frame_get_str(f, absent, false, &s, NULL, &err) == -1 && s == NULL && err != NULL);
  kiln_error_release(&err);
}

/* Puts F's fields back with the putter each one's getter accepts.  */
static void
rebuild(const struct frame *f, struct fbuf *fb)
{
  fbuf_init(fb, (enum frame_type)f->type);
  for (size_t i = 0; i < f->nfields; i++) {
    const struct field *fl = &f->fields[i];
    enum frame_tag tag = (enum frame_tag)fl->tag;
    uint64_t v;
    char *s;
    if (frame_get_u64(f, tag, false, &v, NULL) == 0) {
      fbuf_put_u64(fb, tag, v);
    } else if (frame_get_str(f, tag, false, &s, NULL, NULL) == 0) {
      fbuf_put_str(fb, tag, s);
      free(s);
    } else {
      fbuf_put(fb, tag, fl->data, fl->len);
    }
  }
  fbuf_finish(fb);
}

static void
check_round_trip(const struct frame *f, const uint8_t *p, size_t n)
{
  struct fbuf fb;
  rebuild(f, &fb);
  FUZZ_CHECK(fb.len == FRAME_HDR_SIZE + n);
  FUZZ_CHECK(n == 0 || memcmp(fb.data + FRAME_HDR_SIZE, p, n) == 0);
  uint16_t type = 0;
  FUZZ_CHECK(frame_header_decode(fb.data, &type, FRAME_MAX_PAYLOAD) == (int64_t)n);
  FUZZ_CHECK(type == f->type);

  struct frame again = { .type = type };
  FUZZ_CHECK(frame_parse_fields(&again, fb.data + FRAME_HDR_SIZE, n, NULL) == 0);
  FUZZ_CHECK(again.nfields == f->nfields);
  for (size_t i = 0; i < f->nfields; i++) {
    const struct field *a = &f->fields[i], *b = &again.fields[i];
    FUZZ_CHECK(a->tag == b->tag && a->len == b->len);
    FUZZ_CHECK(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
  }
  fbuf_free(&fb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < FRAME_HDR_SIZE)
    return 0;
  /* The payload is the rest of the input, whatever the header declares,
     so that the field walk need not wait for the fuzzer to match the
     two.  */
  const uint8_t *payload = data + FRAME_HDR_SIZE;
  size_t n = size - FRAME_HDR_SIZE;
  check_header(data, n);

  struct frame f = { .type = le16(data + 4) };
  kiln_error_t err = NULL;
  int r = frame_parse_fields(&f, payload, n, &err);
  FUZZ_CHECK((r == 0) == payload_ok(payload, n));
  if (r < 0) {
    FUZZ_CHECK(err != NULL && err->msg != NULL);
    kiln_error_release(&err);
    return 0;
  }
  FUZZ_CHECK(err == NULL);
  check_fields(&f, payload, n);
  check_getters(&f);
  check_round_trip(&f, payload, n);
  return 0;
}
