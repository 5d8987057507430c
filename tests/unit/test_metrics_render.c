#define _GNU_SOURCE
/* The /metrics body: the Prometheus text exposition format 0.0.4, and
   the HTTP response counts behind kiln_http_requests_total.  */
#include "check.h"
#include "internal.h"
#include "metrics.h"
#include "util.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

/* The rendering of M and H as a NUL-terminated string (allocated).  */
static char *
render(const struct front_metrics *m, const struct mcp_http_counts *h)
{
  struct buf b = { 0 };
  mcp_metrics_render(&b, m, h);
  buf_append(&b, "", 1);
  return (char *)b.data;
}

static const char expected_full[]
    = "# HELP kiln_sessions Open sessions by state: live (worker alive or starting), lost "
      "(worker gone; the next call starts one), hibernated (no process; the next call restores "
      "them), spare (made ahead of demand).\n"
      "# TYPE kiln_sessions gauge\n"
      "kiln_sessions{state=\"live\"} 3\n"
      "kiln_sessions{state=\"lost\"} 1\n"
      "kiln_sessions{state=\"hibernated\"} 0\n"
      "kiln_sessions{state=\"spare\"} 2\n"
      "# HELP kiln_sessions_created_total Sessions opened for callers.\n"
      "# TYPE kiln_sessions_created_total counter\n"
      "kiln_sessions_created_total 7\n"
      "# HELP kiln_cells_total Cells finished, by how they ended.\n"
      "# TYPE kiln_cells_total counter\n"
      "kiln_cells_total{outcome=\"ok\"} 10\n"
      "kiln_cells_total{outcome=\"error\"} 11\n"
      "kiln_cells_total{outcome=\"interrupted\"} 12\n"
      "kiln_cells_total{outcome=\"killed\"} 13\n"
      "kiln_cells_total{outcome=\"crashed\"} 14\n"
      "kiln_cells_total{outcome=\"cancelled\"} 15\n"
      "kiln_cells_total{outcome=\"closed\"} 16\n"
      "kiln_cells_total{outcome=\"not_started\"} 17\n"
      "# HELP kiln_commands_total Shell commands (run_shell) finished, by how they ended, as "
      "cells.\n"
      "# TYPE kiln_commands_total counter\n"
      "kiln_commands_total{outcome=\"ok\"} 20\n"
      "kiln_commands_total{outcome=\"error\"} 21\n"
      "kiln_commands_total{outcome=\"interrupted\"} 22\n"
      "kiln_commands_total{outcome=\"killed\"} 23\n"
      "kiln_commands_total{outcome=\"crashed\"} 24\n"
      "kiln_commands_total{outcome=\"cancelled\"} 25\n"
      "kiln_commands_total{outcome=\"closed\"} 26\n"
      "kiln_commands_total{outcome=\"not_started\"} 27\n"
      "# HELP kiln_package_installs_total install_packages requests finished: installed by pip, "
      "linked from the cache, failed, cancelled.\n"
      "# TYPE kiln_package_installs_total counter\n"
      "kiln_package_installs_total{outcome=\"installed\"} 30\n"
      "kiln_package_installs_total{outcome=\"cached\"} 31\n"
      "kiln_package_installs_total{outcome=\"failed\"} 32\n"
      "kiln_package_installs_total{outcome=\"cancelled\"} 33\n"
      "# HELP kiln_cell_duration_seconds Time from sending a cell to its worker to its reply.\n"
      "# TYPE kiln_cell_duration_seconds histogram\n"
      "kiln_cell_duration_seconds_bucket{le=\"0.001\"} 0\n"
      "kiln_cell_duration_seconds_bucket{le=\"0.005\"} 1\n"
      "kiln_cell_duration_seconds_bucket{le=\"0.01\"} 1\n"
      "kiln_cell_duration_seconds_bucket{le=\"0.05\"} 1\n"
      "kiln_cell_duration_seconds_bucket{le=\"0.1\"} 2\n"
      "kiln_cell_duration_seconds_bucket{le=\"0.5\"} 2\n"
      "kiln_cell_duration_seconds_bucket{le=\"1\"} 2\n"
      "kiln_cell_duration_seconds_bucket{le=\"5\"} 2\n"
      "kiln_cell_duration_seconds_bucket{le=\"10\"} 2\n"
      "kiln_cell_duration_seconds_bucket{le=\"30\"} 2\n"
      "kiln_cell_duration_seconds_bucket{le=\"60\"} 2\n"
      "kiln_cell_duration_seconds_bucket{le=\"+Inf\"} 3\n"
      "kiln_cell_duration_seconds_sum 120.125\n"
      "kiln_cell_duration_seconds_count 3\n"
      "# HELP kiln_worker_spawn_seconds Time from asking the zygote for a worker to the worker "
      "being ready.\n"
      "# TYPE kiln_worker_spawn_seconds histogram\n"
      "kiln_worker_spawn_seconds_bucket{le=\"0.0005\"} 0\n"
      "kiln_worker_spawn_seconds_bucket{le=\"0.001\"} 0\n"
      "kiln_worker_spawn_seconds_bucket{le=\"0.002\"} 1\n"
      "kiln_worker_spawn_seconds_bucket{le=\"0.005\"} 1\n"
      "kiln_worker_spawn_seconds_bucket{le=\"0.01\"} 1\n"
      "kiln_worker_spawn_seconds_bucket{le=\"0.02\"} 1\n"
      "kiln_worker_spawn_seconds_bucket{le=\"0.05\"} 1\n"
      "kiln_worker_spawn_seconds_bucket{le=\"0.1\"} 1\n"
      "kiln_worker_spawn_seconds_bucket{le=\"0.25\"} 1\n"
      "kiln_worker_spawn_seconds_bucket{le=\"0.5\"} 1\n"
      "kiln_worker_spawn_seconds_bucket{le=\"1\"} 1\n"
      "kiln_worker_spawn_seconds_bucket{le=\"5\"} 1\n"
      "kiln_worker_spawn_seconds_bucket{le=\"+Inf\"} 1\n"
      "kiln_worker_spawn_seconds_sum 0.002\n"
      "kiln_worker_spawn_seconds_count 1\n"
      "# HELP kiln_oom_kills_total Processes killed by a session's memory limit (0 on hosts "
      "without cgroups).\n"
      "# TYPE kiln_oom_kills_total counter\n"
      "kiln_oom_kills_total 4\n"
      "# HELP kiln_code_cache_hits_total Cells whose compiled code came from the cache.\n"
      "# TYPE kiln_code_cache_hits_total counter\n"
      "kiln_code_cache_hits_total 0\n"
      "# HELP kiln_code_cache_misses_total Cells their workers compiled: no entry yet, or the "
      "compile helper not ready.\n"
      "# TYPE kiln_code_cache_misses_total counter\n"
      "kiln_code_cache_misses_total 0\n"
      "# HELP kiln_artifact_bytes Bytes of session images kept on disk.\n"
      "# TYPE kiln_artifact_bytes gauge\n"
      "kiln_artifact_bytes 123456789\n"
      "# HELP kiln_http_requests_total HTTP responses by status code; \"other\" counts codes "
      "past the first 31 and invalid ones.\n"
      "# TYPE kiln_http_requests_total counter\n"
      "kiln_http_requests_total{code=\"200\"} 2\n"
      "kiln_http_requests_total{code=\"404\"} 1\n";

