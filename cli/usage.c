/* `kiln --help`: what kiln is, its commands and options, and what
   `kiln run` exits with.  */
#include "usage.h"
#include "config.h"

static const char usage_head[]
    = "Usage: kiln serve [OPTIONS]                  serve MCP over stdio (for an MCP client's "
      "config)\n"
      "       kiln serve --http [ADDR:]PORT [OPTIONS] serve MCP over Streamable HTTP\n"
      "       kiln run [OPTIONS] FILE.py [ARGS...]  run a script in a fresh session and print its "
      "output\n"
      "       kiln run [OPTIONS] - [ARGS...]        the same, the script read from standard input\n"
      "       kiln serve --daemon [...]             the same, its workers from the kiln daemon\n"
      "       kiln jupyter kernel -f FILE [--standalone] [OPTIONS]\n"
      "                                            a Jupyter kernel, its workers from the kiln\n"
      "                                            daemon, or with --standalone its own zygote\n"
      "       kiln jupyter install [--user | --prefix DIR] [--name NAME] [-- OPTIONS...]\n"
      "                                            write the kernelspec \"Python 3 (kiln)\"\n"
      "       kiln daemon [--socket PATH] [--idle-exit SECONDS]\n"
      "                                            zygotes shared by kernels (started by them)\n"
      "       kiln doctor [OPTIONS]                 show which protections this host supports\n"
      "       kiln history [OPTIONS] [SESSION]      every cell and command run (in SESSION), "
      "newest "
      "first\n"
      "       kiln cache stats|clear [OPTIONS]      the code cache's size and counters; empty it\n"
      "       kiln [COMMAND] --help | kiln --version\n"
      "\n"
      "kiln runs Python in persistent sessions, each in its own worker process forked\n"
      "from a zygote that has numpy, matplotlib, PIL and pandas already imported.  Its\n"
      "MCP tools: run_python, run_shell (a shell command in the session's sandbox),\n"
      "list_sessions, close_session, upload_file, list_files, read_file.\n"
      "\n"
      "kiln daemon keeps zygotes for this user's kernels: a Jupyter kernel (and kiln serve\n"
      "--daemon) takes its workers from it instead of starting an interpreter of its own,\n"
      "and starts it when none is running.  It listens on $XDG_RUNTIME_DIR/kiln (else\n"
      "/tmp/kiln-UID), mode 0600, for this user only; kernels with the same options share\n"
      "a zygote, a spare worker and a compile helper; the daemon writes their store\n"
      "(kiln.db), which they read; a kernel's workers end with the kernel; it exits\n"
      "after --idle-exit seconds (default 600, or KILN_DAEMON_IDLE) with no kernel.\n"
      "\n"
      "kiln run gives the script its ARGS as sys.argv[1:], and FILE.py as given (or -) as\n"
      "sys.argv[0]: everything after FILE.py is the script's, not kiln's.  The script's\n"
      "/work (its current directory) starts empty, unless:\n"
      "  --workdir DIR                copy DIR's regular files and directories, recursively, into\n"
      "                               /work before the script runs (at most --work-size in all;\n"
      "                               symlinks and special files are skipped, with a warning)\n"
      "  --keep                       after the script, copy /work's regular files and "
      "directories\n"
      "                               back into the --workdir DIR (use --workdir . for the "
      "current\n"
      "                               directory): new and changed files replace DIR's, unchanged\n"
      "                               ones are left alone, nothing in DIR is deleted, and nothing\n"
      "                               is written outside DIR; symlinks and special files the\n"
      "                               script made are not copied back\n"
      "\n"
      "Options (each also read from the environment variable shown; flags win):\n";
static const char usage_tail[]
    = "\n"
      "kiln run exits with 0 when the script succeeds, 1 when it raises, the code passed\n"
      "to sys.exit(), 124 when it is interrupted at its deadline, 137 when it had to be\n"
      "killed, 70 when its worker crashed, 2 when the script or --workdir cannot be read\n"
      "or copied into /work, and 74 when the script succeeded but --keep could not copy\n"
      "all of /work back.\n";

void
kiln_usage(FILE *out)
{
  fputs(usage_head, out);
  config_print_help(out);
  fputs(usage_tail, out);
}
