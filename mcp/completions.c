/* completion/complete: the values a resource template's arguments may
   take — session ids, artifact names and file paths of a session — for a
   client that offers them as its user types.  */
#define _GNU_SOURCE
#include "completions.h"
#include "conn.h"
#include "uri.h"
#include "owners.h"
#include "util.h"

#include <string.h>

/* MCP caps a completion at 100 values.  */
#define MAX_VALUES 100

struct values {
  json_t *list;
  size_t total;
  const char *prefix;
  size_t prefix_len;
  const char *session_id; /* for artifact names: only this session's, or NULL */
  const struct mcp_conn *conn;
};

static void
offer(struct values *v, const char *value, size_t len)
{
  if (len < v->prefix_len || memcmp(value, v->prefix, v->prefix_len) != 0)
    return;
  v->total++;
  if (json_array_size(v->list) < MAX_VALUES)
    json_array_append_new(v->list, json_stringn(value, len));
}

static json_t *
completion(struct values *v)
{
  return json_pack("{s:{s:o, s:I, s:b}}", "completion", "values", v->list, "total",
                   (json_int_t)v->total, "hasMore", v->total > json_array_size(v->list));
}

static void
offer_artifact(void *ctx, const char *sid, const char *name, const char *mime, size_t size,
               uint32_t w, uint32_t h)
{
  struct values *v = ctx;
  if ((v->session_id == NULL || strcmp(v->session_id, sid) == 0) && mcp_owner_may(v->conn, sid))
    offer(v, name, strlen(name));
}

struct path_pending {
  struct mcp_pending base; /* first: mcp_defer allocates the whole */
  char *prefix;            /* owned */
};

static void
release_path(struct mcp_pending *p)
{
  free(((struct path_pending *)p)->prefix);
}

static void
on_listing(void *ctx, const struct file_reply *r)
{
  struct path_pending *p = ctx;
  struct values v = { .list = json_array(), .prefix = p->prefix, .prefix_len = strlen(p->prefix) };
  /* A path that names nothing yet completes to nothing, not an error.  */
  for (size_t i = 0; r->status == 0 && i < r->nentries; i++) {
    const struct file_entry *e = &r->entries[i];
    cleanup_free char *shown = e->kind == 'd' ? xasprintf("%s/", e->path) : xstrdup(e->path);
    offer(&v, shown, strlen(shown));
  }
  mcp_answer(&p->base, completion(&v));
}

int
completion_method(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  json_t *ref = json_object_get(params, "ref");
  json_t *arg = json_object_get(params, "argument");
  const char *type = json_string_value(json_object_get(ref, "type"));
  const char *uri = json_string_value(json_object_get(ref, "uri"));
  json_t *name = json_object_get(arg, "name"), *value = json_object_get(arg, "value");
  if (type == NULL || !json_is_string(name) || !json_is_string(value)) {
    kiln_error_make(err, 0,
                    "completion/complete needs \"ref\" {type, uri} and \"argument\" {name, value}");
    return JRPC_INVALID_PARAMS;
  }
  if (strcmp(type, "ref/resource") != 0 || uri == NULL
      || (strcmp(uri, URI_PREFIX "{session_id}/artifacts/{name}") != 0
          && strcmp(uri, URI_PREFIX "{session_id}/files/{path}") != 0
          && strcmp(uri, URI_PREFIX "{session_id}/history") != 0)) {
    kiln_error_make(err, 0,
                    "kiln completes the arguments of its resource templates only (kiln has no "
                    "prompts)");
    return JRPC_INVALID_PARAMS;
  }
  const char *arg_name = json_string_value(name);
  json_t *sid_arg = json_object_get(
      json_object_get(json_object_get(params, "context"), "arguments"), "session_id");
  const char *sid = json_string_value(sid_arg);
  if (sid && strlen(sid) != json_string_length(sid_arg))
    sid = NULL;
  struct values v = { .list = json_array(),
                      .prefix = json_string_value(value),
                      .prefix_len = json_string_length(value),
                      .session_id = sid,
                      .conn = c->conn };
  if (strcmp(arg_name, "session_id") == 0) {
    size_t n;
    cleanup_free struct session_info *all = front_list_sessions(c->server->front, &n);
    for (size_t i = 0; i < n; i++)
      if (mcp_owner_may(c->conn, all[i].session_id))
        offer(&v, all[i].session_id, strlen(all[i].session_id));
  } else if (strcmp(arg_name, "name") == 0 && strstr(uri, "/artifacts/"))
    front_each_artifact(c->server->front, offer_artifact, &v);
  else if (strcmp(arg_name, "path") == 0 && strstr(uri, "/files/")) {
    json_decref(v.list);
    if (sid == NULL || !mcp_owner_may(c->conn, sid)) {
      /* Without a session, no path can be known.  */
      *result = json_pack("{s:{s:[], s:i, s:b}}", "completion", "values", "total", 0, "hasMore", 0);
      return MCP_ANSWERED;
    }
    /* The listing of the directory the value is in (it is recursive:
       deeper paths come too, and are offered when they match).  */
    const char *p = json_string_value(value);
    const char *slash = strrchr(p, '/');
    size_t dir_len = slash ? (size_t)(slash - p) : 0;
    struct path_pending *pp = mcp_defer(c, sizeof *pp, JRPC_INVALID_PARAMS);
    pp->prefix = xstrndup(p, json_string_length(value));
    pp->base.release = release_path;
    int64_t h = front_file_op(c->server->front, sid, FRONT_FILE_LIST, p, dir_len, NULL, 0, 0,
                              on_listing, pp, err);
    return mcp_started(&pp->base, h);
  } else {
    json_decref(v.list);
    kiln_error_make(err, 0, "the template %s has no argument '%s'", uri, arg_name);
    return JRPC_INVALID_PARAMS;
  }
  *result = completion(&v);
  return MCP_ANSWERED;
}
