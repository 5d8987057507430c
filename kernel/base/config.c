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

/* Each setting once: its flag name, its environment variable, how to
   parse it, and its line in `kiln --help`, which is printed from this
   table and nothing else.  */
enum kind {
  K_SECONDS,
  K_SIZE,
  K_COUNT,
  K_COUNT0, /* a count that may be zero */
  K_STRING,
  K_FLAG,   /* "1"/"true"/"yes" or "0"/"false"/"no"; a bare flag means 1 */
  K_CHOICE, /* one of CHOICES, stored as its index */
};

struct setting {
  const char *key;
  const char *env;
  enum kind kind;
  size_t offset;
  const char *metavar; /* NULL for a flag */
  const char *dflt;    /* as --help shows it */
  const char *help;
  const char *const *choices;
};

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_formats[] = { "text", "json", NULL };

#define S(key, env, kind, field, meta, dflt, help)                                                 \
  {                                                                                                \
    key, env, kind, offsetof(struct kiln_config, field), meta, dflt, help, NULL                    \
  }
#define C(key, env, field, dflt, help, choices)                                                    \
  {                                                                                                \
    key, env, K_CHOICE, offsetof(struct kiln_config, field), "WORD", dflt, help, choices           \
  }
static const struct setting settings[] = {
  S("timeout", "KILN_TIMEOUT", K_SECONDS, timeout_s, "SECONDS", "30",
    "default time limit of a cell or shell command"),
  S("max-timeout", "KILN_MAX_TIMEOUT", K_SECONDS, max_timeout_s, "SECONDS", "3600",
    "largest timeout_s a call may ask for"),
  S("grace", "KILN_GRACE", K_SECONDS, grace_s, "SECONDS", "2",
    "from the interrupt at the deadline to killing the worker (for a shell command, its process "
    "group) (at most 600)"),
  S("max-output", "KILN_MAX_OUTPUT", K_SIZE, max_output, "BYTES", "256K",
    "stdout and stderr kept per cell or shell command, each; head and tail are kept"),
  S("max-result", "KILN_MAX_RESULT", K_SIZE, max_result, "CHARS", "64K",
    "length of a result's repr, of an error's message and traceback, and of each text "
    "form a cell displays"),
  S("max-reply", "KILN_MAX_REPLY", K_SIZE, max_reply, "BYTES", "20K",
    "text a reply shows a model: head and tail of each stream and of the result; what is "
    "cut stays readable as a kiln://sessions/ID/cells/N/stdout resource"),
  S("max-code", "KILN_MAX_CODE", K_SIZE, max_code, "BYTES", "1M",
    "size of a cell's source or a shell command"),
  S("max-message", "KILN_MAX_MESSAGE", K_SIZE, max_message, "BYTES", "16M",
    "size of one JSON-RPC message"),
  S("max-sessions", "KILN_MAX_SESSIONS", K_COUNT, max_sessions, "N", "256",
    "open sessions with a worker (hibernated ones are not counted)"),
  S("max-queued", "KILN_MAX_QUEUED", K_COUNT, max_queued, "N", "64", "cells waiting per session"),
  S("spares", "KILN_SPARES", K_COUNT0, spares, "N", "2", "workers started ahead of new sessions"),
  S("max-image-side", "KILN_MAX_IMAGE_SIDE", K_COUNT, max_image_side, "PX", "1568",
    "images larger than this are sent downscaled; the full size stays readable as a resource"),
  S("max-artifacts-size", "KILN_MAX_ARTIFACTS_SIZE", K_SIZE, max_artifacts_size, "BYTES", "256M",
    "images kept on disk for all sessions together; a session may keep a quarter of it; the "
    "oldest are evicted first and the reply says so"),
  S("cache-size", "KILN_CACHE_SIZE", K_SIZE, cache_size, "BYTES", "256M",
    "compiled cells kept in KILN_HOME/kiln.db; the least recently used are evicted first"),
  S("idle-hibernate", "KILN_IDLE_HIBERNATE", K_SECONDS, idle_hibernate_s, "SECONDS", "600",
    "a session idle this long is snapshotted and its worker stopped; the next call restores it "
    "(every stdio session is snapshotted too when kiln serve stops, and the next kiln serve on "
    "the same KILN_HOME restores them)"),
  S("max-snapshot", "KILN_MAX_SNAPSHOT", K_SIZE, max_snapshot, "BYTES", "512M",
    "a hibernated session's variables; past it the largest are dropped, and the restored session "
    "says which"),
  S("session-ttl", "KILN_SESSION_TTL", K_SECONDS, session_ttl_s, "SECONDS", "604800",
    "a hibernated session unused this long is deleted with its snapshot and history"),
  S("package-index", "KILN_PACKAGE_INDEX", K_STRING, packages.index, "URL",
    "https://pypi.org/simple",
    "the package index (PEP 503 simple API) install_packages installs wheels from; its host "
    "is the only one the installer can reach (and files.pythonhosted.org for the default)"),
  S("allow-packages", "KILN_ALLOW_PACKAGES", K_STRING, packages.allow, "LIST|FILE", "*",
    "the projects install_packages may install, dependencies included: * for any, names "
    "separated by commas, or a file of names, one a line (# comments)"),
  S("max-package-size", "KILN_MAX_PACKAGE_SIZE", K_SIZE, packages.max_size, "BYTES", "256M",
    "the installed size of one package; an install holding a larger one is refused"),
  S("install-timeout", "KILN_INSTALL_TIMEOUT", K_SECONDS, packages.timeout_s, "SECONDS", "600",
    "time limit of one install_packages call"),
  S("memory", "KILN_MEMORY", K_SIZE, memory, "BYTES", "1G", "memory per session, cgroup-enforced"),
  S("max-procs", "KILN_MAX_PROCS", K_COUNT, max_procs, "N", "256",
    "processes and threads per session"),
  S("max-files", "KILN_MAX_FILES", K_COUNT, max_files, "N", "1024", "open files per process"),
  S("cpus", "KILN_CPUS", K_SECONDS, cpus, "N", "1", "CPU cores per session, cgroup-enforced"),
  S("work-size", "KILN_WORK_SIZE", K_SIZE, work_size, "BYTES", "512M", "size of a session's /work"),
  S("tmp-size", "KILN_TMP_SIZE", K_SIZE, tmp_size, "BYTES", "256M",
    "size of a session's /tmp and /dev/shm, each"),
  S("insecure-no-sandbox", "KILN_INSECURE_NO_SANDBOX", K_FLAG, insecure_no_sandbox, NULL, "off",
    "run cells WITHOUT the sandbox; every reply then says the session is not isolated"),
  S("preload", "KILN_PRELOAD", K_STRING, preload, "LIST",
    "numpy,matplotlib,matplotlib.pyplot,PIL.Image,pandas", "modules the zygote imports"),
  S("home", "KILN_HOME", K_STRING, home, "DIR", "$XDG_DATA_HOME/kiln or ~/.local/share/kiln",
    "state directory: kiln.db (history, code cache, hibernated sessions), snapshots/, "
    "each session's images in sessions/ID, and installed packages in packages/"),
  S("venv", "KILN_VENV", K_STRING, venv, "DIR", "set at build time",
    "the sandbox's virtual environment"),
  S("runtime-dir", "KILN_RUNTIME_DIR", K_STRING, runtime_dir, "DIR", "set at build time",
    "kiln's Python runtime, python/sitecustomize"),
  S("http", "KILN_HTTP", K_STRING, http.listen, "[ADDR:]PORT", "off: stdio",
    "serve MCP over Streamable HTTP on ADDR (default 127.0.0.1) and PORT instead of stdio"),
  S("http-path", "KILN_HTTP_PATH", K_STRING, http.path, "PATH", "/mcp", "the MCP endpoint's path"),
  S("allow-origin", "KILN_ALLOW_ORIGIN", K_STRING, http.allow_origin, "LIST", "none",
    "comma-separated Origins (scheme://host[:port]) allowed besides loopback ones; a request "
    "with any other Origin gets 403"),
  S("allow-host", "KILN_ALLOW_HOST", K_STRING, http.allow_host, "LIST", "none",
    "comma-separated host names a request's Host may carry besides IP addresses and "
    "localhost (DNS rebinding); * allows any"),
  S("token-file", "KILN_TOKEN_FILE", K_STRING, http.token_file, "FILE", "none",
    "bearer tokens a client must present, one a line (# comments); reloaded on SIGHUP"),
  S("auth-server", "KILN_AUTH_SERVER", K_STRING, http.auth_server, "URL", "none",
    "the OAuth authorization server named in /.well-known/oauth-protected-resource"),
  S("tls-cert", "KILN_TLS_CERT", K_STRING, http.tls_cert, "FILE", "none",
    "PEM certificate chain: serve HTTPS (with --tls-key)"),
  S("tls-key", "KILN_TLS_KEY", K_STRING, http.tls_key, "FILE", "none", "PEM private key"),
  S("node-name", "KILN_NODE_NAME", K_STRING, http.node_name, "NAME", "none",
    "this node's name (letters, digits, -), put before every MCP session id it issues so that "
    "a router in front of several nodes keeps each session on its own"),
  S("insecure-http-no-token", "KILN_INSECURE_HTTP_NO_TOKEN", K_FLAG, http.insecure_no_token, NULL,
    "off",
    "let --http bind a non-loopback address WITHOUT a --token-file: anyone who reaches it "
    "runs code"),
  S("metrics-public", "KILN_METRICS_PUBLIC", K_FLAG, http.metrics_public, NULL, "off",
    "serve /metrics without a token"),
  S("http-max-connections", "KILN_HTTP_MAX_CONNECTIONS", K_COUNT, http.max_connections, "N", "512",
    "open HTTP connections; more are refused"),
  S("http-max-client-sessions", "KILN_HTTP_MAX_CLIENT_SESSIONS", K_COUNT, http.max_client_sessions,
    "N", "256", "MCP sessions one token (or, without tokens, one address) may hold open"),
  S("http-timeout", "KILN_HTTP_TIMEOUT", K_SECONDS, http.timeout_s, "SECONDS", "30",
    "an idle HTTP connection is closed, and a request's headers and body must arrive, within "
    "this"),
  S("http-session-idle", "KILN_HTTP_SESSION_IDLE", K_SECONDS, http.session_idle_s, "SECONDS",
    "3600", "an MCP session with no request, stream or call for this long is ended"),
  C("log-level", "KILN_LOG_LEVEL", log_level, "info", "error, warn, info or debug", log_levels),
  C("log-format", "KILN_LOG_FORMAT", log_format, "text",
    "text, or json (one JSON object per line) for a log collector", log_formats),
};
#undef S
#undef C

