#define _GNU_SOURCE
/* The front's counters, read through front_metrics while a real front
   runs cells that end every way a test can make them end, with a real
   zygote and jailed workers.  The front starts its zygote by exec of
   /proc/self/exe, which is this program: called as the zygote, it execs
   the kiln binary given as its argument instead.

     test_front_metrics KILN_BIN

   It needs the jail: without one the worker's init does not relay the
   deadline's SIGINT (it takes a signal with a sender for one from
   inside the namespace), so no cell could end interrupted.  OOM kills
   are checked only where the jail has cgroups.  Not covered:
   FRONT_CELL_NOT_STARTED, a worker that cannot start.

   The loop cannot be run twice, so the test is a chain: each reply
   checks what its cell did to the counters and starts the next cell.  */
#include "check.h"
#include "front_harness.h"
#include "kiln.h"
#include "util.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

enum step {
  FIRST,        /* 1 + 1 in a new session A */
  RAISES,       /* 1/0 */
  INTERRUPTED,  /* sleeps past its deadline */
  KILLED,       /* ignores the interrupt */
  CRASHES,      /* os._exit */
  OOM,          /* past the session's memory limit, where there are cgroups */
  OTHER,        /* 2 + 2 in a new session C, while A is lost */
  FIGURE,       /* a matplotlib figure, stored as an artifact */
  AFTER_CANCEL, /* behind a cancelled running cell and a cancelled queued one */
  CLOSED,       /* the cells of session B, closed under them */
};

static struct {
  struct front *f;
  struct loop *loop;
  char a[40], b[40], c[40];
  uint64_t accepted; /* cells front_run_cell took */
  uint64_t reached;  /* of which reached a worker */
  int64_t cancel_me;
  bool b_running; /* B's first cell was running when B was closed */
  int closed_replies;
  bool cgroups;
  bool finished;
} T;

static void on_reply(void *ctx, const struct cell_reply *r);

static int64_t
run(const char *session, const char *code, double timeout_s, enum step step)
{
  kiln_error_t err = NULL;
  int64_t h = front_run_cell(T.f, session, code, strlen(code), timeout_s, on_reply,
                             (void *)(intptr_t)step, &err);
  CHECK(h > 0);
  if (h < 0) {
    fprintf(stderr, "front_run_cell: %s\n", err->msg);
    kiln_error_release(&err);
    loop_stop(T.loop);
  } else
    T.accepted++;
  return h;
}

static struct front_metrics
metrics(void)
{
  struct front_metrics m;
  front_metrics(T.f, &m);
  return m;
}

/* A session opened since the ids in T were recorded.  */
static void
newest_session(char *out)
{
  size_t n;
  struct session_info *v = front_list_sessions(T.f, &n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].session_id, T.a) != 0 && strcmp(v[i].session_id, T.b) != 0
        && strcmp(v[i].session_id, T.c) != 0)
      snprintf(out, 40, "%s", v[i].session_id);
  free(v);
}

static const char *
state_of(const char *id)
{
  size_t n;
  const char *state = "gone";
  struct session_info *v = front_list_sessions(T.f, &n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].session_id, id) == 0)
      state = v[i].state;
  free(v);
  return state;
}

static void
histogram_is_consistent(const struct histogram *h)
{
  for (size_t i = 1; i < h->nbounds; i++)
    CHECK(h->le[i - 1] <= h->le[i]);
  CHECK(h->nbounds == 0 || h->le[h->nbounds - 1] <= h->count);
}

static void
on_output(void *ctx, int stream, const char *data, size_t len, uint64_t skipped)
{
  /* The cell is running for sure once it printed: cancel it now, so
     that the interrupt is not for a cell that has not begun.  */
  if (T.cancel_me > 0 && memmem(data, len, "go", 2)) {
    front_cancel(T.f, T.cancel_me);
    T.cancel_me = 0;
  }
}

