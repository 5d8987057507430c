/* The kernelspec: a directory named for the kernel holding kernel.json,
   under a kernels/ directory Jupyter searches (jupyter_core's paths).  */
#define _GNU_SOURCE
#include "kernelspec.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* jupyter_client accepts kernel names of letters, digits, '.', '_' and
   '-', and looks them up in lower case.  */
static int
check_name(const char *name, kiln_error_t *err)
{
  if (name[0] == '\0' || strlen(name) > 64)
    return kiln_error_make(err, 0, "a kernel name has 1 to 64 characters");
  for (const char *p = name; *p; p++)
    if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || strchr("._-", *p)))
      return kiln_error_make(err, 0,
                             "kernel name '%s': only lower-case letters, digits, '.', '_' and "
                             "'-'",
                             name);
  return 0;
}

/* The data directory for WHERE (allocated).  */
static char *
data_dir(enum jup_spec_where where, const char *prefix, kiln_error_t *err)
{
  switch (where) {
  case JUP_SPEC_SYSTEM:
    return xstrdup("/usr/local/share/jupyter");
  case JUP_SPEC_PREFIX:
    return xasprintf("%s/share/jupyter", prefix);
  case JUP_SPEC_USER:
    break;
  }
  const char *d = getenv("JUPYTER_DATA_DIR");
  if (d && d[0])
    return xstrdup(d);
  d = getenv("XDG_DATA_HOME");
  if (d && d[0] == '/')
    return xasprintf("%s/jupyter", d);
  d = getenv("HOME");
  if (d == NULL || d[0] == '\0') {
    kiln_error_make(err, 0, "--user: HOME is not set");
    return NULL;
  }
  return xasprintf("%s/.local/share/jupyter", d);
}

char *
jup_kernelspec_install(enum jup_spec_where where, const char *prefix, const char *name,
                       const char *kiln, char *const *opts, size_t nopts, kiln_error_t *err)
{
  if (check_name(name, err) < 0)
    return NULL;
  cleanup_free char *data = data_dir(where, prefix, err);
  if (data == NULL)
    return NULL;
  char *dir = xasprintf("%s/kernels/%s", data, name);
  json_t *argv = json_pack("[s, s, s, s, s]", kiln, "jupyter", "kernel", "-f", "{connection_file}");
  for (size_t i = 0; i < nopts; i++)
    json_array_append_new(argv, json_string(opts[i]));
  json_t *spec
      = json_pack("{s:o, s:s, s:s, s:s, s:{s:b}}", "argv", argv, "display_name", "Python 3 (kiln)",
                  "language", "python", "interrupt_mode", "message", "metadata", "debugger", 0);
  cleanup_free char *path = xasprintf("%s/kernel.json", dir);
  cleanup_free char *tmp = xasprintf("%s/.kernel.json.tmp", dir);
  /* Written whole, then renamed into place: Jupyter listing kernels
     meanwhile never reads half a file.  */
  if (spec == NULL) {
    kiln_error_make(err, 0, "an option is not valid UTF-8");
    goto fail;
  }
  if (mkdir_p(dir, 0755) < 0) {
    kiln_error_make(err, errno, "cannot make %s", dir);
    goto fail;
  }
  if (json_dump_file(spec, tmp, JSON_INDENT(1)) < 0) {
    kiln_error_make(err, errno, "cannot write %s", tmp);
    goto fail;
  }
  if (rename(tmp, path) < 0) {
    kiln_error_make(err, errno, "cannot rename %s to %s", tmp, path);
    unlink(tmp);
    goto fail;
  }
  json_decref(spec);
  return dir;
fail:
  json_decref(spec);
  free(dir);
  return NULL;
}
