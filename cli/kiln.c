/* kiln's command line: `kiln serve` (MCP over stdio), `kiln run FILE.py`
   (run.h), `kiln jupyter` (jupyter_cmd.h), `kiln doctor`, --help,
   --version.  */
#define _GNU_SOURCE
#include "config.h"
#include "daemon.h"
#include "daemon_cmd.h"
#include "embed.h"
#include "compiler.h"
#include "handoff.h"
#include "installer.h"
#include "jupyter_cmd.h"
#include "kernel.h"
#include "log.h"
#include "zygote.h"
#include "kiln.h"
#include "loop.h"
#include "sandbox.h"
#include "paths.h"
#include "run.h"
#include "util.h"
#include "server.h"
#include "store_cmd.h"
#include "transport/http.h"
#include "transport/stdio.h"
#include "usage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A Jupyter kernel's idle session is hibernated after this long: a
   year, so not while anyone is at the notebook.  */
#define JUPYTER_IDLE_HIBERNATE_S (365.0 * 24 * 3600)

/* How long kiln serve waits, when stopping, for sessions' snapshots.  */
#define SHUTDOWN_HIBERNATE_S 30

struct app {
  struct kiln_config cfg;
  struct loop *loop;
  struct front *front;
  struct mcp_stdio *stdio;
  struct mcp_http *http;
  struct mcp_server *server;
  int exit_code;
  struct run_opts run_opts;
  struct run *run;                     /* kiln run */
  struct jup_connection *jupyter_conn; /* kiln jupyter kernel */
  struct jup_kernel *jupyter;
  struct sbx_pending probe; /* the namespaces' verdict, when still to come */
};

/* Says that cells cannot be jailed here, and why.  */
static void
refuse_unsandboxed(const char *why)
{
  fprintf(stderr,
          "kiln: cannot sandbox workers on this host: %s\n"
          "kiln: run `kiln doctor` for details; to run cells WITHOUT isolation anyway, pass "
          "--insecure-no-sandbox\n",
          why);
}

/* The verdict of a namespace probe left running while the front started
   (sbx_probe_begin in main): 0, or -1 after refusing.  */
static int
probe_verdict(struct app *a)
{
  kiln_error_t err = NULL;
  if (sbx_probe_end(&a->probe, &err) == 0)
    return 0;
  refuse_unsandboxed(err->msg);
  kiln_error_release(&err);
  return -1;
}

static void
on_ready(void *ctx, const struct front_info *info, kiln_error_t err)
{
  struct app *a = ctx;
  if (err) {
    fprintf(stderr, "kiln: cannot start: %s\n", err->msg);
    a->exit_code = 1;
    loop_stop(a->loop);
    return;
  }
  if (a->jupyter)
    jup_kernel_ready(a->jupyter, info, err);
  if (a->run)
    return;
  if (a->http)
    mcp_http_set_ready(a->http, true);
  /* The zygote's words: for a front on the daemon, its cgroups are the
     daemon's.  */
  cleanup_free char *protections
      = info->protections ? xstrdup(info->protections) : sbx_describe(a->cfg.sbx);
  const char *packages = front_packages(a->front);
  size_t npackages = 0;
  for (const char *p = packages; *p; p += strcspn(p, ","), p += *p == ',')
    npackages++;
  fprintf(stderr, "kiln %s: Python %.*s, preloaded: %s%s%s; %zu packages; protections: %s\n",
          KILN_VERSION, (int)strcspn(info->python_version, " "), info->python_version,
          info->preloaded[0] ? info->preloaded : "nothing",
          info->preload_failed[0] ? "; not loaded: " : "", info->preload_failed, npackages,
          protections);
  log_msg(LOG_DEBUG, "packages: %s", packages);
}

/* The client is finished with: its input ended and every request it
   sent was answered.  */
static void
on_eof(void *ctx)
{
  struct app *a = ctx;
  loop_stop(a->loop);
}

/* Parses kiln's own options from ARGV[*I] on: "--key value",
   "--key=value", bare flags, and for kiln run --workdir DIR and --keep.
   Stops at the first argument that is not an option (kiln run's script,
   or "-") or after "--".  Returns 0, 1 when --help was asked for, or -1
   after saying what is wrong.  */