static void
finish(void)
{
  struct front_metrics m = metrics();
  uint64_t total = 0;
  for (size_t i = 0; i < FRONT_CELL_OUTCOMES; i++)
    total += m.cells[i];
  /* Every accepted cell ended exactly one way.  */
  CHECK(total == T.accepted);
  CHECK(m.cells[FRONT_CELL_OK] == 4);
  CHECK(m.cells[FRONT_CELL_ERROR] == 1);
  CHECK(m.cells[FRONT_CELL_INTERRUPTED] == 1);
  CHECK(m.cells[FRONT_CELL_KILLED] == 1);
  CHECK(m.cells[FRONT_CELL_CRASHED] == 1u + T.cgroups);
  CHECK(m.cells[FRONT_CELL_NOT_STARTED] == 0);
  /* Only the cells that reached a worker have a duration.  */
  CHECK(m.cell_seconds.count == T.reached);
  histogram_is_consistent(&m.cell_seconds);
  histogram_is_consistent(&m.spawn_seconds);
  /* Without cgroups nothing can be told.  */
  CHECK(T.cgroups ? m.oom_kills >= 1 : m.oom_kills == 0);
  /* A cell that reached a worker once the compile helper was ready is
     a hit or a miss; one before then is neither.  */
  CHECK(m.code_cache_hits + m.code_cache_misses <= T.reached);
  CHECK(m.sessions_hibernated == 0);
  T.finished = true;
  loop_stop(T.loop);
}

