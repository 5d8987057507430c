#ifndef KILN_DAEMON_CMD_H
#define KILN_DAEMON_CMD_H

/* `kiln daemon [--socket PATH] [--idle-exit SECONDS] [--background]`,
   ARGV being what follows "daemon".  Returns the exit code.  */
int daemon_cmd(int argc, char **argv);

#endif