static int
parse_options(struct app *a, const char *cmd, int argc, char **argv, int *i)
{
  kiln_error_t err = NULL;
  bool run = strcmp(cmd, "run") == 0;
  for (; *i < argc; (*i)++) {
    char *arg = argv[*i];
    if (strcmp(arg, "--") == 0) {
      (*i)++;
      break;
    }
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
      return 1;
    if (arg[0] != '-' || strcmp(arg, "-") == 0)
      break;
    if (arg[1] != '-') {
      fprintf(stderr, "kiln: unknown option %s\n", arg);
      return -1;
    }
    char *key = arg + 2, *value = NULL;
    char *eq = strchr(key, '=');
    cleanup_free char *k = eq ? xstrndup(key, (size_t)(eq - key)) : xstrdup(key);
    if (eq)
      value = eq + 1;
    bool run_only = strcmp(k, "workdir") == 0 || strcmp(k, "keep") == 0;
    /* Known before a value is taken, so that an unknown option is called
       that rather than one missing its value.  */
    if (!run_only && !config_known(k)) {
      fprintf(stderr, "kiln: unknown option --%s\n", k);
      return -1;
    }
    if (run_only && !run) {
      fprintf(stderr, "kiln %s: --%s is an option of kiln run\n", cmd, k);
      return -1;
    }
    if (strcmp(k, "keep") == 0) {
      if (value) {
        fprintf(stderr, "kiln run: --keep takes no value\n");
        return -1;
      }
      a->run_opts.keep = true;
      continue;
    }
    if (value == NULL && config_is_flag(k))
      value = "1";
    else if (value == NULL) {
      if (*i + 1 >= argc) {
        fprintf(stderr, "kiln: --%s needs a value\n", k);
        return -1;
      }
      value = argv[++(*i)];
    }
    if (strcmp(k, "workdir") == 0) {
      a->run_opts.workdir = value;
      continue;
    }
    if (config_set(&a->cfg, k, value, &err) < 0) {
      fprintf(stderr, "kiln: %s\n", err->msg);
      kiln_error_release(&err);
      return -1;
    }
  }
  if (a->cfg.grace_s > 600) {
    fprintf(stderr, "kiln: --grace must be at most 600 seconds\n");
    return -1;
  }
  return 0;
}

static int
run_script(struct app *a)
{
  kiln_error_t err = NULL;
  a->exit_code = 1;
  run_start(a->run, a->front, a->loop);
  if (loop_run(a->loop, &err) < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    kiln_error_release(&err);
  }
  front_free(a->front);
  a->front = NULL;
  /* A run that never ended: the front could not start (on_ready said
     why) or a signal stopped it.  */
  return run_status(a->run) >= 0 ? run_status(a->run) : a->exit_code;
}

/* SIGHUP: the token file is read again.  */
static void
on_hangup(void *ctx)
{
  struct app *a = ctx;
  kiln_error_t err = NULL;
  if (mcp_http_reload(a->http, &err) < 0) {
    log_msg(LOG_ERROR, "http: the token file was not reloaded, the old tokens stay: %s", err->msg);
    kiln_error_release(&err);
  }
}

/* kiln serve --http: until SIGTERM or SIGINT.  */
static int
serve_http(struct app *a)
{
  kiln_error_t err = NULL;
  a->server = mcp_server_new(&a->cfg, a->front);
  a->http = mcp_http_new(a->loop, a->server, &a->cfg, &err);
  if (a->http == NULL) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    kiln_error_release(&err);
    front_free(a->front);
    a->front = NULL;
    mcp_server_free(a->server);
    return 1;
  }
  front_on_hangup(a->front, on_hangup, a);
  fprintf(stderr, "kiln: serving MCP at %s\n", mcp_http_url(a->http));
  if (loop_run(a->loop, &err) < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    kiln_error_release(&err);
    a->exit_code = 1;
  }
  /* The MCP sessions end first (their kiln sessions are closed through
     the front), then the front kills whatever is left.  */
  mcp_http_free(a->http);
  a->http = NULL;
  front_free(a->front);
  a->front = NULL;
  mcp_server_free(a->server);
  return a->exit_code;
}

/* Snapshots every idle session before the server stops (a second
   SIGTERM or SIGINT cuts the wait short).  */
static void
hibernate_all(struct app *a)
{
  if (front_hibernate_all(a->front, SHUTDOWN_HIBERNATE_S) == 0)
    return;
  loop_resume(a->loop);
  kiln_error_t err = NULL;
  if (loop_run(a->loop, &err) < 0)
    kiln_error_release(&err);
}

