/* `kiln jupyter install` and the arguments of `kiln jupyter kernel`.  */
#ifndef KILN_CLI_JUPYTER_CMD_H
#define KILN_CLI_JUPYTER_CMD_H

#include <stdbool.h>
#include <stdio.h>

/* Prints the usage of kiln jupyter to OUT.  */
void jupyter_usage(FILE *out);

/* kiln jupyter install ARGV[0..ARGC): parses --user, --prefix DIR,
   --name NAME and, after "--", the kiln options the kernel is to be
   started with, which CHECK (N of them, from ARGV) must accept (0).
   Returns the process's exit code.  */
int jupyter_install_main(int argc, char **argv, int (*check)(int n, char **argv));

/* Takes the connection file out of ARGV[FIRST..*ARGC) (-f FILE, -f=FILE,
   --connection-file FILE or --connection-file=FILE), moving the
   arguments after it down and lowering *ARGC, so that what is left is
   kiln's options.  Returns the file (borrowed from ARGV), or NULL after
   saying what is wrong (missing, or given twice).  */
const char *jupyter_take_connection_file(int *argc, char **argv, int first);

/* Takes every FLAG out of ARGV[FIRST..*ARGC) as
   jupyter_take_connection_file takes the file.  Returns whether there
   was one.  */
bool jupyter_take_flag(int *argc, char **argv, int first, const char *flag);

#endif
