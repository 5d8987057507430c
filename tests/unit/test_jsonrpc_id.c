#define _GNU_SOURCE
/* A request that does not parse is still answered with its id when the
   id can be read: the scan that finds it, and the replies built on it.  */
#include "check.h"
#include "jsonrpc.h"
#include "util.h"

/* The id jrpc_scan_id finds in TEXT, as compact JSON ("none" for NULL).  */
static char *
scanned(const char *text)
{
  json_t *id = jrpc_scan_id(text, strlen(text));
  char *s = id ? json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT) : xstrdup("none");
  json_decref(id);
  return s;
}

static bool
scans_to(const char *text, const char *want)
{
  char *got = scanned(text);
  bool ok = strcmp(got, want) == 0;
  if (!ok)
    fprintf(stderr, "  scan %s: got %s, want %s\n", text, got, want);
  free(got);
  return ok;
}

static void
the_scan_finds_a_top_level_id(void)
{
  CHECK(scans_to("{\"id\":7}", "7"));
  CHECK(scans_to("  {\"jsonrpc\":\"2.0\", \"id\" : \"abc\" , \"method\":\"ping\"}", "\"abc\""));
  CHECK(scans_to("{\"method\":\"x\",\"params\":{\"a\":[1,{\"b\":\"}\"}]},\"id\":-3}", "-3"));
  CHECK(scans_to("{\"id\":\"a\\\"b\\u00e9\"}", "\"a\\\"bé\""));
  CHECK(scans_to("{\"id\":9223372036854775807}", "9223372036854775807"));
  /* The message may stop anywhere after the id: a line cut at the limit.  */
  CHECK(scans_to("{\"id\":12,\"params\":{\"code\":\"xxxxxxx", "12"));
  CHECK(scans_to("{\"id\":12,\"params\":{\"code\":\"x\\", "12"));
  /* Or be broken after it.  */
  CHECK(scans_to("{\"id\":5, bogus}", "5"));
}

static void
the_scan_finds_nothing_where_there_is_no_usable_id(void)
{
  CHECK(scans_to("", "none"));
  CHECK(scans_to("not json", "none"));
  CHECK(scans_to("[{\"id\":1}]", "none"));
  CHECK(scans_to("{\"method\":\"ping\"}", "none"));
  /* Only the top level counts; an "id" in a string or below is not it.  */
  CHECK(scans_to("{\"params\":{\"id\":1}}", "none"));
  CHECK(scans_to("{\"x\":\"\\\"id\\\":2\"}", "none"));
  CHECK(scans_to("{\"x\":[\"id\",3]}", "none"));
  CHECK(scans_to("{\"ids\":1,\"xid\":2}", "none"));
  /* Ids that are not integers or strings, or do not decode.  */
  CHECK(scans_to("{\"id\":1.5}", "none"));
  CHECK(scans_to("{\"id\":null}", "none"));
  CHECK(scans_to("{\"id\":true}", "none"));
  CHECK(scans_to("{\"id\":{\"a\":1}}", "none"));
  CHECK(scans_to("{\"id\":[1]}", "none"));
  CHECK(scans_to("{\"id\":99999999999999999999}", "none"));
  CHECK(scans_to("{\"id\":\"\\uD800\"}", "none"));
  CHECK(scans_to("{\"id\":\"unterminated", "none"));
  CHECK(scans_to("{\"id\":}", "none"));
  /* Two ids: which one the client meant is anyone's guess.  */
  CHECK(scans_to("{\"id\":1,\"id\":2}", "none"));
  CHECK(scans_to("{\"id\":1,\"x\":{\"y\":[]},\"id\":\"1\"}", "none"));
  /* Structure broken before the id.  */
  CHECK(scans_to("{\"a\" 1, \"id\":1}", "none"));
  CHECK(scans_to("{, \"id\":1}", "none"));
}

static void
the_scan_is_linear_in_the_length_of_the_text(void)
{
  /* Deep nesting costs a counter, not a stack.  */
  size_t n = 4 << 20;
  char *text = xmalloc(n + 64);
  strcpy(text, "{\"x\":");
  memset(text + 5, '[', n);
  strcpy(text + 5 + n, "], \"id\":1}");
  json_t *id = jrpc_scan_id(text, strlen(text));
  CHECK(id == NULL); /* the brackets never close */
  free(text);
}

