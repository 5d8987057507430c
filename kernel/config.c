#define _GNU_SOURCE
#include "config.h"
#include "paths.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each setting once: its flag name, its environment variable and how to
   parse it.  `kiln --help` prints the same table.  */
enum kind {
  K_SECONDS,
  K_SIZE,
  K_COUNT,
  K_COUNT0, /* a count that may be zero */
  K_STRING,
  K_FLAG, /* "1"/"true"/"yes" or "0"/"false"/"no"; a bare flag means 1 */
};

struct setting {
  const char *key;
  const char *env;
  enum kind kind;
  size_t offset;
};

#define S(key, env, kind, field)                                                                   \
  {                                                                                                \
    key, env, kind, offsetof(struct kiln_config, field)                                            \
  }
static const struct setting settings[] = {
  S("timeout", "KILN_TIMEOUT", K_SECONDS, timeout_s),
  S("max-timeout", "KILN_MAX_TIMEOUT", K_SECONDS, max_timeout_s),
  S("grace", "KILN_GRACE", K_SECONDS, grace_s),
  S("max-output", "KILN_MAX_OUTPUT", K_SIZE, max_output),
  S("max-result", "KILN_MAX_RESULT", K_SIZE, max_result),
  S("max-code", "KILN_MAX_CODE", K_SIZE, max_code),
  S("max-message", "KILN_MAX_MESSAGE", K_SIZE, max_message),
  S("max-sessions", "KILN_MAX_SESSIONS", K_COUNT, max_sessions),
  S("max-queued", "KILN_MAX_QUEUED", K_COUNT, max_queued),
  S("spares", "KILN_SPARES", K_COUNT0, spares),
  S("max-image-side", "KILN_MAX_IMAGE_SIDE", K_COUNT, max_image_side),
  S("memory", "KILN_MEMORY", K_SIZE, memory),
  S("max-procs", "KILN_MAX_PROCS", K_COUNT, max_procs),
  S("max-files", "KILN_MAX_FILES", K_COUNT, max_files),
  S("work-size", "KILN_WORK_SIZE", K_SIZE, work_size),
  S("tmp-size", "KILN_TMP_SIZE", K_SIZE, tmp_size),
  S("cpus", "KILN_CPUS", K_SECONDS, cpus),
  S("insecure-no-sandbox", "KILN_INSECURE_NO_SANDBOX", K_FLAG, insecure_no_sandbox),
  S("preload", "KILN_PRELOAD", K_STRING, preload),
  S("home", "KILN_HOME", K_STRING, home),
  S("venv", "KILN_VENV", K_STRING, venv),
  S("runtime-dir", "KILN_RUNTIME_DIR", K_STRING, runtime_dir),
};
#undef S

int
config_parse_size(const char *s, size_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || s[0] == '-')
    return -1;
  unsigned long long mul = 1;
  switch (toupper((unsigned char)*end)) {
  case 'K':
    mul = 1ULL << 10;
    end++;
    break;
  case 'M':
    mul = 1ULL << 20;
    end++;
    break;
  case 'G':
    mul = 1ULL << 30;
    end++;
    break;
  default:
    break;
  }
  if (*end == 'i' || *end == 'B')
    end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
  if (*end != '\0' || v == 0 || v > SIZE_MAX / mul)
    return -1;
  *out = (size_t)(v * mul);
  return 0;
}

int
config_parse_seconds(const char *s, double *out)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end != '\0' || !isfinite(v) || v <= 0 || v > 86400 * 365)
    return -1;
  *out = v;
  return 0;
}

bool
config_is_flag(const char *key)
{
  for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
    if (strcmp(settings[i].key, key) == 0)
      return settings[i].kind == K_FLAG;
  return false;
}

int
config_set(struct kiln_config *cfg, const char *key, const char *value, kiln_error_t *err)
{
  for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
    const struct setting *s = &settings[i];
    if (strcmp(s->key, key) != 0)
      continue;
    void *field = (char *)cfg + s->offset;
    switch (s->kind) {
    case K_SECONDS:
      if (config_parse_seconds(value, field) < 0)
        return kiln_error_make(err, 0, "--%s: '%s' is not a positive number", key, value);
      return 0;
    case K_SIZE:
      if (config_parse_size(value, field) < 0)
        return kiln_error_make(err, 0, "--%s: '%s' is not a size (e.g. 65536, 256K, 16M)", key,
                               value);
      return 0;
    case K_COUNT:
    case K_COUNT0: {
      char *end;
      errno = 0;
      unsigned long v = strtoul(value, &end, 10);
      unsigned long lo = s->kind == K_COUNT0 ? 0 : 1;
      if (errno || end == value || *end || v < lo || value[0] == '-' || v > 1000000)
        return kiln_error_make(err, 0, "--%s: '%s' is not a count between %lu and 1000000", key,
                               value, lo);
      *(size_t *)field = v;
      return 0;
    }
    case K_FLAG:
      if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0 || strcmp(value, "yes") == 0)
        *(int *)field = 1;
      else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
        *(int *)field = 0;
      else
        return kiln_error_make(err, 0, "--%s: '%s' is not 1/true/yes or 0/false/no", key, value);
      return 0;
    case K_STRING:
      free(*(char **)field);
      *(char **)field = xstrdup(value);
      return 0;
    }
  }
  return kiln_error_make(err, 0, "unknown option --%s", key);
}

static char *
default_home(void)
{
  const char *xdg = getenv("XDG_DATA_HOME");
  if (xdg && xdg[0] == '/')
    return xasprintf("%s/kiln", xdg);
  const char *home = getenv("HOME");
  if (home && home[0] == '/')
    return xasprintf("%s/.local/share/kiln", home);
  return xstrdup("/var/lib/kiln");
}

int
config_init(struct kiln_config *cfg, kiln_error_t *err)
{
  *cfg = (struct kiln_config){
    .timeout_s = 30,
    .max_timeout_s = 3600,
    .grace_s = 2,
    .max_output = 256 << 10,
    .max_result = 64 << 10,
    .max_code = 1 << 20,
    .max_message = 16 << 20,
    .max_sessions = 256,
    .max_queued = 64,
    .spares = 2,
    .max_image_side = 1568,
    .memory = 1 << 30,
    .max_procs = 256,
    .max_files = 1024,
    .work_size = 512 << 20,
    .tmp_size = 256 << 20,
    .cpus = 1,
    .preload = xstrdup("numpy,matplotlib,matplotlib.pyplot,PIL.Image,pandas"),
    .home = default_home(),
    .venv = xstrdup(KILN_DEFAULT_VENV),
    .runtime_dir = xstrdup(KILN_DEFAULT_RUNTIME_DIR),
  };
  for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
    const char *v = getenv(settings[i].env);
    if (v == NULL || v[0] == '\0')
      continue;
    if (config_set(cfg, settings[i].key, v, err) < 0)
      return kiln_error_wrap(err, "environment variable %s", settings[i].env);
  }
  return 0;
}

void
config_free(struct kiln_config *cfg)
{
  free(cfg->preload);
  free(cfg->home);
  free(cfg->venv);
  free(cfg->runtime_dir);
}
