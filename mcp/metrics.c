/* The Prometheus text exposition format, version 0.0.4: a family is a
   # HELP line, a # TYPE line and its samples, one a line, each line
   ending in '\n'.  Counters end in _total; a histogram is cumulative
   _bucket samples ending at le="+Inf", then _sum and _count.  Every
   label value written here is a fixed string or a number, so none needs
   escaping.  */
#define _GNU_SOURCE
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The slots of struct mcp_http_counts; the last is kept for "other".  */
#define HTTP_CODE_SLOTS 32
_Static_assert(sizeof((struct mcp_http_counts *)0)->by_code
                   == HTTP_CODE_SLOTS * sizeof((struct mcp_http_counts *)0)->by_code[0],
               "HTTP_CODE_SLOTS is the size of mcp_http_counts.by_code");

static const char *const outcome_names[] = {
  [FRONT_CELL_OK] = "ok",
  [FRONT_CELL_ERROR] = "error",
  [FRONT_CELL_INTERRUPTED] = "interrupted",
  [FRONT_CELL_KILLED] = "killed",
  [FRONT_CELL_CRASHED] = "crashed",
  [FRONT_CELL_CANCELLED] = "cancelled",
  [FRONT_CELL_CLOSED] = "closed",
  [FRONT_CELL_NOT_STARTED] = "not_started",
};
/* A new outcome needs a label here before it builds.  */
_Static_assert(sizeof outcome_names / sizeof outcome_names[0] == FRONT_CELL_OUTCOMES,
               "every cell outcome has a label");
static const char *const install_outcome_names[] = {
  [FRONT_INSTALL_INSTALLED] = "installed",
  [FRONT_INSTALL_CACHED] = "cached",
  [FRONT_INSTALL_FAILED] = "failed",
  [FRONT_INSTALL_CANCELLED] = "cancelled",
};
_Static_assert(sizeof install_outcome_names / sizeof install_outcome_names[0]
                   == FRONT_INSTALL_OUTCOMES,
               "every install outcome has a label");

