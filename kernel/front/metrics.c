/* The front's metrics: fixed-bound histograms, and the snapshot an
   operator's /metrics reads.  Each total is counted where its event
   happens (reply.c, request.c, session.c, worker_link.c); the gauges
   are read off the session table when asked, so that they cannot drift
   from it whatever path a session took.  */
#include "internal.h"

#include <math.h>
#include <string.h>

/* From a trivial cell to the longest deadline an operator is likely to
   allow.  */
static const double cell_bounds[] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60 };
/* Around the targets: 2 ms for a worker, 5 ms for a sandboxed session;
   the top buckets catch a zygote restarting under the request.  */
static const double spawn_bounds[]
    = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5 };

void
histogram_init(struct histogram *h, const double *bounds, size_t n)
{
  memset(h, 0, sizeof *h);
  h->nbounds = n < HISTOGRAM_MAX_BOUNDS ? n : HISTOGRAM_MAX_BOUNDS;
  memcpy(h->bounds, bounds, h->nbounds * sizeof *bounds);
}

void
histogram_observe(struct histogram *h, double v)
{
  if (isnan(v))
    return;
  /* Cumulative at once: a bucket counts everything at most its bound,
     so a snapshot is a plain copy.  */
  for (size_t i = 0; i < h->nbounds; i++)
    if (v <= h->bounds[i])
      h->le[i]++;
  h->count++;
  h->sum += v;
}

void
metrics_init(struct front_metrics *m)
{
  memset(m, 0, sizeof *m);
  histogram_init(&m->cell_seconds, cell_bounds, sizeof cell_bounds / sizeof cell_bounds[0]);
  histogram_init(&m->spawn_seconds, spawn_bounds, sizeof spawn_bounds / sizeof spawn_bounds[0]);
}

void
metrics_count_ooms(struct worker *w, uint64_t oom_kills)
{
  /* The kernel's count only grows while the cgroup lives, and each
     worker has a cgroup of its own: the difference is new kills.  */
  if (oom_kills > w->oom_counted) {
    w->front->metrics.oom_kills += oom_kills - w->oom_counted;
    w->oom_counted = oom_kills;
  }
}

void
front_metrics(struct front *f, struct front_metrics *out)
{
  *out = f->metrics;
  for (const struct session *s = f->sessions; s; s = s->next) {
    if (s->state == S_LOST)
      out->sessions_lost++;
    else if (s->state == S_HIBERNATED)
      out->sessions_hibernated++;
    else
      out->sessions_live++;
  }
  out->spares = f->nspares;
  out->artifact_bytes = f->artifacts_bytes;
}