static void
on_reply(void *ctx, const struct cell_reply *r)
{
  enum step step = (enum step)(intptr_t)ctx;
  struct front_metrics m = metrics();
  switch (step) {
  case FIRST:
    CHECK(r->status == REPLY_OK);
    snprintf(T.a, sizeof T.a, "%s", r->session_id);
    T.reached++;
    CHECK(m.sessions_created == 1);
    CHECK(m.sessions_live == 1 && m.sessions_lost == 0);
    CHECK(m.cells[FRONT_CELL_OK] == 1);
    CHECK(m.cell_seconds.count == 1 && m.cell_seconds.sum > 0);
    /* A's worker said READY before its cell could run.  */
    CHECK(m.spawn_seconds.count >= 1 && m.spawn_seconds.sum > 0);
    run(T.a, "1/0", 0, RAISES);
    return;
  case RAISES:
    CHECK(r->status == REPLY_ERROR);
    T.reached++;
    CHECK(m.cells[FRONT_CELL_ERROR] == 1 && m.cells[FRONT_CELL_OK] == 1);
    run(T.a, "import time\ntime.sleep(30)\n", 1, INTERRUPTED);
    return;
  case INTERRUPTED:
    CHECK(r->status == REPLY_INTERRUPTED);
    T.reached++;
    CHECK(m.cells[FRONT_CELL_INTERRUPTED] == 1);
    CHECK(m.cell_seconds.sum >= 1);
    run(T.a,
        "import time\nwhile True:\n    try:\n        time.sleep(30)\n"
        "    except KeyboardInterrupt:\n        pass\n",
        0.3, KILLED);
    return;
  case KILLED:
    CHECK(r->status == REPLY_KILLED);
    T.reached++;
    CHECK(m.cells[FRONT_CELL_KILLED] == 1 && m.cells[FRONT_CELL_INTERRUPTED] == 1);
    /* The deadline and the grace after it.  */
    CHECK(m.cell_seconds.sum >= 1 + 0.3 + 0.5);
    run(T.a, "import os\nos._exit(3)\n", 0, CRASHES);
    return;
  case CRASHES:
    CHECK(r->status == REPLY_CRASHED);
    T.reached++;
    CHECK(m.cells[FRONT_CELL_CRASHED] == 1);
    CHECK(m.oom_kills == 0);
    if (T.cgroups)
      run(T.a, "b = bytearray(2 << 30)\n", 0, OOM);
    else
      run(NULL, "2 + 2", 0, OTHER);
    return;
  case OOM:
    CHECK(r->status == REPLY_CRASHED);
    T.reached++;
    CHECK(m.cells[FRONT_CELL_CRASHED] == 2);
    CHECK(m.oom_kills >= 1);
    run(NULL, "2 + 2", 0, OTHER);
    return;
  case OTHER:
    CHECK(r->status == REPLY_OK);
    T.reached++;
    snprintf(T.c, sizeof T.c, "%s", r->session_id);
    CHECK(strcmp(state_of(T.a), "lost") == 0);
    CHECK(m.sessions_lost == 1 && m.sessions_live == 1);
    CHECK(m.sessions_created == 2);
    /* A's first worker, the one after the kill, and C's.  */
    CHECK(m.spawn_seconds.count >= 3);
    run(T.a, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n", 30, FIGURE);
    return;
  case FIGURE:
    CHECK(r->status == REPLY_OK);
    T.reached++;
    CHECK(r->noutputs == 1);
    CHECK(m.artifact_bytes > 0);
    if (r->noutputs == 1)
      CHECK(m.artifact_bytes == r->outputs[0].len);
    CHECK(m.sessions_live == 2 && m.sessions_lost == 0);
    /* Cancelled while it runs, once it has printed; cancelled while it
       waits; then one that ends the step.  */
    T.cancel_me
        = run(T.a, "import time\nprint('go', flush=True)\ntime.sleep(30)\n", 30, AFTER_CANCEL);
    T.reached++;
    CHECK(front_watch_output(T.f, T.cancel_me, 0, 4096, on_output, NULL) == 0);
    front_cancel(T.f, run(T.a, "3 + 3", 0, AFTER_CANCEL));
    run(T.a, "4 + 4", 0, AFTER_CANCEL);
    /* Session B, to be closed under a running and a queued cell.  */
    run(NULL, "import time\ntime.sleep(30)\n", 30, CLOSED);
    newest_session(T.b);
    run(T.b, "5 + 5", 0, CLOSED);
    return;
  case AFTER_CANCEL: {
    /* Only 4 + 4 is answered: a cancelled cell's reply goes nowhere.  */
    CHECK(r->status == REPLY_OK && r->result && strcmp(r->result, "8") == 0);
    T.reached++;
    CHECK(m.cells[FRONT_CELL_CANCELLED] == 2);
    CHECK(m.cells[FRONT_CELL_OK] == 4);
    T.b_running = strcmp(state_of(T.b), "running") == 0;
    T.reached += T.b_running;
    kiln_error_t err = NULL;
    CHECK(front_close_session(T.f, T.b, &err) == 0);
    CHECK(T.closed_replies == 2);
    m = metrics();
    CHECK(m.cells[FRONT_CELL_CLOSED] == 2);
    CHECK(m.sessions_created == 3 && m.sessions_live == 2);
    finish();
    return;
  }
  case CLOSED:
    CHECK(r->status == REPLY_ERROR && r->err_type && strcmp(r->err_type, "SessionClosed") == 0);
    T.closed_replies++;
    return;
  }
}

static void
on_ready(void *ctx, const struct front_info *info, kiln_error_t err)
{
  CHECK(err == NULL);
  if (err) {
    fprintf(stderr, "the zygote did not start: %s\n", err->msg);
    loop_stop(T.loop);
    return;
  }
  struct front_metrics m = metrics();
  CHECK(m.sessions_live == 0 && m.sessions_created == 0 && m.spares == 1);
  for (size_t i = 0; i < FRONT_CELL_OUTCOMES; i++)
    CHECK(m.cells[i] == 0);
  CHECK(m.cell_seconds.count == 0 && m.artifact_bytes == 0);
  run(NULL, "1 + 1", 0, FIRST);
}

int
main(int argc, char **argv)
{
  harness_exec_kiln(argc, argv);
  setenv("KILN_SPARES", "1", 1);
  setenv("KILN_GRACE", "0.5", 1);
  setenv("KILN_MEMORY", "512M", 1);
  /* Unjailed, the worker's init does not relay the deadline's SIGINT:
     no cell could end interrupted.  */
  struct harness h;
  int rc = harness_begin(&h, argc, argv, "metrics", HARNESS_JAIL_OR_SKIP);
  if (rc >= 0)
    return rc;
  kiln_error_t err = NULL;
  T.cgroups = h.sbx.cg.version != 0;
  T.loop = h.loop;
  T.f = front_new(&h.cfg, T.loop, on_ready, NULL, &err);
  CHECK(T.f != NULL);
  if (T.f) {
    CHECK(loop_run(T.loop, &err) == 0);
    CHECK(T.finished);
    /* Closing A and C drops A's figure from the disk and the gauges.  */
    CHECK(front_close_session(T.f, T.a, NULL) == 0 && front_close_session(T.f, T.c, NULL) == 0);
    struct front_metrics m;
    front_metrics(T.f, &m);
    CHECK(m.artifact_bytes == 0);
    CHECK(m.sessions_live == 0 && m.sessions_lost == 0 && m.sessions_created == 3);
    CHECK(m.spares == 1);
    front_free(T.f);
  } else if (err)
    fprintf(stderr, "front_new: %s\n", err->msg);
  kiln_error_release(&err);
  harness_end(&h);
  printf("%s front_metrics_counts_every_way_a_cell_ends\n", check_failures ? "FAIL" : "ok  ");
  return check_failures ? 1 : 0;
}