static void
fill(struct front_metrics *m)
{
  metrics_init(m);
  m->sessions_live = 3;
  m->sessions_lost = 1;
  m->spares = 2;
  m->sessions_created = 7;
  for (size_t i = 0; i < FRONT_CELL_OUTCOMES; i++) {
    m->cells[i] = 10 + i;
    m->commands[i] = 20 + i;
  }
  for (size_t i = 0; i < FRONT_INSTALL_OUTCOMES; i++)
    m->installs[i] = 30 + i;
  histogram_observe(&m->cell_seconds, 0.005);
  histogram_observe(&m->cell_seconds, 0.1);
  histogram_observe(&m->cell_seconds, 120.02);
  histogram_observe(&m->spawn_seconds, 0.002);
  m->oom_kills = 4;
  m->artifact_bytes = 123456789;
}

static void
every_family_is_written_exactly(void)
{
  struct front_metrics m;
  fill(&m);
  struct mcp_http_counts h = { 0 };
  mcp_http_count(&h, 404);
  mcp_http_count(&h, 200);
  mcp_http_count(&h, 200);
  char *got = render(&m, &h);
  CHECK(strcmp(got, expected_full) == 0);
  if (strcmp(got, expected_full) != 0) {
    /* Where it first differs, for whoever reads the failure.  */
    size_t i = 0;
    while (got[i] && got[i] == expected_full[i])
      i++;
    fprintf(stderr, "differs at byte %zu:\n  got:      %.80s\n  expected: %.80s\n", i, got + i,
            expected_full + i);
  }
  free(got);
}

