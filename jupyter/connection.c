/* The connection file Jupyter writes before it starts a kernel.  Every
   field the kernel needs is checked here, so that a bad file stops the
   kernel before anything is started, with a message naming the field.  */
#define _GNU_SOURCE
#include "connection.h"
#include "util.h"

#include <jansson.h>
#include <string.h>

static const char *const port_keys[JUP_NCHANNELS] = {
  [JUP_SHELL] = "shell_port", [JUP_CONTROL] = "control_port", [JUP_IOPUB] = "iopub_port",
  [JUP_STDIN] = "stdin_port", [JUP_HB] = "hb_port",
};

static const char *const channel_names[JUP_NCHANNELS] = {
  [JUP_SHELL] = "shell", [JUP_CONTROL] = "control", [JUP_IOPUB] = "iopub",
  [JUP_STDIN] = "stdin", [JUP_HB] = "heartbeat",
};

const char *
jup_channel_name(enum jup_channel ch)
{
  return channel_names[ch];
}

/* The string KEY of O, or DEF when it is absent; -1 with ERR when it is
   there but not a string.  */
static int
get_string(json_t *o, const char *key, const char *def, const char **out, kiln_error_t *err)
{
  json_t *v = json_object_get(o, key);
  if (v == NULL) {
    *out = def;
    return 0;
  }
  if (!json_is_string(v))
    return kiln_error_make(err, 0, "\"%s\" must be a string", key);
  *out = json_string_value(v);
  return 0;
}

int
jup_connection_read(const char *path, struct jup_connection *c, kiln_error_t *err)
{
  memset(c, 0, sizeof *c);
  json_error_t je;
  json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (o == NULL && je.line < 1)
    return kiln_error_make(err, 0, "connection file %s: %s", path, je.text);
  if (o == NULL)
    return kiln_error_make(err, 0, "connection file %s: %s (line %d)", path, je.text, je.line);
  int rc = -1;
  const char *transport = NULL, *ip = NULL, *key = NULL, *scheme = NULL;
  if (!json_is_object(o)) {
    kiln_error_make(err, 0, "not a JSON object");
    goto out;
  }
  if (get_string(o, "transport", "tcp", &transport, err) < 0
      || get_string(o, "ip", "127.0.0.1", &ip, err) < 0 || get_string(o, "key", "", &key, err) < 0
      || get_string(o, "signature_scheme", "hmac-sha256", &scheme, err) < 0)
    goto out;
  if (strcmp(transport, "tcp") != 0 && strcmp(transport, "ipc") != 0) {
    kiln_error_make(err, 0, "transport \"%s\" is not supported: tcp or ipc", transport);
    goto out;
  }
  /* The only scheme jupyter_client offers besides none; refusing the
     rest is better than a kernel whose every message is dropped.  */
  if (strcmp(scheme, "hmac-sha256") != 0) {
    kiln_error_make(err, 0, "signature_scheme \"%s\" is not supported: only hmac-sha256", scheme);
    goto out;
  }
  if (ip[0] == '\0') {
    kiln_error_make(err, 0, "\"ip\" is empty");
    goto out;
  }
  for (int ch = 0; ch < JUP_NCHANNELS; ch++) {
    json_t *v = json_object_get(o, port_keys[ch]);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
      kiln_error_make(err, 0,
                      "\"%s\" must be a port number from 1 to 65535 (Jupyter chooses the ports "
                      "and writes them here)",
                      port_keys[ch]);
      goto out;
    }
    c->ports[ch] = (int)json_integer_value(v);
  }
  c->transport = xstrdup(transport);
  c->ip = xstrdup(ip);
  c->key_len = strlen(key);
  c->key = (uint8_t *)xstrdup(key);
  rc = 0;
out:
  if (rc < 0 && err && *err)
    kiln_error_wrap(err, "connection file %s", path);
  json_decref(o);
  return rc;
}

void
jup_connection_free(struct jup_connection *c)
{
  free(c->transport);
  free(c->ip);
  if (c->key)
    memset(c->key, 0, c->key_len);
  free(c->key);
  memset(c, 0, sizeof *c);
}

char *
jup_connection_endpoint(const struct jup_connection *c, enum jup_channel ch)
{
  if (strcmp(c->transport, "ipc") == 0)
    return xasprintf("ipc://%s-%d", c->ip, c->ports[ch]);
  /* An IPv6 address goes in brackets, as ZeroMQ wants it.  */
  if (strchr(c->ip, ':'))
    return xasprintf("tcp://[%s]:%d", c->ip, c->ports[ch]);
  return xasprintf("tcp://%s:%d", c->ip, c->ports[ch]);
}
