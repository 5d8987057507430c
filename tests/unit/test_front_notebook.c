#define _GNU_SOURCE
/* What a notebook's frontend asks of a session besides its cells, against
   a real front, zygote and jailed worker.  A cell defines names; then
   completions, inspections and is-complete questions are asked one
   after another, each answer checked, and a cell shows that none of
   them took an execution number.  Then input(): a cell's input() and
   getpass() answered through front_watch_input and front_input_reply,
   one nobody watches failing with EOFError, and one interrupted by the
   deadline while it waits, caught, and followed by another whose answer
   the cell gets (the interrupted one's never reaches it).  The front
   starts its zygote by exec of /proc/self/exe, which is this program:
   called as the zygote, it execs the kiln binary given as its argument
   instead.

     test_front_notebook KILN_BIN  */
#include "check.h"
#include "front_harness.h"
#include "kiln.h"
#include "util.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static const char SETUP[] = "import math\n"
                            "class Point:\n"
                            "    \"\"\"A point in the plane.\"\"\"\n"
                            "    def __init__(self, x, y):\n"
                            "        self.x, self.y = x, y\n"
                            "    def norm(self):\n"
                            "        \"\"\"Its distance from the origin.\"\"\"\n"
                            "        return math.hypot(self.x, self.y)\n"
                            "pt = Point(3, 4)\n"
                            "value_one, value_two = 1, 2\n";

/* One question and what its answer must hold.  */
struct question {
  enum front_introspect_op op;
  const char *code;
  uint64_t cursor;
  /* FRONT_COMPLETE: every match starts with PREFIX and MUST is among
     them, and they replace [START, END).  FRONT_INSPECT: FOUND, and the
     text holds MUST and MUST2.  FRONT_IS_COMPLETE: STATUS and INDENT.  */
  const char *must, *must2, *prefix;
  int start, end;
  bool found;
  const char *status, *indent;
};

static const struct question QUESTIONS[] = {
  { FRONT_COMPLETE, "val", 3, .must = "value_one", .prefix = "value_", .start = 0, .end = 3 },
  { FRONT_COMPLETE, "x = pt.n", 8, .must = "pt.norm", .prefix = "pt.n", .start = 4, .end = 8 },
  { FRONT_COMPLETE, "math.hyp", 8, .must = "math.hypot", .prefix = "math.hyp", .start = 0,
    .end = 8 },
  /* Cursors count characters: "é" is two bytes, one character.  */
  { FRONT_COMPLETE, "s = 'é'; value_t", 16, .must = "value_two", .prefix = "value_t", .start = 9,
    .end = 16 },
  /* The cursor in the middle: only the word before it counts.  */
  { FRONT_COMPLETE, "value_o + 1", 7, .must = "value_one", .prefix = "value_o", .start = 0,
    .end = 7 },
  { FRONT_INSPECT, "pt.norm", 4, .found = true, .must = "Its distance from the origin.",
    .must2 = "Signature: pt.norm()" },
  { FRONT_INSPECT, "Point(", 6, .found = true, .must = "A point in the plane.",
    .must2 = "Signature: Point(x, y)" },
  { FRONT_INSPECT, "value_two", 2, .found = true, .must = "Type:      int",
    .must2 = "Value:     2" },
  { FRONT_INSPECT, "no_such_name", 3, .found = false },
  { FRONT_IS_COMPLETE, "for i in range(3):", 18, .status = "incomplete", .indent = "    " },
  { FRONT_IS_COMPLETE, "x = 1", 5, .status = "complete", .indent = "" },
  { FRONT_IS_COMPLETE, "x = (1,\n     2", 0, .status = "incomplete", .indent = "     " },
  { FRONT_IS_COMPLETE, "x = )", 0, .status = "invalid", .indent = "" },
  { FRONT_IS_COMPLETE, "import asyncio\nawait asyncio.sleep(0)", 0, .status = "complete",
    .indent = "" },
};
#define NQUESTIONS (sizeof QUESTIONS / sizeof QUESTIONS[0])

static struct {
  struct front *f;
  struct loop *loop;
  char id[40];
  size_t next;    /* the question asked next */
  int64_t handle; /* the cell running */
  int prompts;    /* input() calls seen in it */
  bool finished;
} T;

static void ask_next(void);
static void input_cells(void);

