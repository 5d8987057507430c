/* Every size limit between the front and its workers, derived from the
   configuration in one place: the worker caps what it sends with these,
   and the front refuses anything past them, so a worker that obeys its
   configuration is never taken for a liar, and one that lies is cut off
   at a bound the operator chose.  */
#ifndef KILN_LIMITS_H
#define KILN_LIMITS_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

struct kiln_limits {
  /* Characters of a result's repr, of an error's message and traceback,
     and of each text form a cell displays (--max-result); the worker
     sends each at most TEXT_BYTES bytes of UTF-8.  */
  size_t max_result;
  size_t text_bytes;
  /* Images and rich outputs of one cell: how many, and their bytes in
     all; past either, the rest are dropped and counted.  */
  size_t outputs_count;
  size_t outputs_bytes;
  /* A file read or written through the file tools.  */
  size_t file_bytes;
  /* A listing of /work: entries and bytes; past either it is cut short
     and says so.  */
  size_t listing_entries;
  size_t listing_bytes;
  /* Bytes of partial frames the front holds for all workers together.  */
  size_t held_max;
  /* The largest frame a worker may send and may be sent.  */
  uint32_t worker_frame;
  uint32_t front_frame;
};

void limits_derive(const struct kiln_config *cfg, struct kiln_limits *l);

#endif
