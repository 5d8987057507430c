/* kiln daemon: its arguments; the daemon itself is kernel/daemon.  */
#define _GNU_SOURCE
#include "daemon_cmd.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* `kiln daemon [--socket PATH] [--idle-exit SECONDS] [--background]`.  */
int
daemon_cmd(int argc, char **argv)
{
  const char *path = NULL;
  double idle_s = 600;
  bool background = false;
  const char *env = getenv("KILN_DAEMON_IDLE");
  if (env && config_parse_seconds(env, &idle_s) < 0) {
    fprintf(stderr, "kiln daemon: KILN_DAEMON_IDLE: expected seconds, not '%s'\n", env);
    return 2;
  }
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
      path = argv[++i];
    else if (strcmp(argv[i], "--idle-exit") == 0 && i + 1 < argc) {
      if (config_parse_seconds(argv[++i], &idle_s) < 0) {
        fprintf(stderr, "kiln daemon: --idle-exit: expected seconds, not '%s'\n", argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--background") == 0)
      background = true;
    else {
      bool help = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
      if (!help)
        fprintf(stderr, "kiln daemon: unexpected argument '%s'\n", argv[i]);
      fputs("Usage: kiln daemon [--socket PATH] [--idle-exit SECONDS]\n"
            "(kiln --help says what it is for; kernels start it themselves)\n",
            help ? stdout : stderr);
      return help ? 0 : 2;
    }
  }
  log_setup(LOG_INFO, 0);
  cleanup_free char *own = NULL;
  if (path == NULL) {
    kiln_error_t err = NULL;
    if ((own = daemon_socket_path(&err)) == NULL) {
      fprintf(stderr, "kiln daemon: %s\n", err->msg);
      kiln_error_release(&err);
      return 1;
    }
    path = own;
  }
  /* Started by a kernel: the daemon leaves its process and its session
     (Jupyter signals a kernel's whole process group).  */
  if (background) {
    pid_t pid = fork();
    if (pid < 0)
      return 1;
    if (pid > 0)
      _exit(0);
    setsid();
  }
  return daemon_main(path, idle_s);
}
