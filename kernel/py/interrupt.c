#define _GNU_SOURCE
#include "pycompat.h"

#include "interrupt.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t current_cell;
static volatile sig_atomic_t wake_fd = -1;

static void
on_sigint(int sig, siginfo_t *si, void *uc)
{
  (void)uc;
  /* A queued interrupt names its cell; a plain one (kill -INT from a
     terminal, a debugger) is always taken.  */
  if (si != NULL && si->si_code == SI_QUEUE && si->si_value.sival_int != (int)current_cell)
    return;
  if (wake_fd >= 0) {
    int saved = errno;
    (void)!write(wake_fd, "", 1);
    errno = saved;
    return;
  }
  PyErr_SetInterruptEx(sig);
}

static void
install(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigint;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

void
intr_arm(uint64_t cell_no)
{
  current_cell = (sig_atomic_t)(int)cell_no;
  install();
}

void
intr_redirect(int fd)
{
  wake_fd = fd;
}

static PyObject *
py_arm(PyObject *self, PyObject *noargs)
{
  (void)self;
  (void)noargs;
  install();
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
  { "arm", py_arm, METH_NOARGS,
    "Puts kiln's SIGINT handler back after signal.signal(SIGINT, ...)." },
  { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = {
  PyModuleDef_HEAD_INIT,
  "_kiln_interrupt",
  "the deadline's interrupt, tagged by cell",
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
intr_register(void)
{
  return PyImport_AppendInittab("_kiln_interrupt", init_module);
}
