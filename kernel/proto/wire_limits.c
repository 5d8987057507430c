#include "wire_limits.h"
#include "frame.h"

/* Room for a reply's small fields (status, error type, counters, tags). */
#define FRAME_SLACK (64u << 10)

static uint32_t
clamp_frame(size_t n)
{
  return n > FRAME_MAX_PAYLOAD ? FRAME_MAX_PAYLOAD : (uint32_t)n;
}

void
limits_derive(const struct kiln_config *cfg, struct kiln_limits *l)
{
  l->max_result = cfg->max_result;
  /* Four bytes per character at most in UTF-8.  */
  l->text_bytes = cfg->max_result > SIZE_MAX / 4 ? SIZE_MAX : cfg->max_result * 4;
  l->outputs_count = 256;
  l->outputs_bytes = 24u << 20;
  l->file_bytes = 8u << 20;
  l->listing_entries = 10000;
  l->listing_bytes = 4u << 20;
  /* A cell's reply carries three texts (result, error message,
     traceback) and its outputs; a file result carries a file or a
     listing.  */
  size_t cell = 3 * l->text_bytes + l->outputs_bytes;
  size_t file = l->file_bytes > l->listing_bytes ? l->file_bytes : l->listing_bytes;
  l->worker_frame = clamp_frame((cell > file ? cell : file) + FRAME_SLACK);
  /* Four sessions sending their largest replies at once, and never less
     than 256 MiB, so that ordinary traffic never meets it.  */
  l->held_max = 4 * (size_t)l->worker_frame;
  if (l->held_max < (256u << 20))
    l->held_max = 256u << 20;
  size_t in = cfg->max_code > l->file_bytes ? cfg->max_code : l->file_bytes;
  l->front_frame = clamp_frame(in + FRAME_SLACK);
}