void
config_print_help(FILE *out)
{
  for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
    const struct setting *s = &settings[i];
    char flag[48];
    snprintf(flag, sizeof flag, "--%s%s%s", s->key, s->metavar ? " " : "",
             s->metavar ? s->metavar : "");
    fprintf(out, "  %-28s %s\n  %-28s (%s; default %s)\n", flag, s->help, "", s->env, s->dflt);
  }
}

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
config_known(const char *key)
{
  for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
    if (strcmp(settings[i].key, key) == 0)
      return true;
  return false;
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
    case K_CHOICE:
      for (int k = 0; s->choices[k]; k++)
        if (strcmp(s->choices[k], value) == 0) {
          *(int *)field = k;
          return 0;
        }
      return kiln_error_make(err, 0, "--%s: '%s' is not one of the choices (see kiln --help)", key,
                             value);
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
    .max_reply = 20 << 10,
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
    .max_artifacts_size = 256 << 20,
    .cache_size = 256 << 20,
    .max_snapshot = 512 << 20,
    .idle_hibernate_s = 600,
    .session_ttl_s = 604800,
    .log_level = 2,
    .http = { .path = xstrdup("/mcp"),
              .max_connections = 512,
              .max_client_sessions = 256,
              .timeout_s = 30,
              .session_idle_s = 3600 },
    .packages = { .index = xstrdup("https://pypi.org/simple"),
                  .allow = xstrdup("*"),
                  .max_size = 256u << 20,
                  .timeout_s = 600 },
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
  free(cfg->daemon_socket);
  free(cfg->packages.index);
  free(cfg->packages.allow);
  cfg->packages.index = cfg->packages.allow = NULL;
  struct kiln_http_config *h = &cfg->http;
  char **strs[] = { &h->listen,      &h->path,     &h->allow_origin, &h->allow_host, &h->token_file,
                    &h->auth_server, &h->tls_cert, &h->tls_key,      &h->node_name };
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
    free(*strs[i]);
    *strs[i] = NULL;
  }
}