static void
without_http_counts_there_is_no_http_family(void)
{
  struct front_metrics m;
  fill(&m);
  char *got = render(&m, NULL);
  CHECK(strstr(got, "kiln_http_requests_total") == NULL);
  CHECK(strstr(got, "kiln_artifact_bytes 123456789\n") != NULL);
  free(got);
}

/* ------------------------------------------- the exposition format */

static bool
metric_name_ok(const char *s, size_t n)
{
  if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
      return false;
  return true;
}

static bool
label_name_ok(const char *s, size_t n)
{
  if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
      return false;
  /* Reserved for Prometheus itself.  */
  return !(n >= 2 && s[0] == '_' && s[1] == '_');
}

/* A sample line parsed: its name, the value of its le label if any, its
   value.  */
struct sample_line {
  char name[128];
  char le[32];
  double value;
};

/* Parses LINE (without its '\n') as a sample; false when it is not one
   the format allows.  */
static bool
parse_sample(const char *line, struct sample_line *out)
{
  memset(out, 0, sizeof *out);
  size_t n = strcspn(line, "{ ");
  if (!metric_name_ok(line, n) || n >= sizeof out->name)
    return false;
  memcpy(out->name, line, n);
  const char *p = line + n;
  if (*p == '{') {
    p++;
    while (*p != '}') {
      size_t ln = strcspn(p, "=");
      if (!label_name_ok(p, ln) || p[ln] != '=' || p[ln + 1] != '"')
        return false;
      bool is_le = ln == 2 && memcmp(p, "le", 2) == 0;
      p += ln + 2;
      const char *v = p;
      while (*p && *p != '"') {
        /* Only \\, \" and \n may be escaped; nothing written here needs
           it, and a raw newline cannot occur inside one line.  */
        if (*p == '\\' && (p[1] == '\\' || p[1] == '"' || p[1] == 'n'))
          p++;
        else if (*p == '\\')
          return false;
        p++;
      }
      if (*p != '"')
        return false;
      if (is_le) {
        if ((size_t)(p - v) >= sizeof out->le)
          return false;
        memcpy(out->le, v, (size_t)(p - v));
      }
      p++;
      if (*p == ',')
        p++;
      else if (*p != '}')
        return false;
    }
    p++;
  }
  if (*p != ' ')
    return false;
  p++;
  char *end;
  if (strcmp(p, "+Inf") == 0)
    out->value = INFINITY;
  else {
    out->value = strtod(p, &end);
    if (end == p || *end != '\0')
      return false;
  }
  return true;
}

/* Whether SAMPLE belongs to the family FAMILY of type TYPE.  */
static bool
belongs(const char *sample, const char *family, const char *type)
{
  size_t n = strlen(family);
  if (strncmp(sample, family, n) != 0)
    return false;
  const char *rest = sample + n;
  if (strcmp(type, "histogram") == 0)
    return strcmp(rest, "_bucket") == 0 || strcmp(rest, "_sum") == 0 || strcmp(rest, "_count") == 0;
  return *rest == '\0';
}

/* Checks TEXT against the format: every line a HELP, a TYPE or a sample
   of the family the last TYPE named, each family once, HELP and TYPE
   before its samples, counters named _total, and every histogram's
   buckets increasing in le, cumulative, ending at +Inf equal to _count.
   Returns the number of families.  */
