#define _GNU_SOURCE
#include "error.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
kiln_error_make(kiln_error_t *err, int status, const char *fmt, ...)
{
  if (err == NULL)
    return -1;
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&msg, fmt, ap) < 0)
    xoom();
  va_end(ap);
  if (status != 0) {
    char *full = xasprintf("%s: %s", msg, strerror(status));
    free(msg);
    msg = full;
  }
  kiln_error_release(err);
  *err = xmalloc(sizeof **err);
  (*err)->status = status;
  (*err)->msg = msg;
  return -1;
}

int
kiln_error_wrap(kiln_error_t *err, const char *fmt, ...)
{
  if (err == NULL || *err == NULL)
    return -1;
  char *ctx = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&ctx, fmt, ap) < 0)
    xoom();
  va_end(ap);
  char *full = xasprintf("%s: %s", ctx, (*err)->msg);
  free(ctx);
  free((*err)->msg);
  (*err)->msg = full;
  return -1;
}

void
kiln_error_release(kiln_error_t *err)
{
  if (err == NULL || *err == NULL)
    return;
  free((*err)->msg);
  free(*err);
  *err = NULL;
}
