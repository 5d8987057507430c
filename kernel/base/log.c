#define _GNU_SOURCE
#include "log.h"
#include "utf8.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int max_level = LOG_INFO;
static int as_json;

void
log_setup(int level, int json)
{
  max_level = level;
  as_json = json;
}

static log_sink_fn sink;
static void *sink_ctx;

void
log_set_sink(log_sink_fn fn, void *ctx)
{
  sink = fn;
  sink_ctx = ctx;
}

static const char *const names[] = { "error", "warn", "info", "debug" };

/* Appends S to B as the body of a JSON string.  */
static void
json_escape(struct buf *b, const char *s)
{
  size_t n = strlen(s), clean_len;
  cleanup_free char *clean = utf8_sanitize(s, n, &clean_len);
  for (size_t i = 0; i < clean_len; i++) {
    unsigned char c = (unsigned char)clean[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      buf_append(b, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      buf_append(b, esc, 6);
    } else
      buf_append(b, &clean[i], 1);
  }
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
  static bool in_sink;
  if ((int)level > max_level && (sink == NULL || in_sink))
    return;
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&msg, fmt, ap) < 0)
    xoom();
  va_end(ap);
  if (sink && !in_sink) {
    in_sink = true;
    sink(sink_ctx, level, msg);
    in_sink = false;
  }
  if ((int)level > max_level) {
    free(msg);
    return;
  }
  struct buf b = { 0 };
  if (as_json) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof when - w, ".%06ldZ", ts.tv_nsec / 1000);
    cleanup_free char *head = xasprintf("{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"msg\":\"",
                                        when, names[level], (int)getpid());
    buf_append(&b, head, strlen(head));
    json_escape(&b, msg);
    buf_append(&b, "\"}\n", 3);
  } else {
    cleanup_free char *line = xasprintf("kiln: %s\n", msg);
    buf_append(&b, line, strlen(line));
  }
  /* One write per message, so that lines from the front, the zygote and
     the workers' inits never interleave.  */
  (void)!write(2, b.data, b.len);
  buf_free(&b);
  free(msg);
}

void
log_error(enum log_level level, kiln_error_t *err, const char *context)
{
  if (err == NULL || *err == NULL)
    return;
  log_msg(level, "%s: %s", context, (*err)->msg);
  kiln_error_release(err);
}