static int
check_exposition(const char *text)
{
  int families = 0;
  char family[128] = "", type[16] = "", seen[64][128];
  int nseen = 0;
  bool help_pending = false;
  double last_le = -INFINITY, last_bucket = 0, inf_bucket = -1;
  CHECK(text[0] != '\0' && text[strlen(text) - 1] == '\n');
  char *copy = strdup(text);
  for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "# HELP ", 7) == 0) {
      size_t n = strcspn(line + 7, " ");
      CHECK(metric_name_ok(line + 7, n) && line[7 + n] == ' ' && line[8 + n] != '\0');
      snprintf(family, sizeof family, "%.*s", (int)n, line + 7);
      for (int i = 0; i < nseen; i++)
        CHECK(strcmp(seen[i], family) != 0);
      if (nseen < 64)
        snprintf(seen[nseen++], sizeof seen[0], "%s", family);
      help_pending = true;
      type[0] = '\0';
      continue;
    }
    if (strncmp(line, "# TYPE ", 7) == 0) {
      size_t n = strcspn(line + 7, " ");
      CHECK(help_pending && strncmp(line + 7, family, n) == 0 && strlen(family) == n);
      snprintf(type, sizeof type, "%s", line + 8 + n);
      CHECK(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0
            || strcmp(type, "histogram") == 0);
      if (strcmp(type, "counter") == 0)
        CHECK(n > 6 && strcmp(family + n - 6, "_total") == 0);
      CHECK(strncmp(family, "kiln_", 5) == 0);
      help_pending = false;
      families++;
      last_le = -INFINITY;
      last_bucket = 0;
      inf_bucket = -1;
      continue;
    }
    CHECK(line[0] != '#');
    struct sample_line s;
    bool ok = parse_sample(line, &s);
    CHECK(ok);
    if (!ok) {
      fprintf(stderr, "  not a sample: %s\n", line);
      continue;
    }
    CHECK(type[0] != '\0' && belongs(s.name, family, type));
    CHECK(s.value >= 0);
    if (strcmp(type, "histogram") != 0)
      continue;
    size_t fl = strlen(family);
    if (strcmp(s.name + fl, "_bucket") == 0) {
      double le = strcmp(s.le, "+Inf") == 0 ? INFINITY : strtod(s.le, NULL);
      CHECK(s.le[0] != '\0' && le > last_le);
      CHECK(s.value >= last_bucket);
      last_le = le;
      last_bucket = s.value;
      if (isinf(le))
        inf_bucket = s.value;
    } else if (strcmp(s.name + fl, "_count") == 0)
      CHECK(inf_bucket >= 0 && inf_bucket == s.value);
    else
      CHECK(inf_bucket >= 0); /* _sum after the buckets */
  }
  free(copy);
  return families;
}

static void
the_output_is_valid_exposition_format(void)
{
  struct front_metrics m;
  fill(&m);
  struct mcp_http_counts h = { 0 };
  for (int code = 100; code < 600; code += 7)
    mcp_http_count(&h, code);
  mcp_http_count(&h, -1);
  char *got = render(&m, &h);
  CHECK(check_exposition(got) == 12);
  free(got);
  /* Empty metrics too: every family, with zeros.  */
  metrics_init(&m);
  struct mcp_http_counts none = { 0 };
  got = render(&m, &none);
  CHECK(check_exposition(got) == 12);
  CHECK(strstr(got, "kiln_cell_duration_seconds_bucket{le=\"+Inf\"} 0\n") != NULL);
  CHECK(strstr(got, "kiln_cell_duration_seconds_sum 0\n") != NULL);
  free(got);
}

static void
histogram_buckets_are_cumulative_and_end_at_the_count(void)
{
  struct front_metrics m;
  metrics_init(&m);
  /* Values on, between, below and above the bounds.  */
  const double v[] = { 0, 0.0004, 0.001, 0.0011, 0.3, 0.5, 2, 59.9, 60, 61, 1e9 };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    histogram_observe(&m.cell_seconds, v[i]);
    histogram_observe(&m.spawn_seconds, v[i]);
  }
  char *got = render(&m, NULL);
  CHECK(check_exposition(got) == 11);
  CHECK(strstr(got, "kiln_cell_duration_seconds_bucket{le=\"0.001\"} 3\n") != NULL);
  CHECK(strstr(got, "kiln_cell_duration_seconds_bucket{le=\"60\"} 9\n") != NULL);
  CHECK(strstr(got, "kiln_cell_duration_seconds_bucket{le=\"+Inf\"} 11\n") != NULL);
  CHECK(strstr(got, "kiln_cell_duration_seconds_count 11\n") != NULL);
  CHECK(strstr(got, "kiln_worker_spawn_seconds_bucket{le=\"0.0005\"} 2\n") != NULL);
  free(got);
}

/* --------------------------------------------------- HTTP counts */

static uint64_t
count_of(const struct mcp_http_counts *h, int code)
{
  for (size_t i = 0; i < h->n; i++)
    if (h->by_code[i].code == code)
      return h->by_code[i].count;
  return 0;
}

