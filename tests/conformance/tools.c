/* The fixture's tools: one per tool the conformance suite calls by name,
   each answering as the suite's scenario describes it.  Those that log,
   report progress or ask the client something answer later, through
   mcp_defer, as kiln's own tools do.  */
#define _GNU_SOURCE
#include "conn.h"
#include "fixture.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* The suite's logging and progress scenarios ask for steps about 50 ms
   apart, so that a client sees notifications arrive during the call.  */
#define STEP_MS 50

const char fixture_png_b64[] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4z8AAAAM"
                               "BAQD3A0FDAAAAAElFTkSuQmCC";
/* 8 kHz, mono, 16-bit, eight samples of silence.  */
const char fixture_wav_b64[]
    = "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA";

static const char no_args[] = "{\"type\": \"object\", \"properties\": {}}";

static json_t *
text_result(const char *text)
{
  return json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text);
}

static json_t *
image_block(void)
{
  return json_pack("{s:s, s:s, s:s}", "type", "image", "data", fixture_png_b64, "mimeType",
                   "image/png");
}

/* ---------------------------------------------------------------- content */

static int
simple_text(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  *result = text_result("This is a simple text response for testing.");
  return MCP_ANSWERED;
}

static int
image_content(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  *result = json_pack("{s:[o]}", "content", image_block());
  return MCP_ANSWERED;
}

static int
audio_content(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  *result = json_pack("{s:[{s:s, s:s, s:s}]}", "content", "type", "audio", "data", fixture_wav_b64,
                      "mimeType", "audio/wav");
  return MCP_ANSWERED;
}

static int
embedded_resource(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  *result = json_pack("{s:[{s:s, s:{s:s, s:s, s:s}}]}", "content", "type", "resource", "resource",
                      "uri", "test://embedded-resource", "mimeType", "text/plain", "text",
                      "This is an embedded resource content.");
  return MCP_ANSWERED;
}

static int
multiple_content_types(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  *result = json_pack("{s:[{s:s, s:s}, o, {s:s, s:{s:s, s:s, s:s}}]}", "content", "type", "text",
                      "text", "Multiple content types test:", image_block(), "type", "resource",
                      "resource", "uri", "test://mixed-content-resource", "mimeType",
                      "application/json", "text", "{\"test\":\"data\",\"value\":123}");
  return MCP_ANSWERED;
}

static int
error_handling(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  return kiln_error_make(err, 0, "This tool intentionally returns an error for testing");
}

static int
json_schema_tool(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  cleanup_free char *shown = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
  cleanup_free char *text = xasprintf("Received: %s", shown ? shown : "{}");
  *result = text_result(text);
  return MCP_ANSWERED;
}

/* ---------------------------------------------------------------- steps */

/* A call answered after a few steps STEP_MS apart, the first at once.  */
struct steps {
  struct mcp_pending base; /* first: mcp_defer allocates the whole */
  int tfd;
  int done;      /* steps taken */
  json_t *token; /* the progress token (owned), or NULL */
  bool logging;  /* steps log; otherwise they report progress */
};

static const char *const log_lines[]
    = { "Tool execution started", "Tool processing data", "Tool execution completed" };
#define NSTEPS 3

static void
release_steps(struct mcp_pending *p)
{
  struct steps *s = (struct steps *)p;
  if (s->tfd >= 0) {
    loop_del(fixture_loop, s->tfd);
    close(s->tfd);
  }
  json_decref(s->token);
}

/* Takes the next step; answers (and so frees S) after the last.  */
static void
step(struct steps *s)
{
  int i = s->done++;
  struct mcp_conn *c = s->base.conn;
  if (s->logging && c->log_level <= MCP_LOG_INFO)
    mcp_notify(c, "notifications/message",
               json_pack("{s:s, s:s, s:s}", "level", "info", "logger", "conformance-fixture",
                         "data", log_lines[i]));
  if (!s->logging && s->token)
    mcp_notify(
        c, "notifications/progress",
        json_pack("{s:O, s:i, s:i}", "progressToken", s->token, "progress", i * 50, "total", 100));
  if (s->done == NSTEPS)
    mcp_answer(&s->base, text_result(s->logging ? "Tool with logging executed successfully"
                                                : "Tool with progress executed successfully"));
}

static void
on_timer(struct loop *loop, int fd, uint32_t events, void *data)
{
  uint64_t ticks;
  if (read(fd, &ticks, sizeof ticks) == sizeof ticks)
    step(data);
}

