/* What the libFuzzer harnesses share.  A harness feeds hostile bytes to
   one decoder and checks an oracle beside the sanitizers; a failed oracle
   aborts, so libFuzzer keeps the input as a crash artifact.  */
#ifndef KILN_FUZZ_H
#define KILN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: %s: oracle failed: %s\n", __FILE__, __LINE__, __func__, #cond);      \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* Whether [P, P+PN) lies within [BASE, BASE+N).  */
static inline int
fuzz_within(const void *p, size_t pn, const void *base, size_t n)
{
  const uint8_t *a = p, *b = base;
  return a >= b && a <= b + n && pn <= (size_t)(b + n - a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The KILN_HOME of the store harness and of its seeds: the paths a
   seed's writes name are under it.  */
#define FUZZ_STORE_HOME "/tmp/kiln-fuzz-store"

#endif
