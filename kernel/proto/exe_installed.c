/* libkiln runs in the embedder's process, so /proc/self/exe is the
   embedder, not kiln: the zygote, the compile helper and the installer
   are started from the kiln command installed with the library.  The
   two must be one build, since the front hands the zygote its
   configuration as the bytes of struct kiln_config (handoff.h).  */
#define _GNU_SOURCE
#include "link.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* KILN_BINDIR_FROM_LIBDIR (bindir as seen from libdir, "../bin"; empty
   when either is outside the prefix) and KILN_INSTALLED_BIN
   (prefix/bindir/kiln) come from meson.build.  */

/* The kiln beside the library: BINDIR_FROM_LIBDIR/kiln from the
   directory this very file was loaded from.  Looking where the library
   is rather than where it was meant to go keeps a tree installed with
   DESTDIR, or moved whole, working.  Returns 0 with the path in OUT.  */
static int
beside_library(char out[static PATH_MAX])
{
  Dl_info info;
  char lib[PATH_MAX];
  if (KILN_BINDIR_FROM_LIBDIR[0] == '\0' || dladdr((void *)link_kiln_exe, &info) == 0
      || info.dli_fname == NULL || realpath(info.dli_fname, lib) == NULL)
    return -1;
  char *slash = strrchr(lib, '/');
  if (slash == NULL)
    return -1;
  *slash = '\0';
  int n = snprintf(out, PATH_MAX, "%s/%s/kiln", lib, KILN_BINDIR_FROM_LIBDIR);
  if (n < 0 || n >= PATH_MAX || access(out, X_OK) < 0)
    return -1;
  return 0;
}

const char *
link_kiln_exe(void)
{
  /* KILN_BIN first: a build tree, or a kiln installed elsewhere.  It is
     read on every start, so that an embedder may set it at any time
     before front_new.  */
  const char *env = getenv("KILN_BIN");
  if (env && env[0] != '\0')
    return env;
  /* Only the front's loop thread starts helpers: the path is found
     once and kept.  */
  static char path[PATH_MAX];
  if (path[0] == '\0' && beside_library(path) < 0)
    snprintf(path, sizeof path, "%s", KILN_INSTALLED_BIN);
  return path;
}
