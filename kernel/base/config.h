/* kiln's configuration: defaults, then environment variables, then flags.
   One struct read by the front and handed to the zygote in its first
   frame (handoff.h).  */
#ifndef KILN_CONFIG_H
#define KILN_CONFIG_H

#include "error.h"

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kiln_config {
  double timeout_s;     /* default per-cell deadline */
  double max_timeout_s; /* the largest timeout_s a call may ask for */
  double grace_s;       /* from SIGINT at the deadline to SIGKILL */
  size_t max_output;    /* bytes kept per stream per cell (head + tail) */
  size_t max_result;    /* characters of a result's repr */
  size_t max_reply;     /* characters of text a reply shows (head and tail of each part) */
  size_t max_code;      /* bytes of a cell's source */
  size_t max_message;   /* bytes of one JSON-RPC message */
  size_t max_sessions;
  size_t max_queued;         /* cells waiting behind a running one, per session */
  size_t spares;             /* workers kept started ahead of new sessions */
  size_t max_image_side;     /* pixels: larger images are sent downscaled */
  size_t memory;             /* cgroup memory limit per session, bytes */
  size_t max_procs;          /* processes and threads per session */
  size_t max_files;          /* open files per process */
  size_t work_size;          /* /work */
  size_t tmp_size;           /* /tmp and /dev/shm, each */
  double cpus;               /* CPU bandwidth per session, in cores */
  int insecure_no_sandbox;   /* run cells unjailed: the operator said so */
  size_t max_artifacts_size; /* images on disk, all sessions; a quarter per session */
  size_t cache_size;         /* the code cache's bytes in kiln.db */
  size_t max_snapshot;       /* bytes of a hibernated session's variables */
  double idle_hibernate_s;   /* an idle session is hibernated after this */
  double session_ttl_s;      /* a session unused this long is deleted, snapshot and history */
  int log_level;             /* enum log_level (log.h) */
  int log_format;            /* 0 text, 1 json */
  char *preload;             /* comma-separated module names */
  char *home;                /* KILN_HOME: state directory */
  char *venv;                /* the sandbox's virtual environment */
  char *runtime_dir;         /* python/sitecustomize */
  /* Take workers from the daemon listening here (kernel/daemon) instead
     of a zygote of the front's own; NULL for its own.  Only the front
     reads it.  */
  char *daemon_socket;
  /* The Streamable HTTP transport (mcp/transport/http.h); only the
     front reads it, and the zygote receives it zeroed.  */
  struct kiln_http_config {
    char *listen;       /* "[ADDR:]PORT", or NULL for stdio */
    char *path;         /* the MCP endpoint, "/mcp" */
    char *allow_origin; /* comma-separated origins beyond loopback ones */
    char *allow_host;   /* comma-separated Host names beyond IP literals */
    char *token_file;   /* bearer tokens, one a line */
    char *auth_server;  /* named in the protected resource metadata */
    char *tls_cert;     /* PEM files: serve HTTPS */
    char *tls_key;
    char *node_name;       /* prefixes MCP session ids, for a router */
    int insecure_no_token; /* bind beyond loopback without tokens */
    int metrics_public;    /* /metrics without a token */
    size_t max_connections;
    size_t max_client_sessions; /* MCP sessions per token, or per address without tokens */
    double timeout_s;           /* idle connection; a request's headers and body */
    double session_idle_s;      /* an MCP session unused this long is ended */
  } http;
  /* install_packages (kernel/front/install.c); only the front reads it,
     and the zygote receives it zeroed.  */
  struct kiln_packages_config {
    char *index;     /* the simple index pip installs from */
    char *allow;     /* "*", comma-separated names, or a file of names */
    size_t max_size; /* bytes of one installed package */
    double timeout_s;
  } packages;
  /* How workers are jailed, probed at start-up (sandbox.h); owned by
     whoever filled it in.  */
  struct sbx_config *sbx;
};

/* Fills CFG with defaults and KILN_* environment variables; the strings are
   allocated and freed by config_free.  Returns -1 with ERR on a malformed
   variable.  */
int config_init(struct kiln_config *cfg, kiln_error_t *err);
void config_free(struct kiln_config *cfg);

/* Parses NAME=VALUE style settings shared by flags and the environment.
   KEY is the flag name without dashes ("timeout", "max-output").  Returns
   -1 with ERR if the key is unknown or the value malformed.  */
int config_set(struct kiln_config *cfg, const char *key, const char *value, kiln_error_t *err);

/* Prints every setting, one entry each, for --help.  */
void config_print_help(FILE *out);

/* Whether KEY (without dashes) names a setting.  */
bool config_known(const char *key);

/* Whether KEY is a flag that takes no value on the command line.  */
bool config_is_flag(const char *key);

/* Parses a size such as "262144", "256K", "16M".  Returns -1 when
   malformed or zero.  */
int config_parse_size(const char *s, size_t *out);
/* Parses a positive number of seconds ("30", "0.5").  */
int config_parse_seconds(const char *s, double *out);

#ifdef __cplusplus
}
#endif

#endif
