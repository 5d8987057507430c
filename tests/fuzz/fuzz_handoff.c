/* The zygote's first frame, the configuration the front hands it
   (handoff.h), on hostile bytes: the input is a whole frame.

   Oracles, beside the sanitizers: hof_decode accepts the frame only when
   it is a FRAME_CONFIG (or a FRAME_COMPILER_CONFIG, the same for the
   daemon's compile link) whose structs have this build's sizes and whose
   strings a walk written here reads to the end; then CFG points at SBX,
   the front's allocations are forgotten, at most eight paths are exposed,
   and every string is NULL or a NUL-terminated copy of its bytes in the
   frame.  The strings are freed here (the zygote keeps them for its
   life), on failure too, as far as the walk says they were made, so that
   the leak checker has the last word.  */
#include "fuzz.h"
#include "handoff.h"
#include "util.h"

#include <string.h>

/* The string members in the order they travel: handoff.c's strings_of,
   repeated here so that a change to either shows.  */
#define NSTR 17

static void
strings(struct kiln_config *cfg, struct sbx_config *sbx, char **v[NSTR])
{
  char **all[NSTR] = {
    &cfg->preload,
    &cfg->home,
    &cfg->venv,
    &cfg->runtime_dir,
    &sbx->root_dir,
    (char **)&sbx->expose[0],
    (char **)&sbx->expose[1],
    (char **)&sbx->expose[2],
    (char **)&sbx->expose[3],
    (char **)&sbx->expose[4],
    (char **)&sbx->expose[5],
    (char **)&sbx->expose[6],
    (char **)&sbx->expose[7],
    &sbx->cg.dirs[0],
    &sbx->cg.dirs[1],
    &sbx->cg.dirs[2],
    &sbx->cg.why,
  };
  memcpy(v, all, sizeof all);
}

/* How many strings a STRINGS field of LEN bytes yields before it runs
   out (NSTR when it holds them all), and whether it ends right after the
   last.  */
static size_t
walk(const struct field *s, bool *exact)
{
  size_t off = 0, i;
  for (i = 0; i < NSTR; i++) {
    uint32_t len;
    if (s->len - off < sizeof len)
      break;
    memcpy(&len, s->data + off, sizeof len);
    off += sizeof len;
    if (len == UINT32_MAX)
      continue;
    if (s->len - off < len)
      break;
    off += len;
  }
  *exact = i == NSTR && off == s->len;
  return i;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < FRAME_HDR_SIZE)
    return 0;
  struct frame f = { 0 };
  if (frame_header_decode(data, &f.type, FRAME_MAX_PAYLOAD) < 0
      || frame_parse_fields(&f, data + FRAME_HDR_SIZE, size - FRAME_HDR_SIZE, NULL) < 0)
    return 0;

  const struct field *c = frame_get(&f, TAG_CONFIG), *x = frame_get(&f, TAG_SANDBOX),
                     *s = frame_get(&f, TAG_STRINGS);
  bool shaped = (f.type == FRAME_CONFIG || f.type == FRAME_COMPILER_CONFIG) && c && x && s
                && c->len == sizeof(struct kiln_config) && x->len == sizeof(struct sbx_config);
  bool exact = false;
  size_t made = shaped ? walk(s, &exact) : 0;
  size_t nexpose = 0;
  if (shaped)
    memcpy(&nexpose, x->data + offsetof(struct sbx_config, nexpose), sizeof nexpose);

  struct kiln_config cfg;
  struct sbx_config sbx;
  kiln_error_t err = NULL;
  int r = hof_decode(&f, &cfg, &sbx, &err);
  FUZZ_CHECK((r == 0) == (shaped && exact && nexpose <= 8));
  char **v[NSTR];
  strings(&cfg, &sbx, v);
  if (r < 0) {
    FUZZ_CHECK(err != NULL && err->msg != NULL);
    kiln_error_release(&err);
    for (size_t i = 0; i < made; i++)
      free(*v[i]);
    return 0;
  }

  FUZZ_CHECK(err == NULL && cfg.sbx == &sbx && sbx.nexpose <= 8);
  FUZZ_CHECK(sbx.owned[0] == NULL && sbx.owned[1] == NULL);
  size_t off = 0;
  for (size_t i = 0; i < NSTR; i++) {
    uint32_t len;
    memcpy(&len, s->data + off, sizeof len);
    off += sizeof len;
    if (len == UINT32_MAX) {
      FUZZ_CHECK(*v[i] == NULL);
      continue;
    }
    /* A string is its bytes up to the first NUL among them.  */
    const uint8_t *bytes = s->data + off;
    const uint8_t *nul = memchr(bytes, '\0', len);
    size_t want = nul ? (size_t)(nul - bytes) : len;
    FUZZ_CHECK(*v[i] != NULL && strlen(*v[i]) == want && memcmp(*v[i], bytes, want) == 0);
    off += len;
    free(*v[i]);
  }
  return 0;
}
