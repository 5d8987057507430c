/* kiln jupyter: install a kernelspec, or the kernel's arguments.  The
   kernel itself is jupyter/; cli/kiln.c starts it as it starts serve.  */
#define _GNU_SOURCE
#include "jupyter_cmd.h"
#include "kernelspec.h"
#include "util.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

void
jupyter_usage(FILE *out)
{
  fputs("Usage: kiln jupyter install [--user | --prefix DIR] [--name NAME] [--standalone]\n"
        "                            [-- KILN OPTIONS...]\n"
        "       kiln jupyter kernel -f CONNECTION_FILE [--standalone] [KILN OPTIONS]\n"
        "\n"
        "kiln jupyter install writes a kernelspec, \"Python 3 (kiln)\", that starts kiln as a\n"
        "Jupyter kernel with the KILN OPTIONS given after \"--\" (those of kiln serve, e.g.\n"
        "-- --memory 2G --spares 1): in /usr/local/share/jupyter/kernels/NAME, or\n"
        "with --user in the user's Jupyter data directory ($JUPYTER_DATA_DIR, else\n"
        "~/.local/share/jupyter), or with --prefix under DIR/share/jupyter (a virtualenv's\n"
        "prefix, for instance).  NAME is kiln unless given.\n"
        "\n"
        "kiln jupyter kernel is the kernel Jupyter starts, with the connection file it\n"
        "wrote.  It takes its workers from the user's kiln daemon (kiln daemon --help),\n"
        "starting the daemon if none is running: kernels with the same options share its\n"
        "zygote, compile helper and spare worker, so a new kernel starts no\n"
        "interpreter.  With --standalone the kernel runs its own zygote, compile helper\n"
        "and one spare worker instead.  Either way it holds one sandboxed session,\n"
        "opened at start and made afresh on a restart.\n"
        "A cell runs up to --max-timeout; the interrupt button (or SIGINT) raises\n"
        "KeyboardInterrupt in it and keeps the session.  An idle session is not\n"
        "hibernated unless --idle-hibernate is given; --spares overrides the spares.\n"
        "input() asks on the stdin channel when the frontend allows it.  Run kiln --help\n"
        "for the KILN OPTIONS.\n",
        out);
}

int
jupyter_install_main(int argc, char **argv, int (*check)(int n, char **argv))
{
  enum jup_spec_where where = JUP_SPEC_SYSTEM;
  const char *prefix = NULL, *name = "kiln";
  bool standalone = false; /* written into the kernel's command */
  int i = 0, nwhere = 0;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      jupyter_usage(stdout);
      return 0;
    }
    if (strcmp(a, "--user") == 0) {
      where = JUP_SPEC_USER;
      nwhere++;
    } else if (strcmp(a, "--prefix") == 0 || strncmp(a, "--prefix=", 9) == 0) {
      prefix = a[8] == '=' ? a + 9 : i + 1 < argc ? argv[++i] : NULL;
      if (prefix == NULL || prefix[0] == '\0') {
        fprintf(stderr, "kiln jupyter install: --prefix needs a directory\n");
        return 2;
      }
      where = JUP_SPEC_PREFIX;
      nwhere++;
    } else if (strcmp(a, "--standalone") == 0) {
      standalone = true;
    } else if (strcmp(a, "--name") == 0 || strncmp(a, "--name=", 7) == 0) {
      name = a[6] == '=' ? a + 7 : i + 1 < argc ? argv[++i] : NULL;
      if (name == NULL) {
        fprintf(stderr, "kiln jupyter install: --name needs a name\n");
        return 2;
      }
    } else {
      fprintf(stderr,
              "kiln jupyter install: unknown option %s (kiln's own options go after \"--\")\n", a);
      return 2;
    }
  }
  if (nwhere > 1) {
    fprintf(stderr, "kiln jupyter install: --user and --prefix are one or the other\n");
    return 2;
  }
  /* The kernel refuses bad options when Jupyter starts it, where nobody
     reads its error: they are refused now instead.  */
  if (check(argc - i, argv + i) != 0)
    return 2;
  char kiln[PATH_MAX];
  if (realpath("/proc/self/exe", kiln) == NULL) {
    perror("kiln jupyter install: /proc/self/exe");
    return 1;
  }
  /* The kernel's options: --standalone first when asked, then kiln's.  */
  size_t nopts = (size_t)(argc - i) + standalone;
  cleanup_free char **opts = xmalloc((nopts + 1) * sizeof *opts);
  size_t o = 0;
  if (standalone)
    opts[o++] = "--standalone";
  for (int j = i; j < argc; j++)
    opts[o++] = argv[j];
  opts[o] = NULL;
  kiln_error_t err = NULL;
  cleanup_free char *dir = jup_kernelspec_install(where, prefix, name, kiln, opts, nopts, &err);
  if (dir == NULL) {
    fprintf(stderr, "kiln jupyter install: %s\n", err->msg);
    kiln_error_release(&err);
    return 1;
  }
  printf("Installed the kernelspec %s in %s\n", name, dir);
  return 0;
}

const char *
jupyter_take_connection_file(int *argc, char **argv, int first)
{
  const char *file = NULL;
  int i = first;
  while (i < *argc) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0)
      break;
    const char *value = NULL;
    int take = 0;
    if (strcmp(a, "-f") == 0 || strcmp(a, "--connection-file") == 0) {
      if (i + 1 >= *argc) {
        fprintf(stderr, "kiln jupyter kernel: %s needs the connection file\n", a);
        return NULL;
      }
      value = argv[i + 1];
      take = 2;
    } else if (strncmp(a, "-f=", 3) == 0 || strncmp(a, "--connection-file=", 18) == 0) {
      value = strchr(a, '=') + 1;
      take = 1;
    }
    if (take == 0) {
      i++;
      continue;
    }
    if (file) {
      fprintf(stderr, "kiln jupyter kernel: the connection file is given twice\n");
      return NULL;
    }
    file = value;
    memmove(argv + i, argv + i + take, (size_t)(*argc - i - take + 1) * sizeof *argv);
    *argc -= take;
  }
  if (file == NULL || file[0] == '\0')
    fprintf(stderr, "kiln jupyter kernel: expected -f CONNECTION_FILE (Jupyter passes it)\n");
  return file && file[0] ? file : NULL;
}

bool
jupyter_take_flag(int *argc, char **argv, int first, const char *flag)
{
  bool found = false;
  for (int i = first; i < *argc && strcmp(argv[i], "--") != 0;) {
    if (strcmp(argv[i], flag) != 0) {
      i++;
      continue;
    }
    found = true;
    memmove(argv + i, argv + i + 1, (size_t)(*argc - i) * sizeof *argv);
    (*argc)--;
  }
  return found;
}
