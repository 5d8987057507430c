/* kiln's command line: `kiln serve` (MCP over stdio), `kiln run FILE.py`,
   --help, --version.  */
#define _GNU_SOURCE
#include "config.h"
#include "embed.h"
#include "handoff.h"
#include "log.h"
#include "zygote.h"
#include "kiln.h"
#include "loop.h"
#include "sandbox.h"
#include "paths.h"
#include "util.h"
#include "server.h"
#include "transport/stdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char usage_head[]
    = "Usage: kiln serve [OPTIONS]        serve MCP over stdio (for an MCP client's config)\n"
      "       kiln run [OPTIONS] FILE.py  run a script in a fresh session and print its output\n"
      "       kiln doctor [OPTIONS]       show which protections this host supports\n"
      "       kiln --help | --version\n"
      "\n"
      "kiln runs Python in persistent sessions, each in its own worker process forked\n"
      "from a zygote that has numpy, matplotlib, PIL and pandas already imported.\n"
      "\n"
      "Options (each also read from the environment variable shown; flags win):\n";
static const char usage_tail[]
    = "\n"
      "kiln run exits with 0 when the script succeeds, 1 when it raises, the code passed\n"
      "to sys.exit(), 124 when it is interrupted at its deadline, 137 when it had to be\n"
      "killed, and 70 when its worker crashed.\n";

static void
usage(FILE *out)
{
  fputs(usage_head, out);
  config_print_help(out);
  fputs(usage_tail, out);
}

struct app {
  struct kiln_config cfg;
  struct loop *loop;
  struct front *front;
  struct mcp_stdio *stdio;
  struct mcp_server *server;
  int exit_code;
  const char *script;
};

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
  if (a->script)
    return;
  cleanup_free char *protections = sbx_describe(a->cfg.sbx);
  size_t npackages = 0;
  for (const char *p = info->packages; *p; p += strcspn(p, ","), p += *p == ',')
    npackages++;
  fprintf(stderr, "kiln %s: Python %.*s, preloaded: %s%s%s; %zu packages; protections: %s\n",
          KILN_VERSION, (int)strcspn(info->python_version, " "), info->python_version,
          info->preloaded[0] ? info->preloaded : "nothing",
          info->preload_failed[0] ? "; not loaded: " : "", info->preload_failed, npackages,
          protections);
  log_msg(LOG_DEBUG, "packages: %s", info->packages);
}

/* The client is finished with: its input ended and every request it
   sent was answered.  */
static void
on_eof(void *ctx)
{
  struct app *a = ctx;
  loop_stop(a->loop);
}

/* Parses "--key value" / "--key=value" options from ARGV[*I] onwards,
   stopping at the first non-option.  */