static void
check_answer(const struct question *q, json_t *a)
{
  if (q->op == FRONT_COMPLETE) {
    json_t *matches = json_object_get(a, "matches");
    CHECK(json_is_array(matches) && json_array_size(matches) > 0);
    bool has = false;
    size_t i;
    json_t *m;
    json_array_foreach(matches, i, m)
    {
      const char *s = json_string_value(m);
      CHECK(s && strncmp(s, q->prefix, strlen(q->prefix)) == 0);
      has |= s && strcmp(s, q->must) == 0;
    }
    CHECK(has);
    CHECK(json_integer_value(json_object_get(a, "cursor_start")) == q->start);
    CHECK(json_integer_value(json_object_get(a, "cursor_end")) == q->end);
  } else if (q->op == FRONT_INSPECT) {
    CHECK(json_is_boolean(json_object_get(a, "found"))
          && json_boolean_value(json_object_get(a, "found")) == q->found);
    const char *text = json_string_value(json_object_get(a, "text"));
    CHECK(text != NULL);
    if (q->found && text) {
      CHECK(strstr(text, q->must) != NULL);
      CHECK(strstr(text, q->must2) != NULL);
    }
  } else {
    const char *status = json_string_value(json_object_get(a, "status"));
    const char *indent = json_string_value(json_object_get(a, "indent"));
    CHECK(status && strcmp(status, q->status) == 0);
    CHECK(indent && strcmp(indent, q->indent) == 0);
  }
}

static void
on_answer(void *ctx, const struct file_reply *r)
{
  const struct question *q = ctx;
  CHECK(r->status == 0);
  json_error_t jerr;
  json_t *a = r->status == 0 ? json_loadb((const char *)r->data, r->len, 0, &jerr) : NULL;
  CHECK(json_is_object(a));
  if (a)
    check_answer(q, a);
  else
    fprintf(stderr, "question %zu (%s): %s\n", (size_t)(q - QUESTIONS), q->code,
            r->message ? r->message : jerr.text);
  if (check_failures && a)
    fprintf(stderr, "question %zu (%s): %.*s\n", (size_t)(q - QUESTIONS), q->code, (int)r->len,
            (const char *)r->data);
  json_decref(a);
  ask_next();
}

static void
on_last(void *ctx, const struct cell_reply *r)
{
  (void)ctx;
  /* The setup cell was 1; no question took a number.  */
  CHECK(r->status == REPLY_OK && r->execution_count == 2);
  CHECK(r->result && strcmp(r->result, "(1, 2)") == 0);
  input_cells();
}

/* The input cells, run one after another: each step's reply starts the
   next.  */
enum input_step { ANSWERED, UNWATCHED, INTERRUPTED, AFTER };
static const char *const INPUT_CODE[] = {
  [ANSWERED] = "import getpass\nname = input('Your name? ')\n(name, getpass.getpass())",
  [UNWATCHED] = "input('nobody answers: ')",
  [INTERRUPTED] = "try:\n    input('wait: ')\nexcept KeyboardInterrupt:\n    pass\n"
                  "input('again: ')",
  [AFTER] = "name",
};
static enum input_step step;

static void run_input_cell(void);

static void
on_input(void *ctx, const char *prompt, bool password)
{
  (void)ctx;
  kiln_error_t err = NULL;
  T.prompts++;
  const char *answer = NULL;
  if (step == ANSWERED && T.prompts == 1) {
    CHECK(strcmp(prompt, "Your name? ") == 0 && !password);
    answer = "Ada";
  } else if (step == ANSWERED && T.prompts == 2) {
    CHECK(strcmp(prompt, "Password: ") == 0 && password);
    answer = "s3cret";
  } else if (step == INTERRUPTED && T.prompts == 1) {
    /* Not answered: the deadline interrupts the wait.  */
    CHECK(strcmp(prompt, "wait: ") == 0);
    return;
  } else if (step == INTERRUPTED && T.prompts == 2) {
    CHECK(strcmp(prompt, "again: ") == 0);
    answer = "late";
  } else {
    CHECK(!"an input() nobody expected");
    return;
  }
  CHECK(front_input_reply(T.f, T.handle, answer, strlen(answer), &err) == 0);
  kiln_error_release(&err);
  /* Answered once: nothing waits any more.  */
  CHECK(front_input_reply(T.f, T.handle, "x", 1, &err) < 0);
  kiln_error_release(&err);
}

static void
on_input_reply(void *ctx, const struct cell_reply *r)
{
  (void)ctx;
  switch (step) {
  case ANSWERED:
    CHECK(r->status == REPLY_OK && T.prompts == 2);
    CHECK(r->result && strcmp(r->result, "('Ada', 's3cret')") == 0);
    break;
  case UNWATCHED:
    CHECK(r->status == REPLY_ERROR && T.prompts == 0);
    CHECK(r->err_type && strcmp(r->err_type, "EOFError") == 0);
    CHECK(r->err_message && strstr(r->err_message, "input() is not available"));
    break;
  case INTERRUPTED:
    CHECK(T.prompts == 2);
    CHECK(r->result && strcmp(r->result, "'late'") == 0);
    break;
  case AFTER:
    /* The worker dropped the interrupted input()'s answer and goes on.  */
    CHECK(r->status == REPLY_OK && r->result && strcmp(r->result, "'Ada'") == 0);
    T.finished = true;
    loop_stop(T.loop);
    return;
  }
  if (check_failures)
    fprintf(stderr, "input step %d: status %d, result %s, %s: %s\n", (int)step, (int)r->status,
            r->result ? r->result : "-", r->err_type ? r->err_type : "-",
            r->err_message ? r->err_message : "-");
  step++;
  run_input_cell();
}

