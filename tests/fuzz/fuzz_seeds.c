/* Writes the harnesses' seed corpus: real frames and records built with
   the encoders the front, zygote and workers use, and the paths, texts
   and JSON-RPC lines the tests use.

     fuzz-seeds DIR        writes DIR/<harness>/<seed> for every harness

   tests/fuzz/corpus/ holds its output, committed; tests/fuzz/run also
   writes a fresh set beside the committed one before each run, so that
   the configuration frame matches the structs of the build under test.  */
#define _GNU_SOURCE
#include "fuzz.h"
#include "fuzz_mcp.h"
#include "handoff.h"
#include "records.h"
#include "seeds.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>

static const char *root;

static void
write_seed(const char *harness, const char *name, const void *data, size_t len)
{
  cleanup_free char *dir = xasprintf("%s/%s", root, harness);
  if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
    perror(dir);
    exit(1);
  }
  cleanup_free char *path = xasprintf("%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* Writes FB's frame, finished, as a seed and releases it.  */
void
write_frame(const char *harness, const char *name, struct fbuf *fb)
{
  fbuf_finish(fb);
  write_seed(harness, name, fb->data, fb->len);
  fbuf_free(fb);
}

static void
outputs(struct buf *b)
{
  static const uint8_t png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13 };
  struct rec_output o[] = {
    { "image/png", 9, "", 0, png, sizeof png, 640, 480 },
    { "image/png;inline", 16, "", 0, png, sizeof png, 320, 240 },
    { "text/html", 9, "", 0, (const uint8_t *)"<b>hi</b>", 9, 0, 0 },
    { REC_FILE_MIME, strlen(REC_FILE_MIME), "out/data.csv", 12, (const uint8_t *)"", 0, 1234, 0 },
  };
  for (size_t i = 0; i < sizeof o / sizeof o[0]; i++)
    rec_output_put(b, &o[i], SIZE_MAX);
}

static void
listing(struct buf *b)
{
  struct rec_entry e[] = {
    { 'd', 0, 1700000000000000000, "out", 3 },
    { 'f', 1234, 1700000000000000001, "out/data.csv", 12 },
    { 'l', 7, 0, "link", 4 },
    { 'o', 0, 0, "fifo", 4 },
    { 'f', 0, 0, "\xc3\xa9t\xc3\xa9.txt", 9 },
  };
  for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
    rec_entry_put(b, &e[i]);
}