static int
parse_options(struct app *a, int argc, char **argv, int *i)
{
  kiln_error_t err = NULL;
  for (; *i < argc; (*i)++) {
    char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0)
      break;
    if (strcmp(arg, "--") == 0) {
      (*i)++;
      break;
    }
    char *key = arg + 2, *value;
    char *eq = strchr(key, '=');
    cleanup_free char *k = NULL;
    if (eq) {
      k = xstrndup(key, (size_t)(eq - key));
      value = eq + 1;
    } else if (config_is_flag(key)) {
      k = xstrdup(key);
      value = "1";
    } else {
      if (*i + 1 >= argc) {
        fprintf(stderr, "kiln: --%s needs a value\n", key);
        return -1;
      }
      k = xstrdup(key);
      value = argv[++(*i)];
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
serve(struct app *a)
{
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
  /* The client is gone or asked us to stop: kill every worker first, so
     nothing outlives the server, then say what is still queued (the
     front answers it as it goes).  */
  front_free(a->front);
  a->front = NULL;
  mcp_stdio_flush(a->stdio, 1000);
  mcp_stdio_free(a->stdio);
  mcp_server_free(a->server);
  return a->exit_code;
}

static void
on_script_done(void *ctx, const struct cell_reply *r)
{
  struct app *a = ctx;
  fwrite(r->out, 1, r->out_len, stdout);
  fflush(stdout);
  fwrite(r->err, 1, r->err_len, stderr);
  if (r->err_type) {
    if (r->err_traceback && r->err_traceback[0])
      fputs(r->err_traceback, stderr);
    else
      fprintf(stderr, "%s: %s\n", r->err_type, r->err_message ? r->err_message : "");
    if (r->notice)
      fprintf(stderr, "kiln: %s\n", r->notice);
  }
  int code;
  switch (r->status) {
  case REPLY_OK:
    code = 0;
    break;
  case REPLY_INTERRUPTED:
    code = 124;
    break;
  case REPLY_KILLED:
    code = 137;
    break;
  case REPLY_CRASHED:
    code = 70;
    break;
  default:
    code = 1;
    /* A script's own exit status: the worker's message for a failing
       SystemExit starts with it (a successful one is REPLY_OK).  */
    if (r->err_type && strcmp(r->err_type, "SystemExit") == 0 && r->err_message
        && sscanf(r->err_message, "exit status %d:", &code) != 1)
      code = 1;
  }
  a->exit_code = code;
  loop_stop(a->loop);
}

static int
run_script(struct app *a)
{
  kiln_error_t err = NULL;
  cleanup_close int fd = open(a->script, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    fprintf(stderr, "kiln: %s: %s\n", a->script, strerror(errno));
    return 2;
  }
  if (!S_ISREG(st.st_mode) || (size_t)st.st_size > a->cfg.max_code) {
    fprintf(stderr, "kiln: %s: not a regular file of at most %zu bytes (--max-code)\n", a->script,
            a->cfg.max_code);
    return 2;
  }
  cleanup_free char *code = xmalloc((size_t)st.st_size + 1);
  if (read_full(fd, code, (size_t)st.st_size) < 0) {
    fprintf(stderr, "kiln: %s: %s\n", a->script, strerror(errno));
    return 2;
  }
  if (front_run_cell(a->front, NULL, code, (size_t)st.st_size, 0, on_script_done, a, &err) < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    kiln_error_release(&err);
    return 2;
  }
  a->exit_code = 1;
  if (loop_run(a->loop, &err) < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    kiln_error_release(&err);
  }
  front_free(a->front);
  a->front = NULL;
  return a->exit_code;
}

int
main(int argc, char **argv)
{
  struct app a = { 0 };
  kiln_error_t err = NULL;
  if (argc == 2 && strcmp(argv[1], ZYGOTE_COMMAND) == 0)
    zyg_exec_main();
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
      || strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("kiln %s (Python %s)\n", KILN_VERSION, emb_python_version());
    return 0;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "run") != 0 && strcmp(cmd, "doctor") != 0) {
    fprintf(stderr, "kiln: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
  }
  if (config_init(&a.cfg, &err) < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    return 2;
  }
  int i = 2;
  if (parse_options(&a, argc, argv, &i) < 0)
    return 2;
  log_setup(a.cfg.log_level, a.cfg.log_format);
  if (strcmp(cmd, "run") == 0) {
    if (i != argc - 1) {
      fprintf(stderr, "kiln run: expected exactly one FILE.py\n");
      return 2;
    }
    a.script = argv[i];
  } else if (i != argc) {
    fprintf(stderr, "kiln %s: unexpected argument '%s'\n", cmd, argv[i]);
    return 2;
  }

  /* The jail is decided before anything is forked: a host that cannot
     build it gets a refusal, not an unisolated kernel, unless the
     operator said otherwise in so many words.  */
  struct sbx_config sbx = { .jail = !a.cfg.insecure_no_sandbox };
  a.cfg.sbx = &sbx;
  int probed = sbx_probe(&sbx, &a.cfg, &err);
  if (strcmp(cmd, "doctor") == 0) {
    sbx.jail = true;
    int bad = sbx_doctor(&sbx, stdout);
    sbx_config_free(&sbx);
    config_free(&a.cfg);
    return bad ? 1 : 0;
  }
  if (probed < 0) {
    fprintf(stderr,
            "kiln: cannot sandbox workers on this host: %s\n"
            "kiln: run `kiln doctor` for details; to run cells WITHOUT isolation anyway, pass "
            "--insecure-no-sandbox\n",
            err->msg);
    return 1;
  }
  a.loop = loop_new(&err);
  if (a.loop)
    a.front = front_new(&a.cfg, a.loop, on_ready, &a, &err);
  if (a.front == NULL) {
    fprintf(stderr, "kiln: %s\n", err ? err->msg : "start-up failed");
    return 1;
  }
  int code = a.script ? run_script(&a) : serve(&a);
  loop_free(a.loop);
  sbx_config_free(&sbx);
  config_free(&a.cfg);
  return code;
}
