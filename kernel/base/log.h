/* kiln's one log: every message an operator may read goes through
   log_msg, on stderr, as text or as JSON lines (--log-format), filtered
   by --log-level.  stdout is never written: it may be the MCP channel.  */
#ifndef KILN_LOG_H
#define KILN_LOG_H

#include "error.h"

enum log_level {
  LOG_ERROR,
  LOG_WARN,
  LOG_INFO,
  LOG_DEBUG,
};

/* Sets the level and format (0 text, 1 JSON) for the rest of the
   process's life.  */
void log_setup(int level, int json);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Also hands every message, whatever --log-level says, to FN (CTX)
   (NULL: none): for a front that tells its clients.  FN is not called
   again for a message it logs itself.  */
typedef void (*log_sink_fn)(void *ctx, enum log_level level, const char *msg);
void log_set_sink(log_sink_fn fn, void *ctx);

/* Logs ERR (if any) with context at LEVEL and releases it.  */
void log_error(enum log_level level, kiln_error_t *err, const char *context);

#endif