static void
frames(void)
{
  struct fbuf fb;
  fbuf_init(&fb, FRAME_DONE);
  fbuf_put_u64(&fb, TAG_STATUS, CELL_OK);
  fbuf_put_str(&fb, TAG_RESULT, "'done'");
  write_frame("frame", "done-ok", &fb);

  fbuf_init(&fb, FRAME_DONE);
  fbuf_put_u64(&fb, TAG_STATUS, CELL_ERROR);
  fbuf_put_str(&fb, TAG_ERR_TYPE, "ZeroDivisionError");
  fbuf_put_str(&fb, TAG_ERR_MESSAGE, "division by zero");
  fbuf_put_str(&fb, TAG_ERR_TRACEBACK,
               "Traceback (most recent call last):\n  File \"<cell 3>\", "
               "line 1, in <module>\nZeroDivisionError: division by zero\n");
  fbuf_put_u64(&fb, TAG_ERR_LINENO, 1);
  fbuf_put_u64(&fb, TAG_ERR_OFFSET, 5);
  write_frame("frame", "done-error", &fb);

  struct buf b = { 0 };
  outputs(&b);
  fbuf_init(&fb, FRAME_DONE);
  fbuf_put_u64(&fb, TAG_STATUS, CELL_OK);
  fbuf_put(&fb, TAG_OUTPUTS, b.data, b.len);
  fbuf_put(&fb, TAG_OUTPUT_MARKS, "\0\0\0\0\xff\xff\xff\xff", 8);
  fbuf_put_u64(&fb, TAG_OUTPUTS_DROPPED, 2);
  write_frame("frame", "done-outputs", &fb);
  buf_free(&b);

  fbuf_init(&fb, FRAME_MARK);
  write_frame("frame", "mark", &fb);

  fbuf_init(&fb, FRAME_SPAWN);
  fbuf_put_str(&fb, TAG_SESSION_ID, "s-0123456789abcdef");
  fbuf_put_u64(&fb, TAG_UID, 100000);
  write_frame("frame", "spawn", &fb);

  fbuf_init(&fb, FRAME_SPAWNED);
  fbuf_put_u64(&fb, TAG_PID, 4242);
  write_frame("frame", "spawned", &fb);

  fbuf_init(&fb, FRAME_ZYGOTE_READY);
  fbuf_put_str(&fb, TAG_PYTHON_VERSION, "3.12.1");
  fbuf_put_str(&fb, TAG_PRELOADED, "numpy,matplotlib,PIL");
  fbuf_put_str(&fb, TAG_PRELOAD_FAILED, "");
  write_frame("frame", "zygote-ready", &fb);

  fbuf_init(&fb, FRAME_EXEC);
  fbuf_put_str(&fb, TAG_CODE, "import numpy as np\nnp.arange(3)\n");
  fbuf_put_u64(&fb, TAG_CELL_NO, 7);
  write_frame("frame", "exec", &fb);

  fbuf_init(&fb, FRAME_FILE_READ);
  fbuf_put_str(&fb, TAG_PATH, "out/data.csv");
  fbuf_put_u64(&fb, TAG_MAX_BYTES, 1 << 20);
  write_frame("frame", "file-read", &fb);

  listing(&b);
  fbuf_init(&fb, FRAME_FILE_RESULT);
  fbuf_put_u64(&fb, TAG_STATUS, 0);
  fbuf_put(&fb, TAG_LISTING, b.data, b.len);
  fbuf_put(&fb, TAG_TRUNCATED, NULL, 0);
  write_frame("frame", "file-result-listing", &fb);
  buf_free(&b);

  fbuf_init(&fb, FRAME_WORKER_FAILED);
  fbuf_put(&fb, TAG_MESSAGE, "a\0b", 3);
  write_frame("frame", "message-with-nul", &fb);

  fbuf_init(&fb, FRAME_WORKER_READY);
  write_frame("frame", "worker-ready", &fb);

  fbuf_init(&fb, FRAME_DONE);
  for (uint16_t t = 1; t <= FRAME_MAX_FIELDS; t++)
    fbuf_put_u64(&fb, (enum frame_tag)t, t);
  write_frame("frame", "sixteen-fields", &fb);
}

static void
records(void)
{
  struct buf b = { 0 };
  outputs(&b);
  write_seed("records", "outputs", b.data, b.len);
  buf_free(&b);
  listing(&b);
  write_seed("records", "listing", b.data, b.len);
  buf_free(&b);

  static const char *const paths[][2] = {
    { "path-file", "a" },
    { "path-nested", "out/plots/fig-1.png" },
    { "path-utf8", "donn\xc3\xa9\x65s/\xe2\x82\xac.csv" },
    { "path-dots-in-name", "a/..b/c.d/...e" },
    { "path-absolute", "/etc/passwd" },
    { "path-dotdot", "../x" },
    { "path-dotdot-inside", "a/../b" },
    { "path-dot", "./a" },
    { "path-empty-component", "a//b" },
    { "path-trailing-slash", "a/" },
  };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    write_seed("records", paths[i][0], paths[i][1], strlen(paths[i][1]));
  write_seed("records", "path-nul", "a\0b", 3);

  /* Either side of REC_PATH_MAX.  */
  char *longest = xmalloc(REC_PATH_MAX + 1);
  for (size_t i = 0; i < REC_PATH_MAX + 1; i++)
    longest[i] = i % 2 ? '/' : 'a';
  longest[REC_PATH_MAX - 1] = 'a';
  write_seed("records", "path-longest", longest, REC_PATH_MAX);
  longest[REC_PATH_MAX] = 'a';
  write_seed("records", "path-too-long", longest, REC_PATH_MAX + 1);
  free(longest);
}

