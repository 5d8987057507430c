/* A program that embeds kiln through its installed API alone: the
   header <kiln/kiln.h> and the library libkiln, found by pkg-config
   (tests/embed/api/run builds and runs it against an installed tree).
   It is the example the README points to, and a test: every step checks
   what it got and the program exits 1 with the reason on the first
   mismatch.

     1. a configuration with kiln's defaults and a few options set,
        the jail probed, a loop, and a front started on it;
     2. a session opened;
     3. a cell that prints as it runs: its lines arrive through the
        output callback one by one, before its reply;
     4. a cell that draws a matplotlib figure: the reply carries it as
        a PNG display output of the figure's size;
     5. a cell whose last expression is its result;
     6. a cell spinning in `while True: pass`, interrupted once it has
        started: KeyboardInterrupt, and the session's state survives;
     7. a file the cell wrote under /work, read through the file API;
     8. the session closed, everything freed.

   Where the host cannot jail workers it runs them unjailed, saying so
   (the API is under test here, not the jail; tests/security tests the
   jail), and it exits 77 (skip) only when no front can start at all.  */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, under -std=c17 */
#include <kiln/kiln.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The longest any step may take: a hung front fails the test, not the
   suite's timeout.  */
#define DEADLINE_S 120

/* An interrupted cell's reply comes within this of the interrupt: far
   less than the cells' own deadline (the timeout option), so that a
   KeyboardInterrupt from the deadline cannot pass for the interrupt's.  */
#define INTERRUPT_REPLY_S 10

