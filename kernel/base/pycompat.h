/* The few places where the embedding differs between CPython 3.11 and
   3.12.  kiln ships on 3.12; 3.11 must still compile.  */
#ifndef KILN_PYCOMPAT_H
#define KILN_PYCOMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030C0000
/* 3.12 replaced the (type, value, traceback) triple with one object.  */
static inline PyObject *
PyErr_GetRaisedException(void)
{
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (value != NULL && tb != NULL)
    PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return value;
}
#endif

#endif
