#define _GNU_SOURCE
#include "output.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

void
output_init(struct output *o, size_t cap)
{
  *o = (struct output){ .half = cap / 2 ? cap / 2 : 1 };
}

void
output_free(struct output *o)
{
  free(o->head);
  free(o->ring);
  *o = (struct output){ .half = o->half };
}

void
output_add(struct output *o, const char *data, size_t n)
{
  o->total += n;
  if (o->head_len < o->half) {
    if (o->head == NULL)
      o->head = xmalloc(o->half);
    size_t k = o->half - o->head_len < n ? o->half - o->head_len : n;
    memcpy(o->head + o->head_len, data, k);
    o->head_len += k;
    data += k;
    n -= k;
  }
  if (n == 0)
    return;
  if (o->ring == NULL)
    o->ring = xmalloc(o->half);
  /* Only the last HALF bytes of this write can survive.  */
  if (n > o->half) {
    o->dropped += n - o->half;
    data += n - o->half;
    n = o->half;
  }
  /* The ring fills from 0; once full, RING_POS marks the oldest byte and
     each write overwrites from there.  */
  while (n > 0) {
    size_t at = (o->ring_pos + o->ring_len) % o->half;
    size_t k = n < o->half - at ? n : o->half - at;
    memcpy(o->ring + at, data, k);
    if (o->ring_len + k > o->half) {
      size_t over = o->ring_len + k - o->half;
      o->dropped += over;
      o->ring_pos = (o->ring_pos + over) % o->half;
      o->ring_len = o->half;
    } else
      o->ring_len += k;
    data += k;
    n -= k;
  }
}

/* The marker line for a cut that drops N bytes, in BUF.  */
static int
marker(char *buf, size_t size, uint64_t n)
{
  return snprintf(buf, size, "\n[... %llu bytes dropped ...]\n", (unsigned long long)n);
}

void
output_geometry(const struct output *o, struct output_cut *c)
{
  c->total = o->total;
  if (o->dropped == 0) {
    *c = (struct output_cut){ .head = o->head_len + o->ring_len,
                              .tail_from = o->total,
                              .total = o->total };
    return;
  }
  /* Each side is cut on a character boundary so that the marker does
     not sit in the middle of one.  */
  c->head = utf8_boundary_before(o->head ? o->head : "", o->head_len);
  size_t skip = 0;
  while (skip < o->ring_len
         && ((unsigned char)o->ring[(o->ring_pos + skip) % o->half] & 0xc0) == 0x80)
    skip++;
  c->tail_from = o->total - o->ring_len + skip;
  char m[96];
  c->marker_len
      = (size_t)marker(m, sizeof m, o->dropped + (o->head_len - c->head) + (uint64_t)skip);
}

size_t
output_map(const struct output_cut *c, uint64_t pos)
{
  if (pos > c->total)
    pos = c->total;
  if (pos <= c->head)
    return (size_t)pos;
  if (pos < c->tail_from)
    return c->head + c->marker_len;
  return c->head + c->marker_len + (size_t)(pos - c->tail_from);
}

char *
output_take(struct output *o, size_t *len, uint64_t *dropped)
{
  struct output_cut cut;
  output_geometry(o, &cut);
  size_t total = o->head_len + o->ring_len;
  char *raw = xmalloc(total + 1);
  memcpy(raw, o->head ? o->head : "", o->head_len);
  if (o->ring_len > 0 && o->ring_len < o->half)
    memcpy(raw + o->head_len, o->ring, o->ring_len);
  else if (o->ring_len > 0) {
    /* Full: the oldest byte is at RING_POS.  */
    size_t first = o->half - o->ring_pos;
    memcpy(raw + o->head_len, o->ring + o->ring_pos, first);
    memcpy(raw + o->head_len + first, o->ring, o->ring_pos);
  }
  char *out;
  size_t out_len;
  if (o->dropped == 0)
    out = utf8_sanitize(raw, total, &out_len);
  else {
    size_t h = cut.head;
    size_t t = total - (size_t)(o->total - cut.tail_from);
    char m[96];
    int mlen = marker(m, sizeof m, o->dropped + (o->head_len - h) + (t - o->head_len));
    char *joined = xmalloc(h + (size_t)mlen + (total - t));
    memcpy(joined, raw, h);
    memcpy(joined + h, m, (size_t)mlen);
    memcpy(joined + h + mlen, raw + t, total - t);
    out = utf8_sanitize(joined, h + (size_t)mlen + (total - t), &out_len);
    free(joined);
  }
  free(raw);
  *len = out_len;
  *dropped = o->dropped;
  o->head_len = o->ring_len = o->ring_pos = 0;
  o->dropped = 0;
  o->total = 0;
  return out;
}