static const uint8_t PNG_SIGNATURE[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

/* The program's one front, and what the callbacks saw for the step that
   is running.  Each step starts a call, then runs the loop until the
   call's callback stops it.  */
static struct {
  struct kiln_config cfg;
  struct loop *loop;
  struct front *front;
  char session[40];
  int64_t handle; /* the running cell's */
  struct timespec interrupted_at;
  bool ready, replied;
  bool called; /* the callback the loop is waiting for came */
  /* The streaming output of the running cell, as it came.  */
  char streamed[4096];
  size_t streamed_len;
  int chunks;
  bool reply_before_output; /* a chunk came after the reply: never allowed */
  bool interrupt_on_output; /* step 6: interrupt at the first chunk */
  /* The reply, copied out of the callback (its pointers are borrowed).  */
  enum reply_status status;
  char *result, *out, *err_type;
  uint8_t *png;
  size_t png_len;
  uint32_t png_width, png_height;
  size_t noutputs;
  /* A file operation's answer.  */
  int file_status;
  char *file_data;
  size_t file_len;
} t;

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail_err(const char *what, kiln_error_t *err) __attribute__((noreturn));

static void
fail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("FAIL: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* Fails with ERR's message (and releases it).  */
static void
fail_err(const char *what, kiln_error_t *err)
{
  fprintf(stderr, "FAIL: %s: %s\n", what, *err ? (*err)->msg : "unknown error");
  kiln_error_release(err);
  exit(1);
}

static void
on_alarm(int sig)
{
  static const char msg[] = "FAIL: a step took longer than the test's deadline\n";
  (void)sig;
  (void)!write(2, msg, sizeof msg - 1);
  _exit(1);
}

static char *
copy(const char *s, size_t len)
{
  char *c = malloc(len + 1);
  if (c == NULL)
    abort();
  memcpy(c, s, len);
  c[len] = '\0';
  return c;
}

/* Runs the loop until the callback WHAT waits for stops it.  The front
   stops it too on SIGINT, SIGTERM or SIGHUP: then the callback has not
   come, and the test says so rather than check what it never got.  */
static void
wait_for_callback(const char *what)
{
  kiln_error_t err = NULL;
  t.called = false;
  loop_resume(t.loop);
  if (loop_run(t.loop, &err) < 0)
    fail_err(what, &err);
  if (!t.called)
    fail("%s: the loop stopped (a signal?) before the answer came", what);
}

/* Stops the loop for wait_for_callback: the answer is in.  */
static void
answered(void)
{
  t.called = true;
  loop_stop(t.loop);
}

static void
on_ready(void *ctx, const struct front_info *info, kiln_error_t err)
{
  (void)ctx;
  if (err)
    fail("the zygote did not start: %s", err->msg);
  printf("ready: Python %s, preloaded %s\n", info->python_version, info->preloaded);
  t.ready = true;
  answered();
}

static void
on_output(void *ctx, int stream, const char *data, size_t len, uint64_t skipped)
{
  (void)ctx;
  if (t.replied)
    t.reply_before_output = true;
  if (stream != 1)
    return;
  t.chunks++;
  if (t.streamed_len + len < sizeof t.streamed) {
    memcpy(t.streamed + t.streamed_len, data, len);
    t.streamed_len += len;
  }
  printf("  output %d (%zu bytes, %llu skipped): %.*s", t.chunks, len, (unsigned long long)skipped,
         (int)len, data);
  if (t.interrupt_on_output && t.chunks == 1) {
    clock_gettime(CLOCK_MONOTONIC, &t.interrupted_at);
    if (front_interrupt(t.front, t.handle) < 0)
      fail("front_interrupt refused the running cell");
  }
}

static void
on_reply(void *ctx, const struct cell_reply *r)
{
  (void)ctx;
  t.replied = true;
  t.status = r->status;
  t.result = r->result ? copy(r->result, strlen(r->result)) : NULL;
  t.out = copy(r->out ? r->out : "", r->out ? r->out_len : 0);
  t.err_type = r->err_type ? copy(r->err_type, strlen(r->err_type)) : NULL;
  t.noutputs = r->noutputs;
  for (size_t i = 0; i < r->noutputs; i++) {
    const struct cell_output *o = &r->outputs[i];
    if (strcmp(o->mime, "image/png") == 0 && t.png == NULL) {
      t.png = malloc(o->len);
      if (t.png == NULL)
        abort();
      memcpy(t.png, o->data, o->len);
      t.png_len = o->len;
      t.png_width = o->width;
      t.png_height = o->height;
    }
  }
  answered();
}

static void
forget_reply(void)
{
  free(t.result);
  free(t.out);
  free(t.err_type);
  free(t.png);
  free(t.file_data);
  memset(t.streamed, 0, sizeof t.streamed);
  t.result = t.out = t.err_type = t.file_data = NULL;
  t.png = NULL;
  t.png_len = t.streamed_len = t.noutputs = t.file_len = 0;
  t.chunks = 0;
  t.replied = t.reply_before_output = t.interrupt_on_output = false;
}

/* Runs CODE in the session and waits for its reply, its output watched
   as it comes.  */
static void
run_cell(const char *what, const char *code)
{
  kiln_error_t err = NULL;
  forget_reply();
  printf("%s\n", what);
  t.handle = front_run_cell(t.front, t.session, code, strlen(code), 0, on_reply, NULL, &err);
  if (t.handle < 0)
    fail_err(what, &err);
  if (front_watch_output(t.front, t.handle, 10, 4096, on_output, NULL) < 0)
    fail("%s: front_watch_output refused the cell it was just given", what);
  wait_for_callback(what);
  if (t.reply_before_output)
    fail("%s: output arrived after the reply", what);
}

static void
expect_ok(const char *what)
{
  if (t.status != REPLY_OK)
    fail("%s: the cell ended with status %d (%s)", what, (int)t.status,
         t.err_type ? t.err_type : "no error type");
}

static void
on_file(void *ctx, const struct file_reply *r)
{
  (void)ctx;
  t.file_status = r->status;
  if (r->status != 0)
    fprintf(stderr, "  file: %s\n", r->message ? r->message : strerror(r->status));
  t.file_data = copy(r->data ? (const char *)r->data : "", r->data ? r->len : 0);
  t.file_len = r->data ? r->len : 0;
  answered();
}

/* 1.  Options are set before the jail is probed: it borrows the
   configuration's paths.  */
static void
start_front(void)
{
  kiln_error_t err = NULL;
  if (config_init(&t.cfg, &err) < 0)
    fail_err("config_init", &err);
  static const char *const options[][2] = {
    { "memory", "768M" },
    { "cpus", "1" },
    { "timeout", "30" },
    /* The zygote imports what the cells use, and nothing they don't.  */
    { "preload", "matplotlib,matplotlib.pyplot" },
    /* One session, opened on purpose: no spare started ahead of it.  */
    { "spares", "0" },
    { "log-level", "warn" },
  };
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
    if (config_set(&t.cfg, options[i][0], options[i][1], &err) < 0)
      fail_err(options[i][0], &err);
  if (config_set(&t.cfg, "no-such-option", "1", &err) == 0)
    fail("config_set accepted an unknown option");
  kiln_error_release(&err);

  if (front_sandbox_probe(&t.cfg, &err) < 0) {
    printf("note: %s: workers run unjailed, as with insecure-no-sandbox\n", err->msg);
    kiln_error_release(&err);
    if (config_set(&t.cfg, "insecure-no-sandbox", "1", &err) < 0)
      fail_err("insecure-no-sandbox", &err);
    if (front_sandbox_probe(&t.cfg, &err) < 0) {
      printf("skip: no front can run on this host: %s\n", err->msg);
      kiln_error_release(&err);
      config_free(&t.cfg);
      exit(77);
    }
  }
  if ((t.loop = loop_new(&err)) == NULL)
    fail_err("loop_new", &err);
  t.front = front_new(&t.cfg, t.loop, on_ready, NULL, &err);
  if (t.front == NULL)
    fail_err("front_new", &err);
  wait_for_callback("waiting for the zygote");
  if (!t.ready)
    fail("the loop stopped before the zygote was ready");
}

/* 3.  Three lines a third of a second apart: each is passed on as it is
   written, so they come in more than one call, and before the reply,
   which holds them all too.  */
static void
streaming_output(void)
{
  const char *what = "a cell that prints as it runs";
  run_cell(what, "import time\n"
                 "for i in range(3):\n"
                 "    print(f'tick {i}', flush=True)\n"
                 "    time.sleep(0.3)\n");
  expect_ok(what);
  static const char want[] = "tick 0\ntick 1\ntick 2\n";
  if (t.streamed_len != strlen(want) || memcmp(t.streamed, want, t.streamed_len) != 0)
    fail("%s: streamed %zu bytes '%.*s', not '%s'", what, t.streamed_len, (int)t.streamed_len,
         t.streamed, want);
  if (t.chunks < 2)
    fail("%s: its output came in %d call, not as it was written", what, t.chunks);
  if (strcmp(t.out, want) != 0)
    fail("%s: the reply's stdout is '%s', not '%s'", what, t.out, want);
}

/* 4.  A 4 x 3 inch figure at 100 dpi is a 400 x 300 PNG.  */
static void
figure_display(void)
{
  const char *what = "a cell that draws a figure";
  run_cell(what, "import matplotlib.pyplot as plt\n"
                 "fig, ax = plt.subplots(figsize=(4, 3), dpi=100)\n"
                 "ax.plot([0, 1, 2, 3], [3, 1, 2, 0])\n"
                 "ax.set_title('embedded')\n");
  expect_ok(what);
  if (t.png == NULL)
    fail("%s: no image/png among the reply's %zu outputs", what, t.noutputs);
  if (t.png_len < 1024 || memcmp(t.png, PNG_SIGNATURE, sizeof PNG_SIGNATURE) != 0)
    fail("%s: the image (%zu bytes) is not a PNG of a drawn figure", what, t.png_len);
  /* The IHDR chunk's width and height, big-endian, after the signature,
     its length and its type.  */
  uint32_t w = (uint32_t)t.png[16] << 24 | (uint32_t)t.png[17] << 16 | (uint32_t)t.png[18] << 8
               | t.png[19];
  uint32_t h = (uint32_t)t.png[20] << 24 | (uint32_t)t.png[21] << 16 | (uint32_t)t.png[22] << 8
               | t.png[23];
  if (w != 400 || h != 300 || t.png_width != 400 || t.png_height != 300)
    fail("%s: the PNG is %ux%u (the reply says %ux%u), not 400x300", what, w, h, t.png_width,
         t.png_height);
  printf("  image/png, %zu bytes, %ux%u\n", t.png_len, w, h);
}

/* 5.  */
static void
final_result(void)
{
  const char *what = "a cell whose last expression is its result";
  run_cell(what, "answer = 6 * 7\nanswer\n");
  expect_ok(what);
  if (t.result == NULL || strcmp(t.result, "42") != 0)
    fail("%s: the result is %s%s%s, not 42", what, t.result ? "'" : "",
         t.result ? t.result : "missing", t.result ? "'" : "");
  printf("  result %s\n", t.result);
}

/* 6.  The interrupt is sent once the cell has said it is spinning, so
   that it lands in the loop, not before the cell starts.  */
static void
interrupt_spinning_cell(void)
{
  const char *what = "a cell spinning in while True: pass, interrupted";
  forget_reply();
  kiln_error_t err = NULL;
  static const char code[] = "print('spinning', flush=True)\nwhile True: pass\n";
  printf("%s\n", what);
  t.handle = front_run_cell(t.front, t.session, code, strlen(code), 0, on_reply, NULL, &err);
  if (t.handle < 0)
    fail_err(what, &err);
  t.interrupt_on_output = true;
  if (front_watch_output(t.front, t.handle, 10, 4096, on_output, NULL) < 0)
    fail("%s: front_watch_output refused the cell it was just given", what);
  wait_for_callback(what);
  if (t.chunks == 0)
    fail("%s: the reply came without the cell's output, so it was never interrupted", what);
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double waited = (double)(now.tv_sec - t.interrupted_at.tv_sec)
                  + (double)(now.tv_nsec - t.interrupted_at.tv_nsec) / 1e9;
  if (waited > INTERRUPT_REPLY_S)
    fail("%s: the reply came %.1f s after the interrupt: the deadline ended the cell, not "
         "front_interrupt",
         what, waited);
  if (t.status != REPLY_INTERRUPTED || t.err_type == NULL
      || strcmp(t.err_type, "KeyboardInterrupt") != 0)
    fail("%s: status %d, error %s, not REPLY_INTERRUPTED with KeyboardInterrupt", what,
         (int)t.status, t.err_type ? t.err_type : "none");
  printf("  %s\n", t.err_type);
  /* An interrupt costs the cell, not the session.  */
  run_cell("the session after the interrupt", "answer\n");
  expect_ok("the session after the interrupt");
  if (t.result == NULL || strcmp(t.result, "42") != 0)
    fail("the session lost its state to the interrupt: answer is %s",
         t.result ? t.result : "missing");
}

/* 7.  */
static void
read_written_file(void)
{
  const char *what = "a file the cell wrote, read through the file API";
  static const char want[] = "written under /work by a cell\n";
  run_cell(what, "import os\n"
                 "os.makedirs('/work/results', exist_ok=True)\n"
                 "with open('/work/results/out.txt', 'w') as f:\n"
                 "    f.write('written under /work by a cell\\n')\n");
  expect_ok(what);
  forget_reply();
  kiln_error_t err = NULL;
  static const char path[] = "results/out.txt";
  if (front_file_op(t.front, t.session, FRONT_FILE_READ, path, strlen(path), NULL, 0, 1 << 20,
                    on_file, NULL, &err)
      < 0)
    fail_err(what, &err);
  wait_for_callback(what);
  if (t.file_status != 0)
    fail("%s: reading %s failed with errno %d", what, path, t.file_status);
  if (t.file_len != strlen(want) || memcmp(t.file_data, want, t.file_len) != 0)
    fail("%s: read '%s' (%zu bytes), not '%s'", what, t.file_data, t.file_len, want);
  printf("  /work/%s: %s", path, t.file_data);
}

int
main(int argc, char **argv)
{
  /* Never a helper of its own front: were libkiln ever to start this
     program rather than kiln (as "kiln-zygote __zygote"), it would say
     so and stop here, not start another front.  */
  if (argc != 1) {
    fprintf(stderr, "%s: takes no arguments (started as a kiln helper? see KILN_BIN)\n", argv[0]);
    return 2;
  }
  signal(SIGALRM, on_alarm);
  alarm(DEADLINE_S);
  setvbuf(stdout, NULL, _IOLBF, 0);

  start_front();

  kiln_error_t err = NULL;
  if (front_open_session(t.front, t.session, &err) < 0)
    fail_err("front_open_session", &err);
  printf("session %s\n", t.session);

  streaming_output();
  figure_display();
  final_result();
  interrupt_spinning_cell();
  read_written_file();

  /* 8.  */
  if (front_close_session(t.front, t.session, &err) < 0)
    fail_err("front_close_session", &err);
  if (front_close_session(t.front, t.session, &err) == 0)
    fail("a closed session could be closed again");
  kiln_error_release(&err);
  forget_reply();
  front_free(t.front);
  loop_free(t.loop);
  front_sandbox_free(&t.cfg);
  config_free(&t.cfg);
  printf("ok: the embedding API works from the installed library\n");
  return 0;
}
