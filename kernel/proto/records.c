#include "records.h"
#include "frame.h"

#include <string.h>

bool
rec_path_ok(const char *path, size_t len, bool allow_root)
{
  if (len == 0)
    return allow_root;
  if (len > REC_PATH_MAX || memchr(path, '\0', len) || path[0] == '/')
    return false;
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && path[i] != '/')
      continue;
    size_t n = i - start;
    if (n == 0 || (n == 1 && path[start] == '.')
        || (n == 2 && path[start] == '.' && path[start + 1] == '.'))
      return false;
    start = i + 1;
  }
  return true;
}

static void
put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void
put32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static void
put64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t
get16(const uint8_t *p)
{
  return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t
get32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t
get64(const uint8_t *p)
{
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

int
rec_output_put(struct buf *b, const struct rec_output *o, size_t max)
{
  if (o->mime_len > UINT16_MAX || o->name_len > UINT16_MAX || o->data_len > UINT32_MAX)
    return -1;
  size_t need = REC_OUTPUT_HDR + o->mime_len + o->name_len + o->data_len;
  if (need > max || b->len > max - need)
    return -1;
  uint8_t hdr[REC_OUTPUT_HDR];
  put16(hdr, (uint16_t)o->mime_len);
  put16(hdr + 2, (uint16_t)o->name_len);
  put32(hdr + 4, (uint32_t)o->data_len);
  put32(hdr + 8, o->width);
  put32(hdr + 12, o->height);
  buf_append(b, hdr, sizeof hdr);
  buf_append(b, o->mime, o->mime_len);
  buf_append(b, o->name, o->name_len);
  buf_append(b, o->data, o->data_len);
  return 0;
}

int
rec_output_next(const uint8_t *p, size_t n, size_t *off, struct rec_output *o)
{
  if (*off == n)
    return 0;
  if (*off > n || n - *off < REC_OUTPUT_HDR)
    return -1;
  const uint8_t *h = p + *off;
  size_t ml = get16(h), nl = get16(h + 2), dl = get32(h + 4);
  if (ml + nl + dl > n - *off - REC_OUTPUT_HDR)
    return -1;
  o->mime = (const char *)h + REC_OUTPUT_HDR;
  o->mime_len = ml;
  o->name = o->mime + ml;
  o->name_len = nl;
  o->data = (const uint8_t *)o->name + nl;
  o->data_len = dl;
  o->width = get32(h + 8);
  o->height = get32(h + 12);
  *off += REC_OUTPUT_HDR + ml + nl + dl;
  return 1;
}

void
rec_entry_put(struct buf *b, const struct rec_entry *e)
{
  uint8_t hdr[REC_ENTRY_HDR];
  hdr[0] = (uint8_t)e->kind;
  put64(hdr + 1, e->size);
  put64(hdr + 9, e->mtime_ns);
  put16(hdr + 17, (uint16_t)e->path_len);
  buf_append(b, hdr, sizeof hdr);
  buf_append(b, e->path, e->path_len);
}

int
rec_entry_next(const uint8_t *p, size_t n, size_t *off, struct rec_entry *e)
{
  if (*off == n)
    return 0;
  if (*off > n || n - *off < REC_ENTRY_HDR)
    return -1;
  const uint8_t *h = p + *off;
  size_t pl = get16(h + 17);
  if (pl > n - *off - REC_ENTRY_HDR || strchr("fdlo", h[0]) == NULL || h[0] == '\0')
    return -1;
  e->kind = (char)h[0];
  e->size = get64(h + 1);
  e->mtime_ns = get64(h + 9);
  e->path = (const char *)h + REC_ENTRY_HDR;
  e->path_len = pl;
  *off += REC_ENTRY_HDR + pl;
  return 1;
}

int
rec_display_parse(const struct frame *f, struct rec_display *d, kiln_error_t *err)
{
  uint64_t kind = 0;
  *d = (struct rec_display){ 0 };
  if (frame_get_u64(f, TAG_KIND, false, &kind, err) < 0)
    return -1;
  if (kind > DISPLAY_KIND_MAX)
    return kiln_error_make(err, 0, "no such display kind: %llu", (unsigned long long)kind);
  d->kind = (enum display_kind)kind;
  const struct field *id = frame_get(f, TAG_DISPLAY_ID);
  if (id) {
    if (id->len == 0 || id->len > REC_DISPLAY_ID_MAX || memchr(id->data, '\0', id->len))
      return kiln_error_make(err, 0, "a display id of %u bytes, empty, too long or with a NUL",
                             id->len);
    d->display_id = (const char *)id->data;
    d->display_id_len = id->len;
  }
  if (d->kind == DISPLAY_UPDATE && id == NULL)
    return kiln_error_make(err, 0, "an update without a display id");
  const struct field *wait = frame_get(f, TAG_WAIT);
  if (wait && (d->kind != DISPLAY_CLEAR || wait->len != 0))
    return kiln_error_make(err, 0, "a wait on a display that is no clear");
  d->wait = wait != NULL;
  const struct field *outs = frame_get(f, TAG_OUTPUTS);
  if (outs && d->kind == DISPLAY_CLEAR)
    return kiln_error_make(err, 0, "a clear with outputs");
  if (outs) {
    size_t off = 0;
    struct rec_output o;
    int got;
    while ((got = rec_output_next(outs->data, outs->len, &off, &o)) == 1)
      ;
    if (got < 0)
      return kiln_error_make(err, 0, "a malformed output record at byte %zu", off);
    d->outputs = outs->data;
    d->outputs_len = outs->len;
  }
  return 0;
}
