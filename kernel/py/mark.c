#define _GNU_SOURCE
#include "pycompat.h"

#include "mark.h"
#include "frame.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* A cell marks at most this many places; later outputs go at the end.  */
#define MAX_MARKS 4096

static int ctl_fd = -1;
static bool in_cell;
static uint32_t next_mark;

void
mark_cell_begin(int fd)
{
  ctl_fd = fd;
  in_cell = true;
  next_mark = 0;
}

void
mark_cell_end(void)
{
  in_cell = false;
}

static PyObject *
py_mark(PyObject *self, PyObject *noargs)
{
  (void)self;
  (void)noargs;
  /* Between cells (a thread the cell left running), or past the limit,
     there is no place to mark: None, and the output goes at the end.  */
  if (!in_cell || next_mark >= MAX_MARKS)
    Py_RETURN_NONE;
  struct fbuf fb;
  fbuf_init(&fb, FRAME_MARK);
  fbuf_finish(&fb);
  /* With the GIL held no other thread of the cell sends a frame or waits
     for an answer.  The front answers once it has read the pipe up to
     here; until then nothing more is written.  */
  int sent = frame_send(ctl_fd, &fb, NULL, 0, NULL);
  fbuf_free(&fb);
  if (sent < 0)
    Py_RETURN_NONE;
  struct frame f;
  uint8_t *payload = NULL;
  if (frame_recv(ctl_fd, &f, &payload, 0, NULL) < 0 || f.type != FRAME_MARKED || f.nfds > 0) {
    /* The front is trusted and sends nothing else during a cell: it is
       gone, or broken, and this worker cannot go on.  */
    static const char msg[] = "kiln: the front did not answer a mark; the worker stops\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(1);
  }
  free(payload);
  return PyLong_FromUnsignedLong(next_mark++);
}

static PyMethodDef methods[] = {
  { "mark", py_mark, METH_NOARGS,
    "Marks this point of the cell's stdout (flush it first); returns the mark's number, or "
    "None." },
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
