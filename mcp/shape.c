#define _GNU_SOURCE
#include "shape.h"
#include "util.h"

#include <string.h>

/* The text line that stands for resource link BLOCK.  */
static char *
link_line(json_t *block)
{
  const char *uri = json_string_value(json_object_get(block, "uri"));
  const char *name = json_string_value(json_object_get(block, "name"));
  const char *mime = json_string_value(json_object_get(block, "mimeType"));
  json_t *size = json_object_get(block, "size");
  cleanup_free char *bytes = json_is_integer(size)
                                 ? xasprintf(", %lld bytes", (long long)json_integer_value(size))
                                 : xstrdup("");
  bool image = mime && strncmp(mime, "image/", 6) == 0;
  return xasprintf("[%s %s%s: %s (read it with resources/read)]", image ? "image" : "file",
                   name ? name : "", bytes, uri ? uri : "");
}

json_t *
shape_tool_result(enum mcp_version v, json_t *result)
{
  if (result == NULL || v >= MCP_2025_06_18)
    return result;
  json_object_del(result, "structuredContent");
  json_t *content = json_object_get(result, "content");
  size_t i;
  json_t *block;
  json_array_foreach(content, i, block)
  {
    const char *type = json_string_value(json_object_get(block, "type"));
    if (type == NULL || strcmp(type, "resource_link") != 0)
      continue;
    cleanup_free char *line = link_line(block);
    json_array_set_new(content, i, json_pack("{s:s, s:s}", "type", "text", "text", line));
  }
  return result;
}

json_t *
shape_tools_list(enum mcp_version v, json_t *result)
{
  if (result == NULL || v >= MCP_2025_06_18)
    return result;
  size_t i;
  json_t *tool;
  json_array_foreach(json_object_get(result, "tools"), i, tool)
  {
    json_object_del(tool, "title");
    json_object_del(tool, "outputSchema");
    if (v < MCP_2025_03_26)
      json_object_del(tool, "annotations");
  }
  return result;
}