static void
utf8(void)
{
  /* The first byte is the excerpt's size.  */
  static const char *const texts[][2] = {
    { "ascii", "\x10hello, world: an excerpt" },
    { "two-three-four-bytes", "\x05\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" },
    { "cut-in-a-character", "\x04\xe2\x82\xac\xe2\x82\xac" },
    { "overlong", "\x08\xc0\x80\xe0\x80\x80\xf0\x80\x80\x80" },
    { "surrogate", "\x08\xed\xa0\x80\xed\xbf\xbf" },
    { "past-u10ffff", "\x08\xf4\x90\x80\x80\xf8\x88\x80\x80\x80" },
    { "truncated", "\x02x\xe2\x82" },
    { "stray-continuation", "\x03\x80\xbf\xc3\xa9\x80" },
    { "base64", "\x40"
                "aGVsbG8sIHdvcmxk" },
    { "base64-padded", "\x40"
                       "aGVsbG8=" },
    { "base64-whitespace", "\x40 aGVs\r\nbG8=\t" },
    { "base64-urlsafe", "\x40-_-_" },
    { "base64-too-much-padding", "\x40"
                                 "A===" },
    { "base64-data-after-padding", "\x40"
                                   "AA==AA" },
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    write_seed("utf8", texts[i][0], texts[i][1], strlen(texts[i][1]));
  write_seed("utf8", "nul",
             "\x03"
             "a\0b\0c",
             6);
}

static void
handoff(void)
{
  struct sbx_config sbx = {
    .jail = true,
    .host_uid = 0,
    .uid_base = 100000,
    .root_dir = "/var/lib/kiln/jail",
    .expose = { "/usr", "/lib", "/opt/kiln/.venv" },
    .nexpose = 3,
    .work_size = 256 << 20,
    .tmp_size = 64 << 20,
    .limits = { .nproc = 256, .nofile = 1024, .fsize = 1 << 30, .cpu_s = 600 },
    .cg_limits = { .memory = 1 << 30, .pids = 256, .cpus = 1 },
    .cg = { .version = 2, .dirs = { "/sys/fs/cgroup/kiln" } },
  };
  struct kiln_config cfg = {
    .timeout_s = 30,
    .max_timeout_s = 600,
    .grace_s = 2,
    .max_output = 1 << 20,
    .max_result = 10000,
    .preload = "numpy,matplotlib,PIL",
    .home = "/var/lib/kiln",
    .venv = "/opt/kiln/.venv",
    .runtime_dir = "/opt/kiln/python/sitecustomize",
    .sbx = &sbx,
  };
  struct fbuf fb;
  hof_encode(&cfg, &fb);
  write_seed("handoff", "jailed", fb.data, fb.len);
  fbuf_free(&fb);
  /* The same on a front's compile link to the daemon.  */
  hof_encode_as(&cfg, FRAME_COMPILER_CONFIG, &fb);
  write_seed("handoff", "compile-link", fb.data, fb.len);
  fbuf_free(&fb);

  /* No jail, no cgroups: the strings the front leaves NULL.  */
  struct sbx_config bare = { .cg = { .why = "no cgroup2 mount" } };
  cfg.sbx = &bare;
  cfg.preload = "";
  hof_encode(&cfg, &fb);
  write_seed("handoff", "no-sandbox", fb.data, fb.len);
  fbuf_free(&fb);
}

static void
jsonrpc(void)
{
  static const char *const lines[][2] = {
    { "initialize", "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                    "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{"
                    "\"name\":\"test\",\"version\":\"1.0\"}}}" },
    { "initialized", "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}" },
    { "tools-list", "{\"jsonrpc\":\"2.0\",\"id\":\"a-1\",\"method\":\"tools/list\"}" },
    { "run-python", "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
                    "\"run_python\",\"arguments\":{\"code\":\"print(1)\\n\",\"session_id\":\"s\","
                    "\"timeout_s\":2.5},\"_meta\":{\"progressToken\":7}}}" },
    { "response", "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}" },
    { "error-response", "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"error\":{\"code\":-32601,"
                        "\"message\":\"no\"}}" },
    { "ping-params-array", "{\"jsonrpc\":\"2.0\",\"id\":-9007199254740993,\"method\":\"ping\","
                           "\"params\":[]}" },
    { "nul-in-id", "{\"jsonrpc\":\"1.0\",\"id\":\"\\u0000\",\"method\":\"ping\"}" },
    { "escapes",
      "{\"jsonrpc\":\"2.0\",\"id\":\"\\u2028\\ud83d\\ude00\",\"method\":\"a\\u0000b\"}" },
    { "not-json", "{not json" },
    { "number", "42" },
    { "empty-batch", "[]" },
    { "batch", "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]" },
    { "version-1", "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}" },
    { "no-method", "{\"jsonrpc\":\"2.0\",\"id\":1}" },
    { "object-id", "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}" },
    { "real-id", "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}" },
    { "numeric-method", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}" },
    { "scalar-params", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":3}" },
    { "repeated-id", "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}" },
    { "long-token", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":"
                    "trueeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee}" },
  };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
    write_seed("jsonrpc", lines[i][0], lines[i][1], strlen(lines[i][1]));
}

/* The mcp harness's operations (fuzz_mcp.h), appended to B.  */
static void
op_raw(struct buf *b, const char *msg)
{
  size_t n = strlen(msg);
  uint8_t head[4] = { OP_RAW, n < 255 ? (uint8_t)n : 255, (uint8_t)n, (uint8_t)(n >> 8) };
  buf_append(b, head, n < 255 ? 2 : 4);
  buf_append(b, msg, n);
}

static void
op(struct buf *b, enum fuzz_mcp_op code)
{
  uint8_t c = (uint8_t)code;
  buf_append(b, &c, 1);
}

/* Appends the string literal LIT, NULs and all, to B: an operand.  */
#define PUT(b, lit) buf_append(b, lit, sizeof lit - 1)

#define RPC(id, method, params)                                                                    \
  "{\"jsonrpc\":\"2.0\",\"id\":" id ",\"method\":\"" method "\",\"params\":" params "}"
#define TOOL(id, name, args) RPC(id, "tools/call", "{\"name\":\"" name "\",\"arguments\":" args "}")
/* The id the fake front gives its first session (fake_front.c).  */
#define SID "9e3779b97f4a7c15"

/* Writes the seed NAME: the header (initialize as revision VERSION, 0
   to 3 oldest first, or -1 not at all; at most 4 sessions, 4 requests
   queued in each, --max-reply 3000), then the operations in B.  */
static void
mcp_seed(const char *name, int version, struct buf *b)
{
  uint8_t head[3] = { version < 0 ? 0 : (uint8_t)(1 | version << 1), 0x3e, 0 };
  struct buf all = { 0 };
  buf_append(&all, head, sizeof head);
  if (b->len)
    buf_append(&all, b->data, b->len);
  write_seed("mcp", name, all.data, all.len);
  buf_free(&all);
  buf_free(b);
}

/* OP_ANSWER of the first pending request, a cell, with the operands
   fake_front.c draws in this order: the cell succeeded with a result and
   a line of stdout, and showed a PNG after "ou" and a text at the end.  */
static void
answer_cell(struct buf *b)
{
  op(b, OP_ANSWER);
  PUT(b, "\0");   /* the first pending request */
  PUT(b, "\x08"); /* ok, with a result */
  PUT(b, "\x05"); /* the result, 5 bytes */
  PUT(b, "2+2=4");
  PUT(b, "\x04\0"); /* stdout, 4 bytes without NUL */
  PUT(b, "out\n");
  PUT(b, "\0\0");         /* stderr, empty */
  PUT(b, "\0\0");         /* nothing dropped, no notice */
  PUT(b, "\x10\x27\0\0"); /* 10 ms */
  PUT(b, "\x02");         /* two outputs: */
  PUT(b, "\0\x03\x02\0"); /* an image at byte 2 of stdout, */
  PUT(b, "\x03\x08");     /*   the head of a PNG, 8 bytes more */
  PUT(b, "PNGDATA!");
  PUT(b, "\x40\0\x30\0");       /*   64x48 in its head */
  PUT(b, "\x80\x02\xe0\x01\0"); /*   640x480, no inline copy; */
  PUT(b, "\x01\0\x05");         /* a text/plain at the end, 5 bytes */
  PUT(b, "hello");
}

/* OP_ANSWER of the first pending request, a listing: a file and a
   directory.  */
static void
answer_listing(struct buf *b)
{
  op(b, OP_ANSWER);
  PUT(b, "\0\0");                         /* the first request; it succeeded */
  PUT(b, "\x02");                         /* two entries: */
  PUT(b, "\0\x07\0\0\0\0\0\0\0");         /* a file of 7 bytes */
  PUT(b, "\0\0\x10\x7b\x7e\x8b\x96\x17"); /*   changed in 2023 */
  PUT(b, "\x0c");                         /*   its path, 12 bytes */
  PUT(b, "out/data.csv");
  PUT(b, "\x01\0\0\0\0\0\0\0\0"); /* a directory */
  PUT(b, "\0\0\0\0\0\0\0\0");     /*   changed in 1970 */
  PUT(b, "\x03");                 /*   its path, 3 bytes */
  PUT(b, "out");
}

static void
mcp(void)
{
  struct buf b = { 0 };
  /* A cell whose output streams as progress, then its reply; then the
     image it made, as a resource, and the session table.  */
  op_raw(&b, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"run_python\",\"arguments\":{\"code\":\"print(1)\"},\"_meta\":{\"progressToken\":"
             "\"p\"}}}");
  op(&b, OP_OUTPUT);
  PUT(&b, "\0\x40\0\x08"); /* the first watched cell, 256 ms on, stdout, 8 bytes */
  PUT(&b, "hello!\n\x80");
  op(&b, OP_OUTPUT);
  PUT(&b, "\0\x40\x01\x05"); /* 256 ms more, stderr, 5 bytes */
  PUT(&b, "oops\n");
  answer_cell(&b);
  op_raw(&b,
         RPC("2", "resources/read", "{\"uri\":\"kiln://sessions/" SID "/artifacts/cell1-2.png\"}"));
  op_raw(&b, RPC("3", "resources/list", "{}"));
  op_raw(&b, TOOL("4", "list_sessions", "{}"));
  mcp_seed("run-progress-answer", 3, &b);

  /* A batch, answered as one array once its deferred cell is done.  */
  op_raw(&b, "[" RPC("1", "ping", "{}") "," TOOL("2", "run_python", "{\"code\":\"x=1\"}") "," RPC(
                 "3", "tools/list", "{}") ",{\"jsonrpc\":\"2.0\",\"method\":\"notifications/"
                                          "initialized\"},7]");
  answer_cell(&b);
  mcp_seed("batch-2025-03-26", 1, &b);

  /* Files: an upload that makes a session, then a read, a listing, a
     resource read and a completion of paths, answered in turn.  */
  op_raw(&b, TOOL("1", "upload_file", "{\"path\":\"out/data.csv\",\"content\":\"a,b\\n1,2\\n\"}"));
  op(&b, OP_ANSWER);
  PUT(&b, "\0\0"); /* the first request; it succeeded */
  op_raw(&b, TOOL("2", "read_file", "{\"session_id\":\"" SID "\",\"path\":\"out/data.csv\"}"));
  op_raw(&b, TOOL("3", "list_files", "{\"session_id\":\"" SID "\"}"));
  op_raw(&b,
         RPC("4", "resources/read", "{\"uri\":\"kiln://sessions/" SID "/files/out%2Fplot.png\"}"));
  op_raw(&b, RPC("5", "completion/complete",
                 "{\"ref\":{\"type\":\"ref/resource\",\"uri\":\"kiln://sessions/{session_id}/"
                 "files/{path}\"},\"argument\":{\"name\":\"path\",\"value\":\"out/d\"},"
                 "\"context\":{\"arguments\":{\"session_id\":\"" SID "\"}}}"));
  op(&b, OP_ANSWER);
  PUT(&b, "\0\0\x02\x08"); /* the read: it succeeded with 8 bytes as they are */
  PUT(&b, "a,b\n1,2\n");
  answer_listing(&b);
  op(&b, OP_ANSWER);
  PUT(&b, "\0\0\x03\x04"); /* the resource: the head of a PNG */
  PUT(&b, "\x89PNG\x40\0\x30\0");
  answer_listing(&b);
  mcp_seed("files", 2, &b);

  /* A cancelled cell, and a session closed under a queued one.  */
  op_raw(&b, TOOL("\"a\"", "run_python", "{\"code\":\"import time; time.sleep(9)\"}"));
  op_raw(&b, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
             "\"requestId\":\"a\",\"reason\":\"stop\"}}");
  op_raw(&b, TOOL("\"b\"", "run_python", "{\"code\":\"1\",\"session_id\":\"" SID "\"}"));
  op_raw(&b, TOOL("\"c\"", "close_session", "{\"session_id\":\"" SID "\"}"));
  mcp_seed("cancel-and-close", 3, &b);

  /* A front that refuses a call, answers one before returning its
     handle, and answers an older one and logs from inside a third.  */
  op(&b, OP_FRONT);
  PUT(&b, "\x01\0"); /* refuse */
  op_raw(&b, TOOL("1", "run_python", "{\"code\":\"1\"}"));
  op(&b, OP_FRONT);
  PUT(&b, "\x02\x04"); /* at once, with a reply of 4 bytes */
  PUT(&b, "\x01\x02ok");
  op_raw(&b, TOOL("2", "run_python", "{\"code\":\"1\"}"));
  op_raw(&b, TOOL("3", "run_python", "{\"code\":\"2\",\"session_id\":\"" SID "\"}"));
  op(&b, OP_FRONT);
  PUT(&b, "\x18\0"); /* log, and answer the other first */
  op_raw(&b,
         TOOL("4", "upload_file", "{\"path\":\"x\",\"content\":\"y\",\"session_id\":\"" SID "\"}"));
  mcp_seed("front-moods", 2, &b);

  /* An old revision: resource links become text, no structuredContent.  */
  op_raw(&b, TOOL("1", "run_python", "{\"code\":\"open('f','w')\",\"timeout_s\":2.5}"));
  op(&b, OP_ANSWER);
  PUT(&b, "\0\0\0\0\0\0\0\0"); /* ok: no result, stdout or stderr, nothing dropped */
  PUT(&b, "\0\0\0\0\x01");     /* 0 ms, one output: */
  PUT(&b, "\x02\0\0");         /* data.csv, which the cell wrote, */
  PUT(&b, "\x10\0\0\0");       /*   16 bytes */
  op_raw(&b, RPC("2", "tools/list", "{}"));
  mcp_seed("revision-2024-11-05", 0, &b);

  /* Before initialize, over the size limit, not JSON, the log, and a
     client that goes and comes back.  */
  op_raw(&b, RPC("1", "tools/list", "{}"));
  op_raw(&b, RPC("2", "initialize", "{\"protocolVersion\":\"2025-06-18\"}"));
  op(&b, OP_TOO_LONG);
  PUT(&b, "\0\x09\0\0");   /* a ping, */
  PUT(&b, "\x10\0\x01\0"); /* cut after 16 bytes */
  op_raw(&b, "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":");
  op_raw(&b, RPC("3", "logging/setLevel", "{\"level\":\"debug\"}"));
  op(&b, OP_LOG);
  PUT(&b, "\x02\x10"); /* info, 16 bytes */
  PUT(&b, "worker 42 exited");
  op_raw(&b, TOOL("4", "run_python", "{\"code\":\"1\"}"));
  op(&b, OP_CLOSE);
  op_raw(&b, RPC("1", "ping", "{}"));
  mcp_seed("lifecycle", -1, &b);
}

int
main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz-seeds DIR\n");
    return 2;
  }
  root = argv[1];
  if (mkdir(root, 0755) < 0 && errno != EEXIST) {
    perror(root);
    return 1;
  }
  frames();
  records();
  utf8();
  handoff();
  seeds_store();
  jsonrpc();
  mcp();
  return 0;
}