/* The reply jrpc_parse gives TEXT: its id (compact JSON) and code.  */
static bool
refused_with(const char *text, size_t len, const char *want_id, int want_code)
{
  struct jrpc_msg m;
  json_t *reply = NULL;
  int r = jrpc_parse(text, len, &m, &reply);
  if (r == 0)
    jrpc_msg_free(&m);
  char *id = reply ? json_dumps(json_object_get(reply, "id"), JSON_ENCODE_ANY) : xstrdup("-");
  int code = (int)json_integer_value(json_object_get(json_object_get(reply, "error"), "code"));
  bool ok = r == -1 && strcmp(id, want_id) == 0 && code == want_code;
  if (!ok)
    fprintf(stderr, "  parse %.60s: r=%d id=%s code=%d\n", text, r, id, code);
  free(id);
  json_decref(reply);
  return ok;
}

#define T(lit) lit, sizeof lit - 1

static void
a_request_that_does_not_parse_is_answered_with_its_id(void)
{
  CHECK(refused_with(T("{\"jsonrpc\":\"2.0\",\"id\":41,\"method\":\"ping\",\"params\":{\"n\":"
                       "99999999999999999999}}"),
                     "41", JRPC_PARSE_ERROR));
  CHECK(refused_with(T("{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"ping\",\"params\":{\"x\":"
                       "\"\\uD800\"}}"),
                     "\"s\"", JRPC_PARSE_ERROR));
  CHECK(refused_with(T("{\"jsonrpc\":\"2.0\",\"id\":43,\"method\":\"tools/call\",\"params\":{"
                       "\"a\\u0000b\":1}}"),
                     "43", JRPC_PARSE_ERROR));
  CHECK(refused_with(T("{\"jsonrpc\":\"2.0\",\"id\":44,\"method\":\"ping\",\"method\":\"x\"}"),
                     "44", JRPC_PARSE_ERROR));
  CHECK(refused_with(T("{\"id\":45,\"jsonrpc\":\"2.0\",\"method\":\"ping\"} trailing"), "45",
                     JRPC_PARSE_ERROR));
  /* Nothing to recover: JSON-RPC says null.  */
  CHECK(refused_with(T("{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}"), "null",
                     JRPC_PARSE_ERROR));
  CHECK(refused_with(T("{not json"), "null", JRPC_PARSE_ERROR));
}

static void
the_version_and_method_are_compared_with_all_their_bytes(void)
{
  CHECK(refused_with(T("{\"jsonrpc\":\"2.0\\u0000\",\"id\":1,\"method\":\"ping\"}"), "1",
                     JRPC_INVALID_REQUEST));
  struct jrpc_msg m;
  json_t *reply = NULL;
  const char text[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\\u0000x\"}";
  CHECK(jrpc_parse(text, sizeof text - 1, &m, &reply) == 0);
  CHECK(m.method_len == 6 && memcmp(m.method, "ping\0x", 6) == 0);
  jrpc_msg_free(&m);
}

static void
a_reply_that_could_not_be_built_is_an_internal_error(void)
{
  json_t *id = json_integer(3);
  json_t *r = jrpc_result(id, NULL);
  CHECK(json_integer_value(json_object_get(r, "id")) == 3);
  CHECK(json_integer_value(json_object_get(json_object_get(r, "error"), "code"))
        == JRPC_INTERNAL_ERROR);
  json_decref(r);
  /* An error message that is not UTF-8, or is huge, still makes a reply.  */
  r = jrpc_error(id, JRPC_INVALID_PARAMS, "bad \xc3 byte", NULL);
  const char *msg = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
  CHECK(msg && strcmp(msg, "bad \xef\xbf\xbd byte") == 0);
  json_decref(r);
  char *huge = xmalloc(1 << 20);
  memset(huge, 'y', (1 << 20) - 1);
  huge[(1 << 20) - 1] = '\0';
  r = jrpc_error(id, JRPC_INVALID_PARAMS, huge, NULL);
  msg = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
  CHECK(msg && strlen(msg) < 8192);
  json_decref(r);
  free(huge);
  json_decref(id);
}

static const struct test_case cases[] = {
  { "the scan finds a top-level id", the_scan_finds_a_top_level_id },
  { "the scan finds nothing where there is no usable id",
    the_scan_finds_nothing_where_there_is_no_usable_id },
  { "the scan is linear in the length of the text", the_scan_is_linear_in_the_length_of_the_text },
  { "a request that does not parse is answered with its id",
    a_request_that_does_not_parse_is_answered_with_its_id },
  { "the version and method are compared with all their bytes",
    the_version_and_method_are_compared_with_all_their_bytes },
  { "a reply that could not be built is an internal error",
    a_reply_that_could_not_be_built_is_an_internal_error },
};

int
main(void)
{
  return RUN(cases);
}
