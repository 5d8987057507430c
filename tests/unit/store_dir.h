/* A directory of its own for each store test, under $TMPDIR.  */
#ifndef KILN_TEST_STORE_DIR_H
#define KILN_TEST_STORE_DIR_H

#include "store.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A new empty directory, by its real path (allocated; the caller frees
   it, after remove_dir).  */
static inline char *
make_dir(void)
{
  const char *tmp = getenv("TMPDIR");
  char *dir = xasprintf("%s/kiln-test-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    exit(2);
  }
  /* Its real path: the daemon's side of a store compares paths so.  */
  char *real = realpath(dir, NULL);
  if (real == NULL) {
    perror("realpath");
    exit(2);
  }
  free(dir);
  return real;
}

static inline void
remove_dir(char *dir)
{
  static const char *const files[]
      = { STORE_FILE, STORE_FILE "-wal", STORE_FILE "-shm", STORE_FILE "-journal" };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char *p = xasprintf("%s/%s", dir, files[i]);
    unlink(p);
    free(p);
  }
  rmdir(dir);
  free(dir);
}

#endif
