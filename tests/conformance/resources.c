/* The fixture's resources: two static ones, one to subscribe to, and a
   template whose reads echo the id they were given.  */
#define _GNU_SOURCE
#include "conn.h"
#include "fixture.h"
#include "util.h"

#include <string.h>

#define TEMPLATE_HEAD "test://template/"
#define TEMPLATE_TAIL "/data"

int
fixture_resources_list(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  *result
      = json_pack("{s:[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]}",
                  "resources", "uri", "test://static-text", "name", "Static Text Resource",
                  "description", "A static text resource for testing", "mimeType", "text/plain",
                  "uri", "test://static-binary", "name", "Static Binary Resource", "description",
                  "A static binary resource (image) for testing", "mimeType", "image/png", "uri",
                  "test://watched-resource", "name", "Watched Resource", "description",
                  "A resource that can be subscribed to", "mimeType", "text/plain");
  return MCP_ANSWERED;
}

int
fixture_templates_list(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  *result = json_pack("{s:[{s:s, s:s, s:s, s:s}]}", "resourceTemplates", "uriTemplate",
                      "test://template/{id}/data", "name", "Resource Template", "description",
                      "A resource template with a parameter", "mimeType", "application/json");
  return MCP_ANSWERED;
}

static json_t *
one_text(const char *uri, const char *mime, const char *text)
{
  return json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType", mime, "text", text);
}

/* The id of a URI test://template/{id}/data (allocated), or NULL.  */
static char *
template_id(const char *uri)
{
  size_t n = strlen(uri), head = strlen(TEMPLATE_HEAD), tail = strlen(TEMPLATE_TAIL);
  if (n <= head + tail || strncmp(uri, TEMPLATE_HEAD, head) != 0
      || strcmp(uri + n - tail, TEMPLATE_TAIL) != 0)
    return NULL;
  char *id = xstrndup(uri + head, n - head - tail);
  if (strchr(id, '/')) {
    free(id);
    return NULL;
  }
  return id;
}

int
fixture_resources_read(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  json_t *juri = json_object_get(params, "uri");
  const char *uri = json_string_value(juri);
  if (uri == NULL || strlen(uri) != json_string_length(juri)) {
    kiln_error_make(err, 0, "resources/read needs a string \"uri\"");
    return JRPC_INVALID_PARAMS;
  }
  cleanup_free char *id = template_id(uri);
  if (strcmp(uri, "test://static-text") == 0)
    *result = one_text(uri, "text/plain", "This is the content of the static text resource.");
  else if (strcmp(uri, "test://watched-resource") == 0)
    *result = one_text(uri, "text/plain", "Watched resource content");
  else if (strcmp(uri, "test://static-binary") == 0)
    *result = json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType", "image/png",
                        "blob", fixture_png_b64);
  else if (id) {
    json_t *body
        = json_pack("{s:s, s:b, s:s+}", "id", id, "templateTest", 1, "data", "Data for ID: ", id);
    cleanup_free char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    *result = one_text(uri, "application/json", text);
  } else {
    kiln_error_make(err, 0, "resource not found: %s", uri);
    return MCP_RESOURCE_NOT_FOUND;
  }
  return MCP_ANSWERED;
}

/* resources/subscribe and resources/unsubscribe: accepted for any URI
   the fixture serves.  Nothing it serves ever changes, so a subscription
   never yields an update and there is nothing to keep.  */
int
fixture_subscribe(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  const char *uri = json_string_value(json_object_get(params, "uri"));
  if (uri == NULL) {
    kiln_error_make(err, 0, "a subscription needs a string \"uri\"");
    return JRPC_INVALID_PARAMS;
  }
  *result = json_object();
  return MCP_ANSWERED;
}