static void
on_jupyter_parent_exit(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)fd;
  (void)events;
  (void)data;
  log_msg(LOG_WARN, "jupyter: the process that started the kernel has exited; the kernel stops");
  loop_stop(loop);
}

/* Jupyter names the process that started the kernel (JPY_PARENT_PID).
   When it is gone, so is whoever could talk to the kernel: the kernel
   stops then, as ipykernel does, rather than hold its session forever.
   Returns a pidfd of it on the loop, or -1 when there is none to watch.  */
static int
watch_jupyter_parent(struct app *a)
{
  const char *pp = getenv("JPY_PARENT_PID");
  long parent = pp ? strtol(pp, NULL, 10) : 0;
  if (parent <= 1 || parent != (long)getppid())
    return -1;
  int fd = (int)syscall(SYS_pidfd_open, (pid_t)parent, 0);
  if (fd >= 0 && loop_add(a->loop, fd, EPOLLIN, on_jupyter_parent_exit, a, NULL) < 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* kiln jupyter kernel: until a shutdown_request, SIGTERM, the exit of
   the process that started it, or the front failing to start.  */
static int
serve_jupyter(struct app *a)
{
  kiln_error_t err = NULL;
  /* After front_new: ZeroMQ's threads start here, with the signals the
     front takes by signalfd already blocked, and the zygote already
     spawned.  Nothing in this process forks.  */
  a->jupyter = jup_kernel_new(&a->cfg, a->loop, a->front, a->jupyter_conn, &err);
  if (a->jupyter == NULL || probe_verdict(a) < 0) {
    if (err)
      fprintf(stderr, "kiln jupyter kernel: %s\n", err->msg);
    kiln_error_release(&err);
    jup_kernel_free(a->jupyter);
    a->jupyter = NULL;
    front_free(a->front);
    a->front = NULL;
    return 1;
  }
  int parent = watch_jupyter_parent(a);
  if (loop_run(a->loop, &err) < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    kiln_error_release(&err);
    a->exit_code = 1;
  }
  if (parent >= 0) {
    loop_del(a->loop, parent);
    close(parent);
  }
  int code = a->exit_code ? a->exit_code : jup_kernel_exit_code(a->jupyter);
  /* The kernel closes its session and lets its last replies leave, then
     the front kills whatever is left.  */
  jup_kernel_free(a->jupyter);
  a->jupyter = NULL;
  front_free(a->front);
  a->front = NULL;
  return code;
}

/* Whether kiln accepts the N options ARGV as kiln serve's (for a
   kernelspec's): 0, or -1 after saying what is wrong.  */
static int
check_serve_options(int n, char **argv)
{
  struct app scratch = { 0 };
  kiln_error_t err = NULL;
  if (config_init(&scratch.cfg, &err) < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    kiln_error_release(&err);
    return -1;
  }
  int i = 0;
  int rc = parse_options(&scratch, "serve", n, argv, &i);
  if (rc == 0 && i < n) {
    fprintf(stderr, "kiln jupyter install: unexpected argument '%s'\n", argv[i]);
    rc = -1;
  } else if (rc > 0) {
    fprintf(stderr, "kiln jupyter install: --help is not a kernel's option\n");
    rc = -1;
  }
  config_free(&scratch.cfg);
  return rc;
}

static int
serve(struct app *a)
{
  if (a->cfg.http.listen)
    return serve_http(a);
  kiln_error_t err = NULL;
  a->server = mcp_server_new(&a->cfg, a->front);
  a->stdio = mcp_stdio_new(a->loop, a->server, on_eof, a, &err);
  if (a->stdio == NULL) {
    fprintf(stderr, "kiln: stdio: %s\n", err->msg);
    kiln_error_release(&err);
    mcp_server_free(a->server);
    return 1;
  }
  if (loop_run(a->loop, &err) < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    kiln_error_release(&err);
    a->exit_code = 1;
  }
  /* The client is gone or asked us to stop: every idle session is
     snapshotted, so that the next kiln serve on this KILN_HOME has them;
     then every worker is killed, so nothing outlives the server, and
     what is still queued is answered as it goes.  */
  hibernate_all(a);
  front_free(a->front);
  a->front = NULL;
  mcp_stdio_flush(a->stdio, 1000);
  mcp_stdio_free(a->stdio);
  mcp_server_free(a->server);
  return a->exit_code;
}

int
main(int argc, char **argv)
{
  struct app a = { 0 };
  kiln_error_t err = NULL;
  if (argc == 2 && strcmp(argv[1], ZYGOTE_COMMAND) == 0)
    zyg_exec_main();
  if (argc == 2 && strcmp(argv[1], COMPILER_COMMAND) == 0)
    cmp_exec_main();
  if (argc > 2 && strcmp(argv[1], INSTALLER_COMMAND) == 0)
    return pkg_install_main(argc, argv);
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
      || strcmp(argv[1], "help") == 0) {
    kiln_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("kiln %s (Python %s)\n", KILN_VERSION, emb_python_version());
    return 0;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "daemon") == 0)
    return daemon_cmd(argc - 2, argv + 2);
  if (strcmp(cmd, "jupyter") == 0) {
    if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
      jupyter_usage(argc < 3 ? stderr : stdout);
      return argc < 3 ? 2 : 0;
    }
    if (strcmp(argv[2], "install") == 0)
      return jupyter_install_main(argc - 3, argv + 3, check_serve_options);
    if (strcmp(argv[2], "kernel") != 0) {
      fprintf(stderr, "kiln jupyter: expected install or kernel, not '%s'\n\n", argv[2]);
      jupyter_usage(stderr);
      return 2;
    }
  }
  bool jupyter = strcmp(cmd, "jupyter") == 0;
  bool standalone = false;
  const char *connection_file = NULL;
  if (jupyter) {
    for (int j = 3; j < argc; j++)
      if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0) {
        jupyter_usage(stdout);
        return 0;
      }
    if ((connection_file = jupyter_take_connection_file(&argc, argv, 3)) == NULL)
      return 2;
    standalone = jupyter_take_flag(&argc, argv, 3, "--standalone");
  }
  bool use_daemon = (jupyter && !standalone)
                    || (strcmp(cmd, "serve") == 0 && jupyter_take_flag(&argc, argv, 2, "--daemon"));
  bool store_cmd = strcmp(cmd, "history") == 0 || strcmp(cmd, "cache") == 0;
  if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "run") != 0 && strcmp(cmd, "doctor") != 0
      && !store_cmd && !jupyter) {
    fprintf(stderr, "kiln: unknown command '%s'\n\n", cmd);
    kiln_usage(stderr);
    return 2;
  }
  if (config_init(&a.cfg, &err) < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    return 2;
  }
  const char *cache_what = NULL;
  if (strcmp(cmd, "cache") == 0) {
    if (argc < 3 || (strcmp(argv[2], "stats") != 0 && strcmp(argv[2], "clear") != 0)) {
      fprintf(stderr, "kiln cache: expected stats or clear\n");
      config_free(&a.cfg);
      return 2;
    }
    cache_what = argv[2];
  }
  /* A notebook's variables may not survive a snapshot (open files,
     sockets, generators): its session is not hibernated when idle unless
     the operator asks, by the flag or the environment.  */
  if (jupyter && getenv("KILN_IDLE_HIBERNATE") == NULL)
    a.cfg.idle_hibernate_s = JUPYTER_IDLE_HIBERNATE_S;
  /* A kernel holds one session.  On its own zygote one spare makes a
     restart instant, and more would only hold memory; on the daemon's,
     the daemon's spare serves whichever kernel asks first, and one of
     each kernel's own would double what each holds.  */
  if (jupyter && getenv("KILN_SPARES") == NULL)
    a.cfg.spares = standalone ? 1 : 0;
  int i = cache_what || jupyter ? 3 : 2;
  int parsed = parse_options(&a, cmd, argc, argv, &i);
  /* `kiln history SESSION --home DIR` as well as `kiln history --home DIR
     SESSION`: options may follow the session too (but not one after
     "--").  */
  const char *session = NULL;
  if (parsed == 0 && strcmp(cmd, "history") == 0 && i < argc) {
    bool dashes = strcmp(argv[i - 1], "--") == 0;
    session = argv[i++];
    if (!dashes)
      parsed = parse_options(&a, cmd, argc, argv, &i);
  }
  if (parsed != 0) {
    if (parsed > 0)
      kiln_usage(stdout);
    config_free(&a.cfg);
    return parsed > 0 ? 0 : 2;
  }
  log_setup(a.cfg.log_level, a.cfg.log_format);
  if (use_daemon && (a.cfg.daemon_socket = daemon_socket_path(&err)) == NULL) {
    fprintf(stderr, "kiln: the kiln daemon: %s\n", err->msg);
    kiln_error_release(&err);
    config_free(&a.cfg);
    return 1;
  }
  if (strcmp(cmd, "run") == 0) {
    if (i == argc) {
      fprintf(stderr, "kiln run: expected a script: FILE.py, or - to read it from standard "
                      "input\n");
      config_free(&a.cfg);
      return 2;
    }
    if (a.run_opts.keep && a.run_opts.workdir == NULL) {
      fprintf(stderr, "kiln run: --keep copies /work back into the --workdir DIR: give one "
                      "(--workdir . for the current directory)\n");
      config_free(&a.cfg);
      return 2;
    }
    a.run_opts.script = argv[i];
    a.run_opts.args = argv + i + 1;
    a.run_opts.nargs = argc - i - 1;
    /* Before anything is started or made under KILN_HOME: a script that
       cannot be read leaves nothing behind.  */
    a.run = run_prepare(&a.cfg, &a.run_opts, &err);
    if (a.run == NULL) {
      fprintf(stderr, "kiln run: %s\n", err->msg);
      kiln_error_release(&err);
      config_free(&a.cfg);
      return 2;
    }
  } else if (strcmp(cmd, "history") == 0 && i == argc) {
    int rc = store_cmd_main(cmd, &a.cfg, session);
    config_free(&a.cfg);
    return rc;
  } else if (i != argc) {
    fprintf(stderr, "kiln %s: unexpected argument '%s'\n", cmd, argv[i]);
    config_free(&a.cfg);
    return 2;
  } else if (cache_what) {
    int rc = store_cmd_main(cmd, &a.cfg, cache_what);
    config_free(&a.cfg);
    return rc;
  }
  /* A bad connection file is said before anything is started.  */
  struct jup_connection conn = { 0 };
  if (jupyter) {
    if (jup_connection_read(connection_file, &conn, &err) < 0) {
      fprintf(stderr, "kiln jupyter kernel: %s\n", err->msg);
      kiln_error_release(&err);
      config_free(&a.cfg);
      return 2;
    }
    a.jupyter_conn = &conn;
  }

  /* The jail is decided before anything is forked: a host that cannot
     build it gets a refusal, not an unisolated kernel, unless the
     operator said otherwise in so many words.  */
  struct sbx_config sbx = { .jail = !a.cfg.insecure_no_sandbox };
  a.cfg.sbx = &sbx;
  /* A front on the daemon tries the namespaces while it connects, opens
     the store and binds its ports (a kernel's start is mostly waiting on
     them); it serves nothing before the verdict, and its workers are
     the daemon's to fork.  */
  bool verdict_later = a.cfg.daemon_socket != NULL && strcmp(cmd, "doctor") != 0;
  int probed = verdict_later ? sbx_probe_begin(&sbx, &a.cfg, &a.probe, &err)
                             : sbx_probe(&sbx, &a.cfg, &err);
  if (strcmp(cmd, "doctor") == 0) {
    sbx.jail = true;
    int bad = sbx_doctor(&sbx, stdout);
    sbx_config_free(&sbx);
    config_free(&a.cfg);
    return bad ? 1 : 0;
  }
  if (probed < 0) {
    refuse_unsandboxed(err->msg);
    kiln_error_release(&err);
    run_free(a.run);
    jup_connection_free(&conn);
    sbx_config_free(&sbx);
    config_free(&a.cfg);
    return 1;
  }
  a.loop = loop_new(&err);
  if (a.loop)
    a.front = front_new(&a.cfg, a.loop, on_ready, &a, &err);
  if (a.front != NULL && !jupyter && probe_verdict(&a) < 0) {
    front_free(a.front);
    a.front = NULL;
    a.exit_code = 1;
  }
  if (a.front == NULL) {
    if (a.exit_code == 0)
      fprintf(stderr, "kiln: %s\n", err ? err->msg : "start-up failed");
    kiln_error_release(&err);
    (void)sbx_probe_end(&a.probe, &err);
    kiln_error_release(&err);
    if (a.loop)
      loop_free(a.loop);
    run_free(a.run);
    jup_connection_free(&conn);
    sbx_config_free(&sbx);
    config_free(&a.cfg);
    return 1;
  }
  int code = a.run ? run_script(&a) : jupyter ? serve_jupyter(&a) : serve(&a);
  loop_free(a.loop);
  run_free(a.run);
  jup_connection_free(&conn);
  sbx_config_free(&sbx);
  config_free(&a.cfg);
  return code;
}
