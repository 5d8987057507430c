/* A cell's output stream as the front keeps it: the first half of the cap
   and the last half, with a count of what was dropped in between, so that
   a cell printing gigabytes costs the front a fixed amount of memory.  */
#ifndef KILN_OUTPUT_H
#define KILN_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

struct output {
  size_t half; /* bytes kept at each end */
  char *head;  /* the first HALF bytes */
  size_t head_len;
  char *ring; /* the last HALF bytes, circular */
  size_t ring_len, ring_pos;
  uint64_t dropped; /* bytes that fell out of the ring */
  uint64_t total;   /* bytes added since the last take */
};

/* How output_take will cut what O holds: the kept head's length, where
   the kept tail begins in the stream as written, and the length of the
   line that stands for the middle.  */
struct output_cut {
  size_t head;
  uint64_t tail_from;
  size_t marker_len;
  uint64_t total;
};
void output_geometry(const struct output *o, struct output_cut *c);

/* Where byte POS of the stream as written lands in what output_take
   returns (the marker line's end for a byte that was dropped).  */
size_t output_map(const struct output_cut *c, uint64_t pos);

/* Keeps at most CAP bytes (CAP / 2 at each end).  */
void output_init(struct output *o, size_t cap);
void output_free(struct output *o);
void output_add(struct output *o, const char *data, size_t n);

/* Returns what was kept as one valid UTF-8 string (allocated, the caller
   frees it), with a "[... N bytes dropped ...]" line where the middle
   was, and its length in *LEN and the dropped count in *DROPPED; then
   empties O for the next cell.  */
char *output_take(struct output *o, size_t *len, uint64_t *dropped);

#endif