static int
start_steps(struct mcp_call *c, bool logging, kiln_error_t *err)
{
  struct steps *s = mcp_defer(c, sizeof *s, MCP_TOOL_ERROR);
  s->base.release = release_steps;
  s->logging = logging;
  s->token = json_incref(c->progress_token);
  s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  struct itimerspec every
      = { .it_interval = { 0, STEP_MS * 1000000L }, .it_value = { 0, STEP_MS * 1000000L } };
  if (s->tfd < 0 || timerfd_settime(s->tfd, 0, &every, NULL) < 0) {
    kiln_error_make(err, errno, "timerfd: %s", strerror(errno));
    if (s->tfd >= 0)
      close(s->tfd);
    s->tfd = -1;
    return mcp_started(&s->base, -1);
  }
  if (loop_add(fixture_loop, s->tfd, EPOLLIN, on_timer, s, err) < 0) {
    close(s->tfd);
    s->tfd = -1;
    return mcp_started(&s->base, -1);
  }
  int r = mcp_started(&s->base, 0);
  step(s);
  return r;
}

static int
with_logging(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  return start_steps(c, true, err);
}

static int
with_progress(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  return start_steps(c, false, err);
}

/* A call that waits a step and answers: what the suite's SSE polling
   scenario calls while it watches how the transport streams the answer
   (closing the stream mid-call is the transport's to do, not a tool's).  */
static int
reconnection(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  return start_steps(c, false, err);
}

/* ---------------------------------------------------------------- asking the client */

/* A call answered once the client has answered a request of ours.  */
struct asking {
  struct mcp_pending base; /* first */
  int64_t request;         /* the request sent to the client */
  const char *prefix;      /* of the answer's text */
};

static void
release_asking(struct mcp_pending *p)
{
  struct asking *a = (struct asking *)p;
  mcp_request_drop(a->base.conn, a->request);
}

static void
on_answer(void *ctx, json_t *result, json_t *error)
{
  struct asking *a = ctx;
  if (error) {
    cleanup_free char *shown = json_dumps(error, JSON_COMPACT);
    kiln_error_t err = NULL;
    kiln_error_make(&err, 0, "the client refused: %s", shown ? shown : "?");
    mcp_fail(&a->base, err);
    kiln_error_release(&err);
    return;
  }
  cleanup_free char *text = NULL;
  if (strcmp(a->prefix, "LLM response") == 0) {
    const char *said
        = json_string_value(json_object_get(json_object_get(result, "content"), "text"));
    text = xasprintf("LLM response: %s", said ? said : "");
  } else {
    const char *action = json_string_value(json_object_get(result, "action"));
    cleanup_free char *content
        = json_dumps(json_object_get(result, "content"), JSON_COMPACT | JSON_ENCODE_ANY);
    text = xasprintf("%s: action=%s, content=%s", a->prefix, action ? action : "?",
                     content ? content : "{}");
  }
  mcp_answer(&a->base, text_result(text));
}

static int
ask(struct mcp_call *c, const char *method, json_t *params, const char *prefix)
{
  struct asking *a = mcp_defer(c, sizeof *a, MCP_TOOL_ERROR);
  a->base.release = release_asking;
  a->prefix = prefix;
  a->request = mcp_request(c->conn, method, params, on_answer, a);
  return mcp_started(&a->base, 0);
}

static int
sampling(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  json_t *prompt = json_object_get(args, "prompt");
  return ask(c, "sampling/createMessage",
             json_pack("{s:[{s:s, s:{s:s, s:O}}], s:i}", "messages", "role", "user", "content",
                       "type", "text", "text", prompt, "maxTokens", 100),
             "LLM response");
}

static int
elicitation(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  json_t *message = json_object_get(args, "message");
  return ask(c, "elicitation/create",
             json_pack("{s:O, s:{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:[s, s]}}", "message",
                       message, "requestedSchema", "type", "object", "properties", "username",
                       "type", "string", "description", "User's response", "email", "type",
                       "string", "description", "User's email address", "required", "username",
                       "email"),
             "User response");
}

static const char defaults_schema[]
    = "{\"type\": \"object\", \"properties\": {"
      "\"name\": {\"type\": \"string\", \"description\": \"User name\", \"default\": \"John Doe\"},"
      "\"age\": {\"type\": \"integer\", \"description\": \"User age\", \"default\": 30},"
      "\"score\": {\"type\": \"number\", \"description\": \"User score\", \"default\": 95.5},"
      "\"status\": {\"type\": \"string\", \"description\": \"User status\","
      " \"enum\": [\"active\", \"inactive\", \"pending\"], \"default\": \"active\"},"
      "\"verified\": {\"type\": \"boolean\", \"description\": \"Verification status\","
      " \"default\": true}}}";