static void
run_input_cell(void)
{
  kiln_error_t err = NULL;
  const char *code = INPUT_CODE[step];
  T.prompts = 0;
  T.handle = front_run_cell(T.f, T.id, code, strlen(code), step == INTERRUPTED ? 1 : 0,
                            on_input_reply, NULL, &err);
  CHECK(T.handle > 0);
  if (T.handle > 0 && step != UNWATCHED)
    CHECK(front_watch_input(T.f, T.handle, on_input, NULL) == 0);
  if (T.handle < 0) {
    fprintf(stderr, "front_run_cell: %s\n", err->msg);
    kiln_error_release(&err);
    loop_stop(T.loop);
  }
}

static void
input_cells(void)
{
  step = ANSWERED;
  run_input_cell();
}

static void
ask_next(void)
{
  kiln_error_t err = NULL;
  if (T.next == NQUESTIONS) {
    const char *code = "value_one, value_two";
    CHECK(front_run_cell(T.f, T.id, code, strlen(code), 0, on_last, NULL, &err) > 0);
    return;
  }
  const struct question *q = &QUESTIONS[T.next++];
  int64_t h = front_introspect(T.f, T.id, q->op, q->code, strlen(q->code), q->cursor, on_answer,
                               (void *)q, &err);
  CHECK(h > 0);
  if (h < 0) {
    fprintf(stderr, "front_introspect: %s\n", err->msg);
    kiln_error_release(&err);
    loop_stop(T.loop);
  }
}

static void
on_setup(void *ctx, const struct cell_reply *r)
{
  (void)ctx;
  CHECK(r->status == REPLY_OK && r->execution_count == 1);
  snprintf(T.id, sizeof T.id, "%s", r->session_id);
  /* Refused at once: an unknown session, an unknown question, a NUL.  */
  kiln_error_t err = NULL;
  CHECK(front_introspect(T.f, "nosuch", FRONT_COMPLETE, "x", 1, 1, on_answer, NULL, &err) < 0);
  CHECK(err && strstr(err->msg, "unknown session"));
  kiln_error_release(&err);
  CHECK(front_introspect(T.f, T.id, (enum front_introspect_op)9, "x", 1, 1, on_answer, NULL, &err)
        < 0);
  kiln_error_release(&err);
  CHECK(front_introspect(T.f, T.id, FRONT_COMPLETE, "a\0b", 3, 1, on_answer, NULL, &err) < 0);
  kiln_error_release(&err);
  ask_next();
}

static void
on_ready(void *ctx, const struct front_info *info, kiln_error_t err)
{
  (void)ctx;
  (void)info;
  CHECK(err == NULL);
  if (err) {
    fprintf(stderr, "the zygote did not start: %s\n", err->msg);
    loop_stop(T.loop);
    return;
  }
  kiln_error_t e = NULL;
  CHECK(front_run_cell(T.f, NULL, SETUP, strlen(SETUP), 0, on_setup, NULL, &e) > 0);
  kiln_error_release(&e);
}

int
main(int argc, char **argv)
{
  harness_exec_kiln(argc, argv);
  setenv("KILN_SPARES", "0", 1);
  /* Jailed where the host can, as kiln serve runs; nothing asked here
     needs the jail.  */
  struct harness h;
  int rc = harness_begin(&h, argc, argv, "notebook", HARNESS_JAIL_IF_POSSIBLE);
  if (rc >= 0)
    return rc;
  kiln_error_t err = NULL;
  T.loop = h.loop;
  T.f = front_new(&h.cfg, T.loop, on_ready, NULL, &err);
  CHECK(T.f != NULL);
  if (T.f) {
    CHECK(loop_run(T.loop, &err) == 0);
    CHECK(T.finished);
    CHECK(T.next == NQUESTIONS);
    front_free(T.f);
  } else if (err)
    fprintf(stderr, "front_new: %s\n", err->msg);
  kiln_error_release(&err);
  harness_end(&h);
  printf("%s front_introspect_and_input_answer_a_notebook\n", check_failures ? "FAIL" : "ok  ");
  return check_failures ? 1 : 0;
}
