/* The embedding driver, in the manner of CPython's Programs/_testembed.c:
   a table of scenarios, each run in a process of its own, that start
   kiln's zygote the way the front does (exec of the kiln binary with its
   configuration in the first frame) and speak the frame protocol to it
   and to a worker directly, with no front, no MCP and no test client in
   between.

     embed KILN_BIN            run every scenario, each in a child
     embed KILN_BIN SCENARIO   run one, in this process

   A scenario that cannot run on this host (no sandbox here) says skip
   and why; meson counts exit status 77 as a skip.  */
#define _GNU_SOURCE
#include "config.h"
#include "frame.h"
#include "handoff.h"
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SKIP 77

static const char *kiln_bin;

static _Noreturn void
die(const char *what, kiln_error_t err)
{
  fprintf(stderr, "embed: %s: %s\n", what, err ? err->msg : strerror(errno));
  exit(1);
}

/* Starts a zygote for CFG; returns the socket and its pid in *PID.  */
static int
start_zygote(const struct kiln_config *cfg, pid_t *pid)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    die("socketpair", NULL);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, sv[1], ZYGOTE_FD);
  char *argv[] = { (char *)"kiln-zygote", (char *)ZYGOTE_COMMAND, NULL };
  int rc = posix_spawn(pid, kiln_bin, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    errno = rc;
    die("spawn the zygote", NULL);
  }
  close(sv[1]);
  struct fbuf fb;
  hof_encode(cfg, &fb);
  kiln_error_t err = NULL;
  if (frame_send(sv[0], &fb, NULL, 0, &err) < 0)
    die("send the configuration", err);
  fbuf_free(&fb);
  return sv[0];
}

/* Finishes FB, sends it on FD and frees it, failing the scenario (WHAT
   says which frame) on error.  */
static void
send_frame(int fd, struct fbuf *fb, const char *what)
{
  kiln_error_t err = NULL;
  fbuf_finish(fb);
  if (frame_send(fd, fb, NULL, 0, &err) < 0)
    die(what, err);
  fbuf_free(fb);
}

/* Receives one frame from FD into F (payload in *BUF, freed by the
   caller), failing the scenario on error.  */
static void
recv_frame(int fd, struct frame *f, uint8_t **buf)
{
  kiln_error_t err = NULL;
  if (frame_recv(fd, f, buf, 64u << 20, &err) < 0)
    die("receive a frame", err);
}

static void
setup(struct kiln_config *cfg, struct sbx_config *sbx, bool jail)
{
  kiln_error_t err = NULL;
  char home[] = "/tmp/kiln-embed.XXXXXX";
  if (mkdtemp(home) == NULL)
    die("mkdtemp", NULL);
  setenv("KILN_HOME", home, 1);
  if (config_init(cfg, &err) < 0)
    die("config", err);
  cfg->preload = xstrdup("json,kiln_no_such_module");
  *sbx = (struct sbx_config){ .jail = jail };
  cfg->sbx = sbx;
  if (sbx_probe(sbx, cfg, &err) < 0) {
    printf("skip: no sandbox on this host: %s\n", err->msg);
    exit(SKIP);
  }
}

/* Kills what a scenario started and removes the cgroups it made.  */
static void
finish(struct sbx_config *sbx, pid_t init, pid_t zygote)
{
  kill(init, SIGKILL);
  kill(zygote, SIGKILL);
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
    ;
  for (int i = 0; i < 100 && sbx->cg.version && cg_session_remove(&sbx->cg, "embed") < 0; i++)
    usleep(10000);
  sbx_config_free(sbx);
}

static int
expect_ready(int z)
{
  struct frame f;
  uint8_t *buf = NULL;
  recv_frame(z, &f, &buf);
  cleanup_free char *failed = NULL;
  kiln_error_t err = NULL;
  if (f.type != FRAME_ZYGOTE_READY
      || frame_get_str(&f, TAG_PRELOAD_FAILED, false, &failed, NULL, &err) < 0) {
    fprintf(stderr, "embed: expected ZYGOTE_READY, got type %u\n", f.type);
    return 1;
  }
  free(buf);
  if (strstr(failed, "kiln_no_such_module") == NULL) {
    fprintf(stderr, "embed: the missing module is not reported: '%s'\n", failed);
    return 1;
  }
  return 0;
}

/* The zygote starts though a module of its preload list is missing, and
   names it.  */
static int
zygote_start_with_missing_preload(void)
{
  struct kiln_config cfg;
  struct sbx_config sbx;
  setup(&cfg, &sbx, false);
  pid_t pid;
  int z = start_zygote(&cfg, &pid);
  int rc = expect_ready(z);
  kill(pid, SIGKILL);
  return rc;
}

/* Asks Z for a worker; returns its control socket (the worker jailed and
   ready) and the pid of its init in *INIT.  */
