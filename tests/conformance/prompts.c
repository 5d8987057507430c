/* The fixture's prompts (prompts/list, prompts/get) and the completion
   of their arguments and of its resource template's (completion/complete).  */
#define _GNU_SOURCE
#include "conn.h"
#include "fixture.h"
#include "util.h"

#include <string.h>

int
fixture_prompts_list(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  *result = json_pack(
      "{s:[{s:s, s:s}, {s:s, s:s, s:[{s:s, s:s, s:b}, {s:s, s:s, s:b}]},"
      " {s:s, s:s, s:[{s:s, s:s, s:b}]}, {s:s, s:s}]}",
      "prompts", "name", "test_simple_prompt", "description", "A simple prompt without arguments",
      "name", "test_prompt_with_arguments", "description", "A prompt with required arguments",
      "arguments", "name", "arg1", "description", "First test argument", "required", 1, "name",
      "arg2", "description", "Second test argument", "required", 1, "name",
      "test_prompt_with_embedded_resource", "description", "A prompt with an embedded resource",
      "arguments", "name", "resourceUri", "description", "URI of the resource to embed", "required",
      1, "name", "test_prompt_with_image", "description", "A prompt with image content");
  return MCP_ANSWERED;
}

static json_t *
user_text(const char *text)
{
  return json_pack("{s:s, s:{s:s, s:s}}", "role", "user", "content", "type", "text", "text", text);
}

/* The string argument NAME of ARGS (borrowed), or NULL with ERR.  */
static const char *
argument(json_t *args, const char *name, kiln_error_t *err)
{
  const char *v = json_string_value(json_object_get(args, name));
  if (v == NULL)
    kiln_error_make(err, 0, "missing required argument '%s'", name);
  return v;
}

int
fixture_prompts_get(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  const char *name = json_string_value(json_object_get(params, "name"));
  json_t *args = json_object_get(params, "arguments");
  if (name == NULL) {
    kiln_error_make(err, 0, "prompts/get needs a string \"name\"");
    return JRPC_INVALID_PARAMS;
  }
  json_t *messages;
  if (strcmp(name, "test_simple_prompt") == 0)
    messages = json_pack("[o]", user_text("This is a simple prompt for testing."));
  else if (strcmp(name, "test_prompt_with_arguments") == 0) {
    const char *a1 = argument(args, "arg1", err);
    const char *a2 = a1 ? argument(args, "arg2", err) : NULL;
    if (a2 == NULL)
      return JRPC_INVALID_PARAMS;
    cleanup_free char *text = xasprintf("Prompt with arguments: arg1='%s', arg2='%s'", a1, a2);
    messages = json_pack("[o]", user_text(text));
  } else if (strcmp(name, "test_prompt_with_embedded_resource") == 0) {
    const char *uri = argument(args, "resourceUri", err);
    if (uri == NULL)
      return JRPC_INVALID_PARAMS;
    messages = json_pack("[{s:s, s:{s:s, s:{s:s, s:s, s:s}}}, o]", "role", "user", "content",
                         "type", "resource", "resource", "uri", uri, "mimeType", "text/plain",
                         "text", "Embedded resource content for testing.",
                         user_text("Please process the embedded resource above."));
  } else if (strcmp(name, "test_prompt_with_image") == 0)
    messages = json_pack("[{s:s, s:{s:s, s:s, s:s}}, o]", "role", "user", "content", "type",
                         "image", "data", fixture_png_b64, "mimeType", "image/png",
                         user_text("Please analyze the image above."));
  else {
    kiln_error_make(err, 0, "unknown prompt '%s'", name);
    return JRPC_INVALID_PARAMS;
  }
  *result = json_pack("{s:o}", "messages", messages);
  return MCP_ANSWERED;
}

/* The values of WORDS that start with PREFIX, as a completion.  */
static json_t *
complete_from(const char *const *words, const char *prefix)
{
  json_t *values = json_array();
  for (size_t i = 0; words[i]; i++)
    if (strncmp(words[i], prefix, strlen(prefix)) == 0)
      json_array_append_new(values, json_string(words[i]));
  return json_pack("{s:{s:o, s:I, s:b}}", "completion", "values", values, "total",
                   (json_int_t)json_array_size(values), "hasMore", 0);
}

int
fixture_complete(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err)
{
  static const char *const words[] = { "paris", "park", "party", "test", "testing", NULL };
  static const char *const ids[] = { "1", "2", "3", "123", NULL };
  json_t *ref = json_object_get(params, "ref");
  const char *type = json_string_value(json_object_get(ref, "type"));
  const char *arg = json_string_value(json_object_get(json_object_get(params, "argument"), "name"));
  const char *value
      = json_string_value(json_object_get(json_object_get(params, "argument"), "value"));
  if (type == NULL || arg == NULL || value == NULL) {
    kiln_error_make(err, 0, "completion/complete needs \"ref\" and \"argument\" {name, value}");
    return JRPC_INVALID_PARAMS;
  }
  const char *name = json_string_value(json_object_get(ref, "name"));
  const char *uri = json_string_value(json_object_get(ref, "uri"));
  if (strcmp(type, "ref/prompt") == 0 && name && strcmp(name, "test_prompt_with_arguments") == 0
      && (strcmp(arg, "arg1") == 0 || strcmp(arg, "arg2") == 0))
    *result = complete_from(words, value);
  else if (strcmp(type, "ref/resource") == 0 && uri && strcmp(uri, "test://template/{id}/data") == 0
           && strcmp(arg, "id") == 0)
    *result = complete_from(ids, value);
  else {
    kiln_error_make(err, 0, "nothing to complete for %s argument '%s'", type, arg);
    return JRPC_INVALID_PARAMS;
  }
  return MCP_ANSWERED;
}
