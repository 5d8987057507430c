/* run_shell: a shell command run in a session's sandbox, beside its
   Python cells, answered as a cell is (tools_cell_result) with the
   command's exit status or signal.  Its description names the programs
   the session's read-only root holds, looked for once at start-up.  */
#define _GNU_SOURCE
#include "tools.h"
#include "conn.h"
#include "owners.h"
#include "util.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char run_shell_description[]
    = "Run a shell command (bash -c COMMAND) in a sandboxed session, the same one run_python's "
      "cells run in: same files, same limits, no network. It starts in /work (or workdir, a "
      "directory under /work), sees the files the cells wrote there, and the cells see what it "
      "writes; python, python3 and pip are the session's own. Omit session_id to start a new "
      "session; the reply's first line names it: [session ID \xc2\xb7 command N \xc2\xb7 T ms]. "
      "stdout, stderr, the exit status (or the signal that ended it) come back as for run_python, "
      "long output cut to its head and tail. Commands of a session run one at a time, between its "
      "cells. A command that runs past timeout_s gets SIGINT (its whole process group), and "
      "SIGKILL if it does not stop; the session and its Python variables are kept either way. "
      "There is no terminal and no stdin: interactive programs will not work.";

static const char run_shell_input[]
    = "{"
      "\"type\":\"object\","
      "\"properties\":{"
      "\"command\":{\"type\":\"string\",\"description\":\"The command line, run as bash -c "
      "COMMAND.\"},"
      "\"session_id\":{\"type\":\"string\",\"description\":\"A session_id from an earlier reply; "
      "omit to start a new session.\"},"
      "\"timeout_s\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"description\":\"Wall-clock "
      "limit for this command in seconds.\"},"
      "\"workdir\":{\"type\":\"string\",\"description\":\"The directory to run in, relative to "
      "/work (e.g. \\\"data/raw\\\"); default /work.\"}"
      "},"
      "\"required\":[\"command\"],"
      "\"additionalProperties\":false"
      "}";

static const char run_shell_output[]
    = "{"
      "\"type\":\"object\","
      "\"properties\":{"
      "\"session_id\":{\"type\":\"string\"},"
      "\"status\":{\"type\":\"string\",\"enum\":[\"ok\",\"error\",\"interrupted\",\"killed\","
      "\"crashed\"],\"description\":\"ok: exit status 0; error: another status, a signal of its "
      "own, or it could not start; interrupted: stopped by SIGINT at its deadline; killed: "
      "SIGKILLed after the grace.\"},"
      "\"exit_code\":{\"type\":[\"integer\",\"null\"],\"description\":\"The command's exit "
      "status; null when a signal ended it.\"},"
      "\"signal\":{\"type\":[\"string\",\"null\"],\"description\":\"The signal that ended it "
      "(\\\"SIGINT\\\", \\\"SIGKILL\\\", ...), or null.\"},"
      "\"execution_count\":{\"type\":\"integer\"},"
      "\"result\":{\"type\":[\"string\",\"null\"]},"
      "\"stdout\":{\"type\":\"string\",\"description\":\"The whole stdout when it is at most "
      "4096 bytes; otherwise read stdout_uri.\"},"
      "\"stderr\":{\"type\":\"string\"},"
      "\"stdout_bytes\":{\"type\":\"integer\"},"
      "\"stderr_bytes\":{\"type\":\"integer\"},"
      "\"stdout_uri\":{\"type\":\"string\"},"
      "\"stderr_uri\":{\"type\":\"string\"},"
      "\"stdout_dropped\":{\"type\":\"integer\"},"
      "\"stderr_dropped\":{\"type\":\"integer\"},"
      "\"error\":{\"type\":[\"object\",\"null\"]},"
      "\"new_session\":{\"type\":\"boolean\"},"
      "\"state_lost\":{\"type\":\"boolean\"},"
      "\"notice\":{\"type\":[\"string\",\"null\"]},"
      "\"duration_ms\":{\"type\":\"number\"},"
      "\"artifacts\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
      "\"display\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
      "\"files\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}"
      "},"
      "\"required\":[\"session_id\",\"status\",\"exit_code\",\"signal\",\"execution_count\","
      "\"stdout_bytes\",\"stderr_bytes\",\"stdout_dropped\",\"stderr_dropped\",\"error\","
      "\"new_session\",\"state_lost\",\"notice\",\"duration_ms\"]"
      "}";

