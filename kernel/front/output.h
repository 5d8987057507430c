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
};

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