static void
http_counts_add_new_codes_and_increment_known_ones(void)
{
  struct mcp_http_counts h = { 0 };
  mcp_http_count(&h, 200);
  mcp_http_count(&h, 200);
  mcp_http_count(&h, 401);
  mcp_http_count(&h, 200);
  CHECK(h.n == 2 && count_of(&h, 200) == 3 && count_of(&h, 401) == 1);
}

static void
http_codes_past_31_distinct_go_to_other(void)
{
  struct mcp_http_counts h = { 0 };
  for (int code = 200; code < 240; code++)
    mcp_http_count(&h, code);
  CHECK(h.n == 32);
  /* The first 31 codes have slots of their own, the other 9 share one.  */
  CHECK(count_of(&h, 230) == 1 && count_of(&h, 231) == 0 && count_of(&h, 0) == 9);
  /* A known code still counts in its own slot; a new one in "other".  */
  mcp_http_count(&h, 200);
  mcp_http_count(&h, 500);
  CHECK(count_of(&h, 200) == 2 && count_of(&h, 0) == 10 && h.n == 32);
  char *got = render(&(struct front_metrics){ 0 }, &h);
  CHECK(strstr(got, "kiln_http_requests_total{code=\"other\"} 10\n") != NULL);
  CHECK(strstr(got, "kiln_http_requests_total{code=\"0\"}") == NULL);
  CHECK(strstr(got, "kiln_http_requests_total{code=\"231\"}") == NULL);
  free(got);
}

static void
http_codes_outside_100_to_599_are_other(void)
{
  struct mcp_http_counts h = { 0 };
  mcp_http_count(&h, 0);
  mcp_http_count(&h, 99);
  mcp_http_count(&h, 600);
  mcp_http_count(&h, -404);
  mcp_http_count(&h, 599);
  CHECK(h.n == 2 && count_of(&h, 0) == 4 && count_of(&h, 599) == 1);
}

static void
http_codes_are_rendered_in_order_with_other_last(void)
{
  struct mcp_http_counts h = { 0 };
  mcp_http_count(&h, 1000);
  mcp_http_count(&h, 500);
  mcp_http_count(&h, 200);
  mcp_http_count(&h, 404);
  char *got = render(&(struct front_metrics){ 0 }, &h);
  const char *tail = strstr(got, "# TYPE kiln_http_requests_total counter\n");
  CHECK(tail != NULL);
  if (tail)
    CHECK(strcmp(tail, "# TYPE kiln_http_requests_total counter\n"
                       "kiln_http_requests_total{code=\"200\"} 1\n"
                       "kiln_http_requests_total{code=\"404\"} 1\n"
                       "kiln_http_requests_total{code=\"500\"} 1\n"
                       "kiln_http_requests_total{code=\"other\"} 1\n")
          == 0);
  free(got);
}

static void
rendering_appends_to_what_the_buffer_holds(void)
{
  struct buf b = { 0 };
  buf_append(&b, "before\n", 7);
  struct front_metrics m;
  metrics_init(&m);
  mcp_metrics_render(&b, &m, NULL);
  CHECK(b.len > 7 && memcmp(b.data, "before\n# HELP kiln_sessions ", 28) == 0);
  buf_free(&b);
}

int
main(void)
{
  static const struct test_case cases[] = {
    { "every_family_is_written_exactly", every_family_is_written_exactly },
    { "without_http_counts_there_is_no_http_family", without_http_counts_there_is_no_http_family },
    { "the_output_is_valid_exposition_format", the_output_is_valid_exposition_format },
    { "histogram_buckets_are_cumulative_and_end_at_the_count",
      histogram_buckets_are_cumulative_and_end_at_the_count },
    { "http_counts_add_new_codes_and_increment_known_ones",
      http_counts_add_new_codes_and_increment_known_ones },
    { "http_codes_past_31_distinct_go_to_other", http_codes_past_31_distinct_go_to_other },
    { "http_codes_outside_100_to_599_are_other", http_codes_outside_100_to_599_are_other },
    { "http_codes_are_rendered_in_order_with_other_last",
      http_codes_are_rendered_in_order_with_other_last },
    { "rendering_appends_to_what_the_buffer_holds", rendering_appends_to_what_the_buffer_holds },
  };
  return RUN(cases);
}
