/* The daemon's side of a store link, on hostile bytes: the input is one
   whole frame, as a front's store link carries it, given to store_apply
   (and store_expire_parse, which the daemon asks first).

   Oracles, beside the sanitizers: a frame is taken only when it is a
   FRAME_STORE_WRITE whose KIND the store knows; a refusal always says
   why, and a taking never does; an expiry's live sessions are strings
   that each end inside the frame.  The store is opened to read, so each
   write is decoded and checked in full, then dropped: the database does
   not grow with the run.  Its KILN_HOME is FUZZ_STORE_HOME, the one the
   seeds were written with, emptied at exit.  */
#define _GNU_SOURCE
#include "frame.h"
#include "fuzz.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct store *st;
static char *home;

static void
cleanup(void)
{
  store_close(st);
  static const char *const files[]
      = { STORE_FILE, STORE_FILE "-wal", STORE_FILE "-shm", STORE_FILE "-journal" };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    cleanup_free char *p = xasprintf("%s/%s", home, files[i]);
    unlink(p);
  }
  rmdir(home);
  free(home);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  /* The seeds' KILN_HOME (fuzz_seeds.c), so that the paths they name
     are this store's.  */
  if ((mkdir(FUZZ_STORE_HOME, 0700) < 0 && errno != EEXIST)
      || (home = realpath(FUZZ_STORE_HOME, NULL)) == NULL)
    abort();
  kiln_error_t err = NULL;
  struct store *made = store_open(home, STORE_DIRECT, &err);
  if (made == NULL)
    abort();
  store_close(made);
  if ((st = store_open(home, STORE_READ, &err)) == NULL)
    abort();
  atexit(cleanup);
  return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < FRAME_HDR_SIZE)
    return 0;
  uint16_t type;
  int64_t n = frame_header_decode(data, &type, 1u << 24);
  if (n < 0 || (size_t)n != size - FRAME_HDR_SIZE)
    return 0;
  struct frame f = { .type = type };
  if (frame_parse_fields(&f, data + FRAME_HDR_SIZE, (size_t)n, NULL) < 0)
    return 0;

  int64_t before;
  const char **live = NULL;
  size_t nlive = 0;
  kiln_error_t err = NULL;
  int r = store_expire_parse(&f, &before, &live, &nlive, &err);
  FUZZ_CHECK(r >= -1 && r <= 1);
  FUZZ_CHECK((r < 0) == (err != NULL));
  if (r == 1)
    for (size_t i = 0; i < nlive; i++)
      FUZZ_CHECK(fuzz_within(live[i], strlen(live[i]) + 1, data, size));
  free(live);
  kiln_error_release(&err);

  int rc = store_apply(st, home, &f, &err);
  FUZZ_CHECK(rc == 0 || rc == -1);
  FUZZ_CHECK((rc < 0) == (err != NULL));
  if (rc < 0) {
    FUZZ_CHECK(err->msg[0] != '\0');
    kiln_error_release(&err);
  } else {
    uint64_t kind = 0;
    FUZZ_CHECK(type == FRAME_STORE_WRITE);
    FUZZ_CHECK(frame_get_u64(&f, TAG_KIND, false, &kind, NULL) == 0 && kind >= 1 && kind <= 8);
  }
  return 0;
}
