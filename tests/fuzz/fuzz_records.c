/* The records inside a worker's frames, and the path rule, on hostile
   bytes: the same input is read as a stream of outputs, as a listing and
   as a path under /work.

   Oracles, beside the sanitizers: a decoder accepts a record exactly when
   a check written here does; every record lies within the input, right
   after the one before, and a malformed one does not move the cursor;
   putting the records back with rec_*_put rebuilds the bytes they came
   from (rec_output_put refusing one byte short of its room), which read
   again give the same records; rec_path_ok accepts exactly the paths
   the rule in records.h describes, checked here independently.  */
#include "fuzz.h"
#include "records.h"

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

static bool
same_output(const struct rec_output *a, const struct rec_output *b)
{
  return a->mime_len == b->mime_len && a->name_len == b->name_len && a->data_len == b->data_len
         && a->width == b->width && a->height == b->height
         && memcmp(a->mime, b->mime, a->mime_len) == 0 && memcmp(a->name, b->name, a->name_len) == 0
         && memcmp(a->data, b->data, a->data_len) == 0;
}

static void
check_outputs(const uint8_t *p, size_t n)
{
  struct buf again = { 0 };
  struct rec_output o;
  size_t off = 0;
  int r;
  while ((r = rec_output_next(p, n, &off, &o)) == 1) {
    /* OFF has moved past the record; where it began is recomputed from
       its lengths.  */
    size_t size = REC_OUTPUT_HDR + o.mime_len + o.name_len + o.data_len;
    FUZZ_CHECK(size <= off && off <= n);
    const uint8_t *h = p + off - size;
    FUZZ_CHECK(h == p + again.len);
    FUZZ_CHECK((const uint8_t *)o.mime == h + REC_OUTPUT_HDR);
    FUZZ_CHECK(fuzz_within(o.mime, o.mime_len, p, n));
    FUZZ_CHECK(o.name == o.mime + o.mime_len && fuzz_within(o.name, o.name_len, p, n));
    FUZZ_CHECK(o.data == (const uint8_t *)o.name + o.name_len);
    FUZZ_CHECK(fuzz_within(o.data, o.data_len, p, n));
    FUZZ_CHECK(le16(h) == o.mime_len && le16(h + 2) == o.name_len && le32(h + 4) == o.data_len);
    FUZZ_CHECK(le32(h + 8) == o.width && le32(h + 12) == o.height);

    size_t before = again.len;
    FUZZ_CHECK(rec_output_put(&again, &o, before + size - 1) == -1 && again.len == before);
    FUZZ_CHECK(rec_output_put(&again, &o, before + size) == 0 && again.len == before + size);
  }
  FUZZ_CHECK(off == again.len);
  /* The stream ends cleanly, or at a record that does not fit.  */
  bool fits = n - off >= REC_OUTPUT_HDR
              && (uint64_t)le16(p + off) + le16(p + off + 2) + le32(p + off + 4)
                     <= n - off - REC_OUTPUT_HDR;
  FUZZ_CHECK(r == (off == n ? 0 : -1) && (off == n || !fits));
  FUZZ_CHECK(again.len == 0 || memcmp(again.data, p, again.len) == 0);

  /* Read both streams side by side.  */
  size_t a = 0, b = 0;
  struct rec_output ob;
  while ((r = rec_output_next(p, off, &a, &o)) == 1) {
    FUZZ_CHECK(rec_output_next(again.data, again.len, &b, &ob) == 1);
    FUZZ_CHECK(same_output(&o, &ob) && a == b);
  }
  FUZZ_CHECK(r == 0 && rec_output_next(again.data, again.len, &b, &ob) == 0);
  buf_free(&again);
}

static bool
same_entry(const struct rec_entry *a, const struct rec_entry *b)
{
  return a->kind == b->kind && a->size == b->size && a->mtime_ns == b->mtime_ns
         && a->path_len == b->path_len && memcmp(a->path, b->path, a->path_len) == 0;
}

static void
check_entries(const uint8_t *p, size_t n)
{
  struct buf again = { 0 };
  struct rec_entry e;
  size_t off = 0;
  int r;
  while ((r = rec_entry_next(p, n, &off, &e)) == 1) {
    size_t size = REC_ENTRY_HDR + e.path_len;
    FUZZ_CHECK(size <= off && off <= n);
    const uint8_t *h = p + off - size;
    FUZZ_CHECK(h == p + again.len);
    FUZZ_CHECK(e.kind == 'f' || e.kind == 'd' || e.kind == 'l' || e.kind == 'o');
    FUZZ_CHECK((const uint8_t *)e.path == h + REC_ENTRY_HDR);
    FUZZ_CHECK(fuzz_within(e.path, e.path_len, p, n));
    FUZZ_CHECK(le16(h + 17) == e.path_len && (uint8_t)e.kind == h[0]);
    rec_entry_put(&again, &e);
    FUZZ_CHECK(again.len == off);
  }
  FUZZ_CHECK(off == again.len);
  bool fits = n - off >= REC_ENTRY_HDR && memchr("fdlo", p[off], 4) != NULL
              && le16(p + off + 17) <= n - off - REC_ENTRY_HDR;
  FUZZ_CHECK(r == (off == n ? 0 : -1) && (off == n || !fits));
  FUZZ_CHECK(again.len == 0 || memcmp(again.data, p, again.len) == 0);

  size_t a = 0, b = 0;
  struct rec_entry eb;
  while ((r = rec_entry_next(p, off, &a, &e)) == 1) {
    FUZZ_CHECK(rec_entry_next(again.data, again.len, &b, &eb) == 1);
    FUZZ_CHECK(same_entry(&e, &eb) && a == b);
  }
  FUZZ_CHECK(r == 0 && rec_entry_next(again.data, again.len, &b, &eb) == 0);
  buf_free(&again);
}

/* The rule for a path under /work, as records.h states it.  */
static bool
path_rule(const char *s, size_t n, bool allow_root)
{
  if (n == 0)
    return allow_root;
  if (n > REC_PATH_MAX || s[0] == '/')
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\0')
      return false;
  /* Every component between slashes: not empty (so no trailing or
     doubled slash), not "." and not "..".  */
  size_t start = 0;
  for (;;) {
    const char *slash = memchr(s + start, '/', n - start);
    size_t stop = slash ? (size_t)(slash - s) : n;
    const char *c = s + start;
    size_t len = stop - start;
    if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
      return false;
    if (slash == NULL)
      break;
    start = stop + 1;
  }
  return true;
}

static void
check_path(const char *s, size_t n)
{
  for (int root = 0; root < 2; root++) {
    bool ok = rec_path_ok(s, n, root);
    FUZZ_CHECK(ok == path_rule(s, n, root));
    if (ok && n > 0) {
      FUZZ_CHECK(memchr(s, '\0', n) == NULL && s[0] != '/' && n <= REC_PATH_MAX);
      FUZZ_CHECK(s[n - 1] != '/');
    }
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  check_outputs(data, size);
  check_entries(data, size);
  check_path((const char *)data, size);
  return 0;
}
