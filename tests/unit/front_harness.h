/* A real front, zygote and jailed workers for a test program.  The front
   starts its zygote and compile helper by exec of /proc/self/exe, which
   is the test program: called so, it execs the kiln binary (the test's
   argument) instead.

     int main(int argc, char **argv) {
       harness_exec_kiln(argc, argv);          first: never returns there
       struct harness h;
       int rc = harness_begin(&h, argc, argv, "NAME", JAIL);
       if (rc >= 0) return rc;                 usage, no jail (77), an error
       ... front_new(&h.cfg, h.loop, ...); loop_run(h.loop, ...); ...
       harness_end(&h);
     }  */
#ifndef KILN_TEST_FRONT_HARNESS_H
#define KILN_TEST_FRONT_HARNESS_H

#include "config.h"
#include "handoff.h"
#include "loop.h"
#include "sandbox.h"

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HARNESS_KILN_ENV "KILN_TEST_FRONT_KILN_BIN"

/* How the test needs the workers: jailed or skipped (77), or jailed
   where the host can and unjailed elsewhere.  */
enum harness_jail { HARNESS_JAIL_OR_SKIP, HARNESS_JAIL_IF_POSSIBLE };

struct harness {
  char home[64]; /* the test's KILN_HOME, removed at the end */
  struct kiln_config cfg;
  struct sbx_config sbx;
  struct loop *loop;
};

/* Called as the zygote or the compile helper: becomes the kiln binary.  */
static inline void
harness_exec_kiln(int argc, char **argv)
{
  if (argc == 2
      && (strcmp(argv[1], ZYGOTE_COMMAND) == 0 || strcmp(argv[1], COMPILER_COMMAND) == 0)) {
    const char *bin = getenv(HARNESS_KILN_ENV);
    if (bin)
      execv(bin, argv);
    _exit(127);
  }
}

static inline int
harness_remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  (void)st;
  (void)type;
  (void)ftw;
  (void)remove(path);
  return 0;
}

/* Makes H's home, configuration (kiln's defaults and the environment,
   which the caller may have set), sandbox and loop.  Returns -1 when the
   test goes on, else the exit status: 2 (usage), 77 (no jail), 1.  */
static inline int
harness_begin(struct harness *h, int argc, char **argv, const char *name, enum harness_jail jail)
{
  memset(h, 0, sizeof *h);
  if (argc != 2) {
    fprintf(stderr, "usage: %s KILN_BIN\n", argv[0]);
    return 2;
  }
  /* A hung worker or zygote fails the test rather than the suite's
     timeout.  */
  alarm(120);
  snprintf(h->home, sizeof h->home, "/tmp/kiln-test-%s-XXXXXX", name);
  if (mkdtemp(h->home) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  setenv(HARNESS_KILN_ENV, argv[1], 1);
  setenv("KILN_HOME", h->home, 1);
  kiln_error_t err = NULL;
  if (config_init(&h->cfg, &err) < 0) {
    fprintf(stderr, "config: %s\n", err->msg);
    kiln_error_release(&err);
    return 1;
  }
  h->sbx = (struct sbx_config){ .jail = true };
  h->cfg.sbx = &h->sbx;
  if (sbx_probe(&h->sbx, &h->cfg, &err) < 0) {
    if (jail == HARNESS_JAIL_OR_SKIP) {
      printf("skip: this host cannot jail workers (%s)\n", err->msg);
      kiln_error_release(&err);
      sbx_config_free(&h->sbx);
      config_free(&h->cfg);
      nftw(h->home, harness_remove_one, 16, FTW_DEPTH | FTW_PHYS);
      return 77;
    }
    printf("note: this host cannot jail workers (%s): they run unjailed\n", err->msg);
    kiln_error_release(&err);
    sbx_config_free(&h->sbx);
    h->sbx = (struct sbx_config){ .jail = false };
    if (sbx_probe(&h->sbx, &h->cfg, &err) < 0) {
      fprintf(stderr, "sandbox: %s\n", err->msg);
      kiln_error_release(&err);
      return 1;
    }
  }
  if ((h->loop = loop_new(&err)) == NULL) {
    fprintf(stderr, "loop: %s\n", err->msg);
    kiln_error_release(&err);
    return 1;
  }
  return -1;
}

static inline void
harness_end(struct harness *h)
{
  if (h->loop)
    loop_free(h->loop);
  sbx_config_free(&h->sbx);
  config_free(&h->cfg);
  nftw(h->home, harness_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
