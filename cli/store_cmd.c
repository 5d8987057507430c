/* `kiln history` and `kiln cache`: the database read (or the cache
   cleared) from the command line, while a server runs or not.  */
#define _GNU_SOURCE
#include "store_cmd.h"
#include "paths.h"
#include "store.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void
print_cell(void *ctx, int64_t id, const struct history_row *r)
{
  (void)id;
  time_t t = (time_t)(r->started_ms / 1000);
  struct tm tm;
  char when[32];
  gmtime_r(&t, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  printf("%s  [%llu]%s  %s  %.1f ms  %s%s%s  stdout %llu B, stderr %llu B", r->session_id,
         (unsigned long long)r->execution_count,
         r->kind && strcmp(r->kind, "shell") == 0 ? " shell" : "", when, r->duration_ms, r->status,
         r->error_type ? " " : "", r->error_type ? r->error_type : "",
         (unsigned long long)r->stdout_bytes, (unsigned long long)r->stderr_bytes);
  if (r->artifacts && *r->artifacts)
    printf("  images: %s", r->artifacts);
  putchar('\n');
  /* The code, indented, so that cells stand apart.  */
  const char *p = r->code, *end = r->code + r->code_len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    printf("    %.*s\n", (int)n, p);
    p += n + (nl != NULL);
  }
}

static int
history(struct store *st, const char *session_id)
{
  int64_t before = 0;
  do {
    kiln_error_t err = NULL;
    before = store_history_page(st, session_id, before, 100, print_cell, NULL, &err);
    if (before < 0) {
      fprintf(stderr, "kiln history: %s\n", err->msg);
      kiln_error_release(&err);
      return 1;
    }
  } while (before > 0);
  return 0;
}

static int
cache(struct store *st, const char *what)
{
  kiln_error_t err = NULL;
  if (strcmp(what, "clear") == 0) {
    int64_t n = cache_clear(st, &err);
    if (n < 0) {
      fprintf(stderr, "kiln cache clear: %s\n", err->msg);
      kiln_error_release(&err);
      return 1;
    }
    printf("removed %lld compiled cells\n", (long long)n);
    return 0;
  }
  struct cache_stats cs;
  cleanup_free char *runtime = xasprintf("%s+", KILN_VERSION);
  if (cache_stats(st, runtime, NULL, 0, &cs, &err) < 0) {
    fprintf(stderr, "kiln cache stats: %s\n", err->msg);
    kiln_error_release(&err);
    return 1;
  }
  printf("entries        %llu\n"
         "bytes          %llu\n"
         "hits           %llu\n"
         "misses         %llu\n"
         "evictions      %llu\n"
         "other versions %llu (made by another kiln; never used by this one)\n",
         (unsigned long long)cs.entries, (unsigned long long)cs.bytes, (unsigned long long)cs.hits,
         (unsigned long long)cs.misses, (unsigned long long)cs.evictions,
         (unsigned long long)cs.other_versions);
  return 0;
}

int
store_cmd_main(const char *cmd, const struct kiln_config *cfg, const char *arg)
{
  bool clear = strcmp(cmd, "cache") == 0 && strcmp(arg, "clear") == 0;
  kiln_error_t err = NULL;
  struct store *st = store_open(cfg->home, clear ? STORE_DIRECT : STORE_READ, &err);
  if (st == NULL) {
    fprintf(stderr, "kiln %s: %s\n", cmd, err->msg);
    kiln_error_release(&err);
    return 1;
  }
  int rc = strcmp(cmd, "history") == 0 ? history(st, arg) : cache(st, arg);
  store_close(st);
  return rc;
}