/* Programs worth naming to a model, as NAME or "NAME=what it stands
   for" (the first program of a package).  */
static const char *const programs[] = {
  "bash",
  "ls=coreutils (ls, cat, cp, mv, rm, mkdir, head, tail, sort, uniq, wc, cut, tr, tee, ...)",
  "grep",
  "sed",
  "awk",
  "find",
  "xargs",
  "diff",
  "patch",
  "tar",
  "gzip",
  "bzip2",
  "xz",
  "zip",
  "unzip",
  "file",
  "jq",
  "sqlite3",
  "git",
  "make",
  "gcc",
  "perl",
  "node",
  "npm",
};

/* The trees the sandbox's root binds from the host (kernel/jail/mounts.c):
   a program whose real path is elsewhere is not there.  */
static const char *const bound[] = { "/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/" };

/* Whether NAME is on the session's PATH: in one of its directories, and
   really (every symlink followed) in a tree the sandbox binds.  */
static bool
present(const char *name)
{
  static const char *const dirs[] = { "/usr/local/bin", "/usr/bin", "/bin" };
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    cleanup_free char *path = xasprintf("%s/%s", dirs[i], name);
    if (access(path, X_OK) < 0)
      continue;
    char real[PATH_MAX];
    if (realpath(path, real) == NULL)
      continue;
    for (size_t k = 0; k < sizeof bound / sizeof bound[0]; k++)
      if (strncmp(real, bound[k], strlen(bound[k])) == 0)
        return true;
  }
  return false;
}

const char *
tools_run_shell_description(void)
{
  /* Looked for once: the host's programs do not change under a running
     server, and tools/list is asked often.  Kept for the process's
     life.  */
  static char *description;
  if (description)
    return description;
  struct buf list = { 0 };
  for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
    const char *eq = strchr(programs[i], '=');
    cleanup_free char *name
        = eq ? xstrndup(programs[i], (size_t)(eq - programs[i])) : xstrdup(programs[i]);
    if (!present(name))
      continue;
    const char *shown = eq ? eq + 1 : programs[i];
    if (list.len)
      buf_append(&list, ", ", 2);
    buf_append(&list, shown, strlen(shown));
  }
  buf_append(&list, "", 1);
  description = list.len > 1 ? xasprintf("%s\n\nPrograms on PATH: %s; python, python3, pip.",
                                         run_shell_description, (const char *)list.data)
                             : xstrdup(run_shell_description);
  buf_free(&list);
  return description;
}

static void
on_shell_reply(void *ctx, const struct cell_reply *r)
{
  struct run_pending *p = ctx;
  if (r->new_session)
    mcp_owner_claim(p->base.conn, r->session_id);
  /* A command cut short by the front (its worker lost, its session
     closed) is answered with a cell's reply: it is still a command's,
     with no status of its own.  */
  struct cell_reply shown = *r;
  if (!r->shell) {
    shown.shell = true;
    shown.exit_code = -1;
    shown.signal = 0;
  }
  mcp_answer(&p->base, tools_cell_result(&shown, p->max_reply));
}

static int
run_shell(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  (void)result;
  const char *session_id, *workdir;
  if (tools_arg_name(args, "session_id", &session_id, err) < 0
      || tools_arg_name(args, "workdir", &workdir, err) < 0
      || mcp_owner_check(c->conn, session_id, true, err) < 0)
    return -1;
  json_t *cmd = json_object_get(args, "command");
  json_t *t = tools_arg(args, "timeout_s");
  double timeout = t ? json_number_value(t) : 0;
  if (t && !isfinite(timeout))
    return kiln_error_make(err, 0, "argument 'timeout_s' must be a finite number of seconds");
  struct run_pending *p = mcp_defer(c, sizeof *p, MCP_TOOL_ERROR);
  p->base.release = tools_run_release;
  p->max_reply = c->server->cfg->max_reply;
  int64_t h = front_run_shell(c->server->front, session_id, json_string_value(cmd),
                              json_string_length(cmd), workdir, timeout, on_shell_reply, p, err);
  tools_run_watch(c, h, p);
  return mcp_started(&p->base, h);
}

const struct mcp_tool tool_run_shell = {
  "run_shell", "Run a shell command", run_shell_description, run_shell_input, run_shell_output,
  run_shell,   MCP_TOOL_DESTRUCTIVE,
};
