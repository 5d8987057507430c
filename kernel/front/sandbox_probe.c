/* The jail's host probe for a program that embeds the front: what the
   kiln command does before it starts anything (cli/kiln.c), behind the
   public API so that an embedder needs no header of kernel/jail.  */
#include "internal.h"
#include "sandbox.h"

#include <stdlib.h>

int
front_sandbox_probe(struct kiln_config *cfg, kiln_error_t *err)
{
  struct sbx_config *sbx = xzalloc(sizeof *sbx);
  /* The operator's --insecure-no-sandbox is the only way to an unjailed
     worker, as in the kiln command: a host that cannot build the jail
     is a refusal otherwise.  */
  sbx->jail = !cfg->insecure_no_sandbox;
  if (sbx_probe(sbx, cfg, err) < 0) {
    sbx_config_free(sbx);
    free(sbx);
    return kiln_error_wrap(err, "cannot sandbox workers on this host");
  }
  cfg->sbx = sbx;
  return 0;
}

void
front_sandbox_free(struct kiln_config *cfg)
{
  if (cfg->sbx == NULL)
    return;
  sbx_config_free(cfg->sbx);
  free(cfg->sbx);
  cfg->sbx = NULL;
}