static int
spawn_worker(int z, const struct sbx_config *sbx, pid_t *init)
{
  kiln_error_t cerr = NULL;
  if (sbx->cg.version && cg_session_create(&sbx->cg, "embed", &sbx->cg_limits, &cerr) < 0)
    die("cgroups", cerr);
  struct fbuf fb;
  fbuf_init(&fb, FRAME_SPAWN);
  fbuf_put_str(&fb, TAG_SESSION_ID, "embed");
  fbuf_put_u64(&fb, TAG_UID, 200999);
  send_frame(z, &fb, "send SPAWN");
  kiln_error_t err = NULL;
  struct frame f;
  uint8_t *buf = NULL;
  recv_frame(z, &f, &buf);
  uint64_t pid = 0;
  if (f.type != FRAME_SPAWNED || f.nfds != 4 || frame_get_u64(&f, TAG_PID, false, &pid, &err) < 0) {
    cleanup_free char *msg = NULL;
    frame_get_str(&f, TAG_MESSAGE, true, &msg, NULL, &err);
    fprintf(stderr, "embed: no worker: type %u: %s\n", f.type, msg ? msg : "");
    exit(1);
  }
  free(buf);
  *init = (pid_t)pid;
  for (size_t i = 1; i < f.nfds; i++)
    close(f.fds[i]);
  int ctl = f.fds[0];
  recv_frame(ctl, &f, &buf);
  if (f.type != FRAME_WORKER_READY) {
    cleanup_free char *msg = NULL;
    frame_get_str(&f, TAG_MESSAGE, true, &msg, NULL, &err);
    fprintf(stderr, "embed: the worker did not start: %s\n", msg ? msg : "");
    exit(1);
  }
  free(buf);
  return ctl;
}

/* This process as the front would be (a child subreaper), a zygote, and
   one jailed worker from it: returns the worker's control socket, the
   zygote's pid in *PID and the worker's init in *INIT; -1 when the zygote
   did not come up as expected.  */
static int
jailed_worker(struct kiln_config *cfg, struct sbx_config *sbx, pid_t *pid, pid_t *init)
{
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    die("subreaper", NULL);
  setup(cfg, sbx, true);
  int z = start_zygote(cfg, pid);
  if (expect_ready(z))
    return -1;
  return spawn_worker(z, sbx, init);
}

/* A worker is forked, jailed (its init is a child of this process, the
   subreaper, in a pid namespace of its own) and says it is ready.  */
static int
worker_forked_and_jailed(void)
{
  struct kiln_config cfg;
  struct sbx_config sbx;
  pid_t pid, init;
  int ctl = jailed_worker(&cfg, &sbx, &pid, &init);
  if (ctl < 0)
    return 1;
  /* The init lives in a pid namespace of its own: its ns link differs.  */
  cleanup_free char *mine = xasprintf("/proc/self/ns/pid"),
                    *its = xasprintf("/proc/%d/ns/pid", init);
  char a[64] = "", b[64] = "";
  if (readlink(mine, a, sizeof a - 1) < 0 || readlink(its, b, sizeof b - 1) < 0
      || strcmp(a, b) == 0) {
    fprintf(stderr, "embed: the worker's init shares our pid namespace (%s, %s)\n", a, b);
    return 1;
  }
  close(ctl);
  finish(&sbx, init, pid);
  return 0;
}

/* A cell runs in the worker and its last expression comes back.  */
static int
cell_run(void)
{
  struct kiln_config cfg;
  struct sbx_config sbx;
  pid_t pid, init;
  int ctl = jailed_worker(&cfg, &sbx, &pid, &init);
  if (ctl < 0)
    return 1;
  struct fbuf fb;
  fbuf_init(&fb, FRAME_EXEC);
  fbuf_put_str(&fb, TAG_CODE, "import json\njson.dumps([6 * 7])");
  fbuf_put_u64(&fb, TAG_CELL_NO, 1);
  send_frame(ctl, &fb, "send EXEC");
  kiln_error_t err = NULL;
  struct frame f;
  uint8_t *buf = NULL;
  recv_frame(ctl, &f, &buf);
  cleanup_free char *result = NULL;
  uint64_t status = 99;
  if (f.type != FRAME_DONE || frame_get_u64(&f, TAG_STATUS, false, &status, &err) < 0
      || frame_get_str(&f, TAG_RESULT, false, &result, NULL, &err) < 0 || status != 0
      || strcmp(result, "'[42]'") != 0) {
    fprintf(stderr, "embed: the cell's reply: type %u status %llu result %s\n", f.type,
            (unsigned long long)status, result ? result : "(none)");
    return 1;
  }
  free(buf);
  close(ctl);
  finish(&sbx, init, pid);
  return 0;
}

static const struct scenario {
  const char *name;
  int (*fn)(void);
} scenarios[] = {
  { "zygote_start_with_missing_preload", zygote_start_with_missing_preload },
  { "worker_forked_and_jailed", worker_forked_and_jailed },
  { "cell_run", cell_run },
};

int
main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: embed KILN_BIN [SCENARIO]\n");
    return 2;
  }
  kiln_bin = argv[1];
  if (argc == 3) {
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
      if (strcmp(scenarios[i].name, argv[2]) == 0)
        return scenarios[i].fn();
    fprintf(stderr, "embed: no scenario '%s'\n", argv[2]);
    return 2;
  }
  int failed = 0, skipped = 0;
  for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      char *args[] = { argv[0], argv[1], (char *)scenarios[i].name, NULL };
      execv("/proc/self/exe", args);
      _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    printf("%s %s\n", code == 0 ? "ok  " : code == SKIP ? "skip" : "FAIL", scenarios[i].name);
    failed += code != 0 && code != SKIP;
    skipped += code == SKIP;
  }
  return failed ? 1 : skipped == sizeof scenarios / sizeof scenarios[0] ? SKIP : 0;
}
