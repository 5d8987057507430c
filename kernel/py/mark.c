#define _GNU_SOURCE
#include "pycompat.h"

#include "mark.h"
#include "frame.h"
#include "records.h"

#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A cell marks at most this many places; later outputs go at the end.  */
#define MAX_MARKS 4096
/* The largest answer the front sends mid-cell: an input line, which it
   bounds by --max-result far below this.  */
#define ANSWER_MAX (64u << 20)

static int ctl_fd = -1;
static bool in_cell;
static uint32_t next_mark;
static unsigned stale_inputs;     /* INPUT_REPLYs owed for input() calls interrupted */
static bool input_waiting;        /* the main thread waits in input(): nothing else reads */
static unsigned long main_thread; /* the thread that runs cells */
static size_t display_max;        /* bytes of outputs in one FRAME_DISPLAY */

bool
mark_stale_input(const struct frame *f)
{
  if (f->type != FRAME_INPUT_REPLY || stale_inputs == 0)
    return false;
  stale_inputs--;
  return true;
}

/* The front is trusted and sends nothing else during a cell: it is gone,
   or broken, and this worker cannot go on.  */
static _Noreturn void
front_broke(const char *what)
{
  char msg[160];
  int n = snprintf(msg, sizeof msg, "kiln: the front did not answer %s; the worker stops\n", what);
  (void)!write(STDERR_FILENO, msg, (size_t)n);
  _exit(1);
}

/* The next frame on the control socket that is not a stale INPUT_REPLY
   into F (PAYLOAD is the caller's to free).  */
static void
recv_answer(struct frame *f, uint8_t **payload, const char *what)
{
  for (;;) {
    *payload = NULL;
    if (frame_recv(ctl_fd, f, payload, ANSWER_MAX, NULL) < 0 || f->nfds > 0)
      front_broke(what);
    if (!mark_stale_input(f))
      return;
    free(*payload);
  }
}

void
mark_cell_begin(int fd, size_t max)
{
  ctl_fd = fd;
  display_max = max;
  in_cell = true;
  main_thread = PyThread_get_thread_ident();
  next_mark = 0;
}

void
mark_cell_end(void)
{
  in_cell = false;
}

/* Sends FB and waits for the front's MARKED.  Returns false when FB
   could not be sent.  */
static bool
send_and_wait(struct fbuf *fb, const char *what)
{
  fbuf_finish(fb);
  /* With the GIL held no other thread of the cell sends a frame or waits
     for an answer.  The front answers once it has read the pipe up to
     here; until then nothing more is written.  */
  int sent = frame_send(ctl_fd, fb, NULL, 0, NULL);
  fbuf_free(fb);
  if (sent < 0)
    return false;
  struct frame f;
  uint8_t *payload = NULL;
  recv_answer(&f, &payload, what);
  free(payload);
  if (f.type != FRAME_MARKED)
    front_broke(what);
  return true;
}

static PyObject *
py_mark(PyObject *self, PyObject *noargs)
{
  (void)self;
  (void)noargs;
  /* Between cells (a thread the cell left running), or past the limit,
     there is no place to mark: None, and the output goes at the end.  */
  if (!in_cell || next_mark >= MAX_MARKS || input_waiting)
    Py_RETURN_NONE;
  struct fbuf fb;
  fbuf_init(&fb, FRAME_MARK);
  if (!send_and_wait(&fb, "a mark"))
    Py_RETURN_NONE;
  return PyLong_FromUnsignedLong(next_mark++);
}