static void put(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct buf *out, const char *fmt, ...)
{
  /* Every line written here is short: names, fixed help texts and
     numbers.  */
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0)
    buf_append(out, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* V as Prometheus reads a float: the shortest of %.15g and %.17g that
   reads back as V, so that a bound of 0.1 is written "0.1"; +Inf, -Inf
   and NaN by name.  */
static const char *
fmt_float(char *s, size_t n, double v)
{
  if (isnan(v))
    snprintf(s, n, "NaN");
  else if (isinf(v))
    snprintf(s, n, "%s", v > 0 ? "+Inf" : "-Inf");
  else {
    snprintf(s, n, "%.15g", v);
    if (strtod(s, NULL) != v)
      snprintf(s, n, "%.17g", v);
  }
  return s;
}

static void
family(struct buf *out, const char *name, const char *type, const char *help)
{
  put(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
sample(struct buf *out, const char *name, const char *labels, uint64_t v)
{
  put(out, "%s%s %llu\n", name, labels, (unsigned long long)v);
}

static void
histogram(struct buf *out, const char *name, const char *help, const struct histogram *h)
{
  char num[40];
  family(out, name, "histogram", help);
  size_t nb = h->nbounds < HISTOGRAM_MAX_BOUNDS ? h->nbounds : HISTOGRAM_MAX_BOUNDS;
  for (size_t i = 0; i < nb; i++)
    put(out, "%s_bucket{le=\"%s\"} %llu\n", name, fmt_float(num, sizeof num, h->bounds[i]),
        (unsigned long long)h->le[i]);
  put(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
  put(out, "%s_sum %s\n", name, fmt_float(num, sizeof num, h->sum));
  put(out, "%s_count %llu\n", name, (unsigned long long)h->count);
}

/* The slot of CODE among H's first N, or NULL.  */
static uint64_t *
slot_of(struct mcp_http_counts *h, size_t n, int code)
{
  for (size_t i = 0; i < n; i++)
    if (h->by_code[i].code == code)
      return &h->by_code[i].count;
  return NULL;
}

void
mcp_http_count(struct mcp_http_counts *h, int code)
{
  if (code < 100 || code > 599)
    code = 0;
  size_t n = h->n < HTTP_CODE_SLOTS ? h->n : HTTP_CODE_SLOTS;
  /* A new code gets a slot of its own only while one is left besides
     the last: real codes never fill the table, so "other" always has
     room.  */
  uint64_t *c = slot_of(h, n, code);
  if (c == NULL && code != 0 && n + 1 >= HTTP_CODE_SLOTS)
    c = slot_of(h, n, code = 0);
  if (c == NULL) {
    if (n == HTTP_CODE_SLOTS)
      return;
    h->by_code[n].code = code;
    h->by_code[n].count = 0;
    c = &h->by_code[n].count;
    h->n = ++n;
  }
  (*c)++;
}

struct code_at {
  int code;
  size_t i;
};

static int
by_code(const void *a, const void *b)
{
  /* Ascending, "other" last.  */
  int x = ((const struct code_at *)a)->code, y = ((const struct code_at *)b)->code;
  x = x == 0 ? 1000 : x;
  y = y == 0 ? 1000 : y;
  return (x > y) - (x < y);
}

static void
http_requests(struct buf *out, const struct mcp_http_counts *h)
{
  static const char name[] = "kiln_http_requests_total";
  family(out, name, "counter",
         "HTTP responses by status code; \"other\" counts codes past the first 31 and invalid "
         "ones.");
  size_t n = h->n < HTTP_CODE_SLOTS ? h->n : HTTP_CODE_SLOTS;
  struct code_at order[HTTP_CODE_SLOTS];
  for (size_t i = 0; i < n; i++)
    order[i] = (struct code_at){ h->by_code[i].code, i };
  if (n)
    qsort(order, n, sizeof order[0], by_code);
  for (size_t k = 0; k < n; k++) {
    char labels[32];
    int code = order[k].code;
    if (code == 0)
      snprintf(labels, sizeof labels, "{code=\"other\"}");
    else
      snprintf(labels, sizeof labels, "{code=\"%d\"}", code);
    sample(out, name, labels, h->by_code[order[k].i].count);
  }
}

void
mcp_metrics_render(struct buf *out, const struct front_metrics *m, const struct mcp_http_counts *h)
{
  family(
      out, "kiln_sessions", "gauge",
      "Open sessions by state: live (worker alive or starting), lost (worker gone; the next "
      "call starts one), hibernated (no process; the next call restores them), spare (made ahead "
      "of demand).");
  sample(out, "kiln_sessions", "{state=\"live\"}", m->sessions_live);
  sample(out, "kiln_sessions", "{state=\"lost\"}", m->sessions_lost);
  sample(out, "kiln_sessions", "{state=\"hibernated\"}", m->sessions_hibernated);
  sample(out, "kiln_sessions", "{state=\"spare\"}", m->spares);

  family(out, "kiln_sessions_created_total", "counter", "Sessions opened for callers.");
  sample(out, "kiln_sessions_created_total", "", m->sessions_created);

  family(out, "kiln_cells_total", "counter", "Cells finished, by how they ended.");
  for (size_t i = 0; i < FRONT_CELL_OUTCOMES; i++) {
    char labels[48];
    snprintf(labels, sizeof labels, "{outcome=\"%s\"}", outcome_names[i]);
    sample(out, "kiln_cells_total", labels, m->cells[i]);
  }

  family(out, "kiln_commands_total", "counter",
         "Shell commands (run_shell) finished, by how they ended, as cells.");
  for (size_t i = 0; i < FRONT_CELL_OUTCOMES; i++) {
    char labels[48];
    snprintf(labels, sizeof labels, "{outcome=\"%s\"}", outcome_names[i]);
    sample(out, "kiln_commands_total", labels, m->commands[i]);
  }

  family(out, "kiln_package_installs_total", "counter",
         "install_packages requests finished: installed by pip, linked from the cache, failed, "
         "cancelled.");
  for (size_t i = 0; i < FRONT_INSTALL_OUTCOMES; i++) {
    char labels[48];
    snprintf(labels, sizeof labels, "{outcome=\"%s\"}", install_outcome_names[i]);
    sample(out, "kiln_package_installs_total", labels, m->installs[i]);
  }

  histogram(out, "kiln_cell_duration_seconds",
            "Time from sending a cell to its worker to its reply.", &m->cell_seconds);
  histogram(out, "kiln_worker_spawn_seconds",
            "Time from asking the zygote for a worker to the worker being ready.",
            &m->spawn_seconds);

  family(out, "kiln_oom_kills_total", "counter",
         "Processes killed by a session's memory limit (0 on hosts without cgroups).");
  sample(out, "kiln_oom_kills_total", "", m->oom_kills);

  family(out, "kiln_code_cache_hits_total", "counter",
         "Cells whose compiled code came from the cache.");
  sample(out, "kiln_code_cache_hits_total", "", m->code_cache_hits);
  family(out, "kiln_code_cache_misses_total", "counter",
         "Cells their workers compiled: no entry yet, or the compile helper not ready.");
  sample(out, "kiln_code_cache_misses_total", "", m->code_cache_misses);

  family(out, "kiln_artifact_bytes", "gauge", "Bytes of session images kept on disk.");
  sample(out, "kiln_artifact_bytes", "", m->artifact_bytes);

  if (h)
    http_requests(out, h);
}
