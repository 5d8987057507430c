/* What fuzz-seeds's files share (fuzz_seeds.c).  */
#ifndef KILN_FUZZ_SEEDS_H
#define KILN_FUZZ_SEEDS_H

#include "frame.h"

/* Writes FB's frame, finished, as the seed NAME of HARNESS and releases
   it.  */
void write_frame(const char *harness, const char *name, struct fbuf *fb);

/* The store harness's seeds (seeds_store.c).  */
void seeds_store(void);

#endif