static PyObject *
py_display(PyObject *self, PyObject *args)
{
  (void)self;
  unsigned int kind;
  const char *id = NULL, *outputs = NULL;
  Py_ssize_t id_len = 0, outputs_len = 0;
  int wait = 0;
  if (!PyArg_ParseTuple(args, "Iz#y#p", &kind, &id, &id_len, &outputs, &outputs_len, &wait))
    return NULL;
  if (kind > DISPLAY_KIND_MAX || (kind == DISPLAY_UPDATE && id == NULL)) {
    PyErr_SetString(PyExc_ValueError, "no such display");
    return NULL;
  }
  /* As for mark(): nothing is passed on from outside a cell, from a
     thread while input() waits, past the marks a cell may make, or
     larger than a cell's outputs may be; the outputs then go at the
     end, in the reply only.  An id the front would refuse is not sent
     either.  */
  bool placed = kind == DISPLAY_SHOW;
  if (!in_cell || input_waiting || (placed && next_mark >= MAX_MARKS)
      || (size_t)outputs_len > display_max || (size_t)id_len > REC_DISPLAY_ID_MAX
      || (id && (id_len == 0 || memchr(id, '\0', (size_t)id_len))))
    Py_RETURN_NONE;
  struct fbuf fb;
  fbuf_init(&fb, FRAME_DISPLAY);
  fbuf_put_u64(&fb, TAG_KIND, kind);
  if (id)
    fbuf_put(&fb, TAG_DISPLAY_ID, id, (size_t)id_len);
  if (kind == DISPLAY_CLEAR && wait)
    fbuf_put(&fb, TAG_WAIT, "", 0);
  if (kind != DISPLAY_CLEAR && outputs_len > 0)
    fbuf_put(&fb, TAG_OUTPUTS, outputs, (size_t)outputs_len);
  if (!send_and_wait(&fb, "a display") || !placed)
    Py_RETURN_NONE;
  return PyLong_FromUnsignedLong(next_mark++);
}

static PyObject *
py_input_request(PyObject *self, PyObject *args)
{
  (void)self;
  const char *prompt;
  int password = 0;
  if (!PyArg_ParseTuple(args, "s|p", &prompt, &password))
    return NULL;
  /* One reader of the socket at a time: the main thread, whose input()
     no other thread's mark() reads past (it marks nothing meanwhile).  */
  if (!in_cell || PyThread_get_thread_ident() != main_thread) {
    PyErr_SetString(PyExc_EOFError, "input() is available in the cell's main thread only");
    return NULL;
  }
  struct fbuf fb;
  fbuf_init(&fb, FRAME_INPUT);
  fbuf_put_str(&fb, TAG_MESSAGE, prompt);
  fbuf_put_u64(&fb, TAG_KIND, password ? 1 : 0);
  fbuf_finish(&fb);
  int sent = frame_send(ctl_fd, &fb, NULL, 0, NULL);
  fbuf_free(&fb);
  if (sent < 0)
    front_broke("an input request");
  /* Waits, without the GIL, until the answer can be read; every 100 ms
     and on every signal, with it, for an interrupt.  */
  input_waiting = true;
  for (;;) {
    struct pollfd p = { .fd = ctl_fd, .events = POLLIN };
    PyThreadState *ts = PyEval_SaveThread();
    int r = poll(&p, 1, 100);
    PyEval_RestoreThread(ts);
    if (r > 0)
      break;
    if (r < 0 && errno != EINTR)
      front_broke("an input request");
    if (PyErr_CheckSignals() < 0) {
      stale_inputs++;
      input_waiting = false;
      return NULL;
    }
  }
  input_waiting = false;
  struct frame f;
  uint8_t *payload = NULL;
  recv_answer(&f, &payload, "an input request");
  if (f.type != FRAME_INPUT_REPLY)
    front_broke("an input request");
  PyObject *ret = NULL;
  const struct field *data = frame_get(&f, TAG_DATA);
  if (data)
    ret = PyUnicode_DecodeUTF8((const char *)data->data, (Py_ssize_t)data->len, "replace");
  else {
    cleanup_free char *why = NULL;
    (void)frame_get_str(&f, TAG_MESSAGE, true, &why, NULL, NULL);
    PyErr_SetString(PyExc_EOFError, why ? why : "input() got no answer");
  }
  free(payload);
  return ret;
}

static PyMethodDef methods[] = {
  { "mark", py_mark, METH_NOARGS,
    "Marks this point of the cell's stdout (flush it first); returns the mark's number, or "
    "None." },
  { "display", py_display, METH_VARARGS,
    "display(kind, display_id, outputs, wait): passes what the cell shows (0, outputs packed as "
    "records), a new content for DISPLAY_ID (1) or a clear_output (2) on to the front, here in "
    "the output (flush it first); returns the mark's number for 0, else None." },
  { "input_request", py_input_request, METH_VARARGS,
    "input_request(prompt, password=False): asks the front for a line of input and waits for "
    "it; EOFError says why there is none." },
  { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = {
  PyModuleDef_HEAD_INIT,
  "_kiln_mark",
  "where in the output each shown thing belongs",
  -1,
  methods,
  NULL,
  NULL,
  NULL,
  NULL,
};

static PyObject *
init_module(void)
{
  return PyModule_Create(&module);
}

int
mark_register(void)
{
  return PyImport_AppendInittab("_kiln_mark", init_module);
}
