#define _GNU_SOURCE
#include "schema.h"
#include "util.h"

#include <string.h>

/* The longest argument name a message quotes.  */
#define SHOWN_KEY 64

/* Appends S unless it is empty (buf_append may not be given an empty
   buffer and nothing).  */
static void
add(struct buf *b, const char *s)
{
  if (*s)
    buf_append(b, s, strlen(s));
}

static bool
has_type(json_t *v, const char *type)
{
  if (strcmp(type, "string") == 0)
    return json_is_string(v);
  if (strcmp(type, "number") == 0)
    return json_is_number(v);
  if (strcmp(type, "integer") == 0)
    return json_is_integer(v);
  if (strcmp(type, "boolean") == 0)
    return json_is_boolean(v);
  if (strcmp(type, "object") == 0)
    return json_is_object(v);
  if (strcmp(type, "array") == 0)
    return json_is_array(v);
  if (strcmp(type, "null") == 0)
    return json_is_null(v);
  return false;
}

/* Whether V is of TYPE, a type name or a list of them; appends the
   names to WANT ("a string or null") for the message.  */
static bool
type_ok(json_t *v, json_t *type, struct buf *want)
{
  if (type == NULL)
    return true;
  bool ok = false;
  size_t n = json_is_array(type) ? json_array_size(type) : 1;
  for (size_t i = 0; i < n; i++) {
    const char *t = json_string_value(json_is_array(type) ? json_array_get(type, i) : type);
    if (t == NULL)
      continue;
    ok |= has_type(v, t);
    const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
    const char *article = i > 0 ? "" : strchr("aeiou", t[0]) ? "an " : "a ";
    add(want, sep);
    add(want, article);
    add(want, t);
  }
  buf_append(want, "", 1);
  return ok;
}

static bool
in_enum(json_t *v, json_t *values, struct buf *list)
{
  bool ok = false;
  size_t i;
  json_t *e;
  json_array_foreach(values, i, e)
  {
    if (json_is_string(v) && json_is_string(e))
      ok |= json_string_length(v) == json_string_length(e)
            && memcmp(json_string_value(v), json_string_value(e), json_string_length(e)) == 0;
    else
      ok |= json_equal(v, e);
    char *s = json_dumps(e, JSON_ENCODE_ANY);
    if (s) {
      if (i)
        buf_append(list, ", ", 2);
      buf_append(list, s, strlen(s));
      free(s);
    }
  }
  buf_append(list, "", 1);
  return ok;
}

static int
check_value(const char *key, json_t *v, json_t *prop, kiln_error_t *err)
{
  struct buf want = { 0 };
  bool ok = type_ok(v, json_object_get(prop, "type"), &want);
  if (!ok) {
    kiln_error_make(err, 0, "argument '%s' must be %s", key, (const char *)want.data);
    buf_free(&want);
    return -1;
  }
  buf_free(&want);
  json_t *values = json_object_get(prop, "enum");
  if (json_is_array(values)) {
    struct buf list = { 0 };
    ok = in_enum(v, values, &list);
    if (!ok)
      kiln_error_make(err, 0, "argument '%s' must be one of %s", key, (const char *)list.data);
    buf_free(&list);
    if (!ok)
      return -1;
  }
  json_t *min = json_object_get(prop, "exclusiveMinimum");
  if (json_is_number(min) && json_is_number(v) && !(json_number_value(v) > json_number_value(min)))
    return kiln_error_make(err, 0, "argument '%s' must be greater than %g (got %g)", key,
                           json_number_value(min), json_number_value(v));
  return 0;
}

int
schema_check_args(json_t *schema, const char *tool, json_t *args, kiln_error_t *err)
{
  json_t *props = json_object_get(schema, "properties");
  json_t *required = json_object_get(schema, "required");
  if (!json_is_object(args))
    return kiln_error_make(err, 0, "%s: the arguments must be an object", tool);
  const char *key;
  size_t key_len;
  json_t *v;
  json_object_keylen_foreach(args, key, key_len, v)
  {
    if (json_object_getn(props, key, key_len) != NULL)
      continue;
    cleanup_free char *shown = utf8_excerpt(key, key_len, SHOWN_KEY);
    struct buf names = { 0 };
    const char *k;
    json_t *p;
    json_object_foreach(props, k, p)
    {
      if (names.len)
        buf_append(&names, ", ", 2);
      buf_append(&names, k, strlen(k));
    }
    buf_append(&names, "", 1);
    if (names.len > 1)
      kiln_error_make(err, 0, "unknown argument '%s' (%s takes %s)", shown, tool,
                      (const char *)names.data);
    else
      kiln_error_make(err, 0, "unknown argument '%s' (%s takes no arguments)", shown, tool);
    buf_free(&names);
    return -1;
  }
  size_t i;
  json_array_foreach(required, i, v)
  {
    const char *name = json_string_value(v);
    json_t *arg = json_object_get(args, name);
    if (arg == NULL || json_is_null(arg)) {
      const char *desc
          = json_string_value(json_object_get(json_object_get(props, name), "description"));
      /* The description is a sentence; in parentheses it loses its
         full stop.  */
      size_t dlen = desc ? strlen(desc) : 0;
      if (dlen && desc[dlen - 1] == '.')
        dlen--;
      return kiln_error_make(err, 0, "missing required argument '%s'%s%.*s%s", name,
                             desc ? " (" : "", (int)dlen, desc ? desc : "", desc ? ")" : "");
    }
  }
  json_object_foreach(props, key, v)
  {
    json_t *arg = json_object_get(args, key);
    if (arg == NULL || json_is_null(arg))
      continue;
    if (check_value(key, arg, v, err) < 0)
      return -1;
  }
  return 0;
}
