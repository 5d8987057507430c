#define _GNU_SOURCE
/* The front's own counting: its histograms and its count of OOM kills
   from the kernel's per-cgroup totals.  */
#include "check.h"
#include "internal.h"

#include <math.h>

static const double bounds[] = { 0.01, 0.1, 1 };

static void
a_histogram_counts_each_value_in_every_bucket_at_or_above_it(void)
{
  struct histogram h;
  histogram_init(&h, bounds, 3);
  CHECK(h.nbounds == 3 && h.count == 0 && h.sum == 0 && h.le[0] == 0 && h.le[2] == 0);
  histogram_observe(&h, 0.005); /* below the first bound */
  histogram_observe(&h, 0.1);   /* on a bound: counted in it (le is "at most") */
  histogram_observe(&h, 0.5);
  histogram_observe(&h, 7); /* above every bound: only in +Inf, the count */
  CHECK(h.le[0] == 1);
  CHECK(h.le[1] == 2);
  CHECK(h.le[2] == 3);
  CHECK(h.count == 4);
  CHECK(fabs(h.sum - 7.605) < 1e-12);
}

static void
histogram_buckets_never_decrease_and_never_pass_the_count(void)
{
  struct histogram h;
  histogram_init(&h, bounds, 3);
  for (int i = 0; i < 1000; i++)
    histogram_observe(&h, (double)((i * 7919) % 2000) / 1000.0);
  for (size_t i = 1; i < h.nbounds; i++)
    CHECK(h.le[i - 1] <= h.le[i]);
  CHECK(h.le[h.nbounds - 1] <= h.count && h.count == 1000);
}

static void
histogram_ignores_nan(void)
{
  struct histogram h;
  histogram_init(&h, bounds, 3);
  histogram_observe(&h, NAN);
  histogram_observe(&h, 0.2);
  CHECK(h.count == 1 && h.sum == 0.2 && h.le[2] == 1 && h.le[1] == 0);
}

static void
histogram_keeps_at_most_its_room_of_bounds(void)
{
  double many[HISTOGRAM_MAX_BOUNDS + 4];
  for (size_t i = 0; i < sizeof many / sizeof many[0]; i++)
    many[i] = (double)(i + 1);
  struct histogram h;
  histogram_init(&h, many, sizeof many / sizeof many[0]);
  CHECK(h.nbounds == HISTOGRAM_MAX_BOUNDS);
  CHECK(h.bounds[HISTOGRAM_MAX_BOUNDS - 1] == HISTOGRAM_MAX_BOUNDS);
  histogram_observe(&h, 1000);
  CHECK(h.count == 1 && h.le[HISTOGRAM_MAX_BOUNDS - 1] == 0);
}

static void
the_front_histograms_have_increasing_bounds(void)
{
  struct front_metrics m;
  metrics_init(&m);
  const struct histogram *hs[] = { &m.cell_seconds, &m.spawn_seconds };
  for (size_t k = 0; k < 2; k++) {
    CHECK(hs[k]->nbounds >= 8 && hs[k]->count == 0);
    for (size_t i = 1; i < hs[k]->nbounds; i++)
      CHECK(hs[k]->bounds[i - 1] < hs[k]->bounds[i]);
    CHECK(isfinite(hs[k]->bounds[hs[k]->nbounds - 1]));
  }
  CHECK(m.code_cache_hits == 0 && m.sessions_hibernated == 0);
}

static void
oom_kills_are_counted_once_each_across_workers(void)
{
  struct front f = { 0 };
  metrics_init(&f.metrics);
  struct worker a = { .front = &f }, b = { .front = &f };
  /* The kernel's count per cgroup only grows; the front reads it at
     every cell's end and at the worker's death.  */
  metrics_count_ooms(&a, 0);
  CHECK(f.metrics.oom_kills == 0);
  metrics_count_ooms(&a, 2);
  CHECK(f.metrics.oom_kills == 2);
  metrics_count_ooms(&a, 2); /* read again: nothing new */
  CHECK(f.metrics.oom_kills == 2);
  metrics_count_ooms(&b, 1); /* another worker's cgroup starts at its own 0 */
  CHECK(f.metrics.oom_kills == 3);
  metrics_count_ooms(&a, 5);
  CHECK(f.metrics.oom_kills == 6);
}

int
main(void)
{
  static const struct test_case cases[] = {
    { "a_histogram_counts_each_value_in_every_bucket_at_or_above_it",
      a_histogram_counts_each_value_in_every_bucket_at_or_above_it },
    { "histogram_buckets_never_decrease_and_never_pass_the_count",
      histogram_buckets_never_decrease_and_never_pass_the_count },
    { "histogram_ignores_nan", histogram_ignores_nan },
    { "histogram_keeps_at_most_its_room_of_bounds", histogram_keeps_at_most_its_room_of_bounds },
    { "the_front_histograms_have_increasing_bounds", the_front_histograms_have_increasing_bounds },
    { "oom_kills_are_counted_once_each_across_workers",
      oom_kills_are_counted_once_each_across_workers },
  };
  return RUN(cases);
}
