#include "handoff.h"
#include "util.h"

#include <string.h>

/* The string-valued members, in the order they travel.  */
#define NSTR_CFG 4
#define NSTR_SBX (1 + 8 + 3 + 1)

static void
strings_of(struct kiln_config *cfg, struct sbx_config *sbx, char ***v)
{
  v[0] = &cfg->preload;
  v[1] = &cfg->home;
  v[2] = &cfg->venv;
  v[3] = &cfg->runtime_dir;
  v[4] = &sbx->root_dir;
  for (size_t i = 0; i < 8; i++)
    v[5 + i] = (char **)&sbx->expose[i];
  for (size_t i = 0; i < 3; i++)
    v[13 + i] = &sbx->cg.dirs[i];
  v[16] = &sbx->cg.why;
}

void
hof_encode(const struct kiln_config *cfg, struct fbuf *fb)
{
  hof_encode_as(cfg, FRAME_CONFIG, fb);
}

void
hof_encode_as(const struct kiln_config *cfg, enum frame_type type, struct fbuf *fb)
{
  struct kiln_config c = *cfg;
  struct sbx_config x = *cfg->sbx;
  char **v[NSTR_CFG + NSTR_SBX];
  strings_of(&c, &x, v);
  struct buf strs = { 0 };
  for (size_t i = 0; i < NSTR_CFG + NSTR_SBX; i++) {
    const char *s = *v[i];
    uint32_t len = s ? (uint32_t)strlen(s) : UINT32_MAX;
    buf_append(&strs, &len, sizeof len);
    if (s)
      buf_append(&strs, s, len);
  }
  fbuf_init(fb, type);
  fbuf_put(fb, TAG_CONFIG, &c, sizeof c);
  fbuf_put(fb, TAG_SANDBOX, &x, sizeof x);
  fbuf_put(fb, TAG_STRINGS, strs.data, strs.len);
  fbuf_finish(fb);
  buf_free(&strs);
}

int
hof_decode(const struct frame *f, struct kiln_config *cfg, struct sbx_config *sbx,
           kiln_error_t *err)
{
  const struct field *c = frame_get(f, TAG_CONFIG), *x = frame_get(f, TAG_SANDBOX),
                     *s = frame_get(f, TAG_STRINGS);
  if ((f->type != FRAME_CONFIG && f->type != FRAME_COMPILER_CONFIG) || !c || !x || !s
      || c->len != sizeof *cfg || x->len != sizeof *sbx)
    return kiln_error_make(err, 0, "the front's configuration frame is not of this build");
  memcpy(cfg, c->data, sizeof *cfg);
  memcpy(sbx, x->data, sizeof *sbx);
  cfg->sbx = sbx;
  /* Only the front serves HTTP; its pointers mean nothing here.  */
  memset(&cfg->http, 0, sizeof cfg->http);
  memset(&cfg->packages, 0, sizeof cfg->packages);
  cfg->daemon_socket = NULL;
  /* The front's allocations mean nothing here; the strings that matter
     are rebuilt below.  */
  sbx->owned[0] = sbx->owned[1] = NULL;
  char **v[NSTR_CFG + NSTR_SBX];
  strings_of(cfg, sbx, v);
  size_t off = 0;
  for (size_t i = 0; i < NSTR_CFG + NSTR_SBX; i++) {
    uint32_t len;
    if (s->len - off < sizeof len)
      return kiln_error_make(err, 0, "the front's configuration frame is cut short");
    memcpy(&len, s->data + off, sizeof len);
    off += sizeof len;
    if (len == UINT32_MAX) {
      *v[i] = NULL;
      continue;
    }
    if (s->len - off < len)
      return kiln_error_make(err, 0, "the front's configuration frame is cut short");
    *v[i] = xstrndup((const char *)s->data + off, len);
    off += len;
  }
  if (off != s->len || sbx->nexpose > 8)
    return kiln_error_make(err, 0, "the front's configuration frame is malformed");
  return 0;
}