static const char enums_schema[]
    = "{\"type\": \"object\", \"properties\": {"
      "\"untitledSingle\": {\"type\": \"string\", \"description\": \"Untitled single-select\","
      " \"enum\": [\"option1\", \"option2\", \"option3\"]},"
      "\"titledSingle\": {\"type\": \"string\", \"description\": \"Titled single-select\","
      " \"oneOf\": [{\"const\": \"value1\", \"title\": \"First Option\"},"
      " {\"const\": \"value2\", \"title\": \"Second Option\"},"
      " {\"const\": \"value3\", \"title\": \"Third Option\"}]},"
      "\"legacyEnum\": {\"type\": \"string\", \"description\": \"Legacy titled enum\","
      " \"enum\": [\"opt1\", \"opt2\", \"opt3\"],"
      " \"enumNames\": [\"Option One\", \"Option Two\", \"Option Three\"]},"
      "\"untitledMulti\": {\"type\": \"array\", \"description\": \"Untitled multi-select\","
      " \"items\": {\"type\": \"string\", \"enum\": [\"option1\", \"option2\", \"option3\"]}},"
      "\"titledMulti\": {\"type\": \"array\", \"description\": \"Titled multi-select\","
      " \"items\": {\"anyOf\": [{\"const\": \"value1\", \"title\": \"First Choice\"},"
      " {\"const\": \"value2\", \"title\": \"Second Choice\"},"
      " {\"const\": \"value3\", \"title\": \"Third Choice\"}]}}}}";

static int
elicit_with(struct mcp_call *c, const char *message, const char *schema)
{
  json_t *s = json_loads(schema, 0, NULL);
  if (s == NULL)
    abort(); /* a constant above */
  return ask(c, "elicitation/create",
             json_pack("{s:s, s:o}", "message", message, "requestedSchema", s),
             "Elicitation completed");
}

static int
elicitation_defaults(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  return elicit_with(c, "Please review and update the form fields with defaults", defaults_schema);
}

static int
elicitation_enums(struct mcp_call *c, json_t *args, json_t **result, kiln_error_t *err)
{
  return elicit_with(c, "Please select options from the enum fields", enums_schema);
}

/* ---------------------------------------------------------------- the table */

#define TOOL(var, name, description, input, fn)                                                    \
  static const struct mcp_tool var                                                                 \
      = { name, name, description, input, NULL, fn, MCP_TOOL_READ_ONLY }

TOOL(t_simple_text, "test_simple_text", "Tests simple text content response", no_args, simple_text);
TOOL(t_image, "test_image_content", "Tests image content response", no_args, image_content);
TOOL(t_audio, "test_audio_content", "Tests audio content response", no_args, audio_content);
TOOL(t_embedded, "test_embedded_resource", "Tests embedded resource content response", no_args,
     embedded_resource);
TOOL(t_mixed, "test_multiple_content_types", "Tests response with multiple content types", no_args,
     multiple_content_types);
TOOL(t_logging, "test_tool_with_logging", "Tests tool that emits log messages during execution",
     no_args, with_logging);
TOOL(t_progress, "test_tool_with_progress", "Tests tool that reports progress notifications",
     no_args, with_progress);
TOOL(t_error, "test_error_handling", "Tests error response handling", no_args, error_handling);
TOOL(t_sampling, "test_sampling", "Tests server-initiated sampling (LLM completion request)",
     "{\"type\": \"object\", \"properties\": {\"prompt\": {\"type\": \"string\", "
     "\"description\": \"The prompt to send to the LLM\"}}, \"required\": [\"prompt\"]}",
     sampling);
TOOL(t_elicitation, "test_elicitation", "Tests server-initiated elicitation (user input request)",
     "{\"type\": \"object\", \"properties\": {\"message\": {\"type\": \"string\", "
     "\"description\": \"The message to show the user\"}}, \"required\": [\"message\"]}",
     elicitation);
TOOL(t_defaults, "test_elicitation_sep1034_defaults",
     "Tests elicitation with default values per SEP-1034", no_args, elicitation_defaults);
TOOL(t_enums, "test_elicitation_sep1330_enums",
     "Tests elicitation with enum schema improvements per SEP-1330", no_args, elicitation_enums);
TOOL(t_reconnection, "test_reconnection",
     "Answers after a short wait, for the SSE polling scenario (SEP-1699)", no_args, reconnection);
TOOL(t_json_schema, "json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features",
     "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"type\": \"object\", "
     "\"$defs\": {\"address\": {\"type\": \"object\", \"properties\": {\"street\": {\"type\": "
     "\"string\"}, \"city\": {\"type\": \"string\"}}}}, \"properties\": {\"name\": {\"type\": "
     "\"string\"}, \"address\": {\"$ref\": \"#/$defs/address\"}}, \"additionalProperties\": false}",
     json_schema_tool);

const struct mcp_tool *const fixture_tools[] = {
  &t_simple_text, &t_image,    &t_audio,        &t_embedded,    &t_mixed,
  &t_logging,     &t_progress, &t_error,        &t_sampling,    &t_elicitation,
  &t_defaults,    &t_enums,    &t_reconnection, &t_json_schema,
};
const size_t fixture_ntools = sizeof fixture_tools / sizeof fixture_tools[0];
