#define _GNU_SOURCE
#include "pycompat.h"

#include "pngenc.h"
#include "embed.h"
#include "interrupt.h"
#include "mark.h"
#include "paths.h"
#include "watch.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static int
status_error(PyStatus st, kiln_error_t *err, const char *what)
{
  return kiln_error_make(err, 0, "%s: %s%s%s", what, st.func ? st.func : "", st.func ? ": " : "",
                         st.err_msg ? st.err_msg : "failed");
}

static int
append_path(PyConfig *config, const char *path, kiln_error_t *err)
{
  wchar_t *w = Py_DecodeLocale(path, NULL);
  if (w == NULL)
    return kiln_error_make(err, 0, "cannot decode path %s", path);
  PyStatus st = PyWideStringList_Append(&config->module_search_paths, w);
  PyMem_RawFree(w);
  if (PyStatus_Exception(st))
    return status_error(st, err, "module search path");
  return 0;
}

/* The prefix the interpreter is found at: the build's, unless the
   zygote shows it elsewhere (neutral.h).  */
static const char *python_home = KILN_PYTHON_HOME;

void
emb_python_home(const char *home)
{
  python_home = home;
}

/* PATH, a directory under the build's prefix, under PYTHON_HOME.  */
static char *
under_home(const char *path)
{
  size_t l = strlen(KILN_PYTHON_HOME);
  if (strncmp(path, KILN_PYTHON_HOME, l) == 0 && (path[l] == '/' || path[l] == '\0'))
    return xasprintf("%s%s", python_home, path + l);
  return xstrdup(path);
}

int
emb_init(const struct kiln_config *cfg, kiln_error_t *err)
{
  PyConfig config;
  PyStatus st;
  cleanup_free char *python = xasprintf("%s/bin/python3", cfg->venv);
  cleanup_free char *stdlib = under_home(KILN_PYTHON_STDLIB);
  cleanup_free char *platstdlib = under_home(KILN_PYTHON_PLATSTDLIB);

  /* UTF-8 mode: the isolated pre-configuration leaves the locale alone,
     which would make text files and pipes ASCII in every cell.  */
  PyPreConfig pre;
  PyPreConfig_InitIsolatedConfig(&pre);
  pre.utf8_mode = 1;
  st = Py_PreInitialize(&pre);
  if (PyStatus_Exception(st))
    return status_error(st, err, "pre-initialise Python");

  /* Isolated: no environment variables, no user site, no current
     directory on sys.path.  Every path is given explicitly, so nothing
     of the host's Python setup leaks in.  */
  PyConfig_InitIsolatedConfig(&config);
  config.site_import = 0;
  config.write_bytecode = 0;
  config.parse_argv = 0;
  config.module_search_paths_set = 1;
  /* Python's own handlers are installed by the runtime where they are
     wanted (SIGINT in workers); SIGPIPE and SIGXFSZ are ignored there.  */
  config.install_signal_handlers = 0;

  st = PyConfig_SetBytesString(&config, &config.home, python_home);
  if (PyStatus_Exception(st))
    goto fail;
  /* sys.executable must name a Python, not kiln, so that user code that
     runs [sys.executable, ...] gets the sandbox's interpreter.  */
  st = PyConfig_SetBytesString(&config, &config.executable, python);
  if (PyStatus_Exception(st))
    goto fail;
  st = PyConfig_SetBytesString(&config, &config.program_name, python);
  if (PyStatus_Exception(st))
    goto fail;
  if (append_path(&config, stdlib, err) < 0 || append_path(&config, platstdlib, err) < 0
      || append_path(&config, cfg->runtime_dir, err) < 0) {
    PyConfig_Clear(&config);
    return -1;
  }
  /* Built-in modules are registered before the interpreter exists.  */
  if (cap_png_register() < 0) {
    PyConfig_Clear(&config);
    return kiln_error_make(err, 0, "register the _kiln_png module");
  }
  if (intr_register() < 0) {
    PyConfig_Clear(&config);
    return kiln_error_make(err, 0, "register the _kiln_interrupt module");
  }
  if (mark_register() < 0) {
    PyConfig_Clear(&config);
    return kiln_error_make(err, 0, "register the _kiln_mark module");
  }
  if (wch_register() < 0) {
    PyConfig_Clear(&config);
    return kiln_error_make(err, 0, "register the _kiln_watch module");
  }
  st = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(st))
    return status_error(st, err, "initialise Python");
  return 0;

fail:
  PyConfig_Clear(&config);
  return status_error(st, err, "configure Python");
}

int
emb_error_from_python(kiln_error_t *err, const char *context)
{
  PyObject *exc = PyErr_GetRaisedException();
  char *text = NULL;
  if (exc != NULL) {
    PyObject *s = PyObject_Str(exc);
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    text = xasprintf("%s: %s", Py_TYPE(exc)->tp_name, msg ? msg : "(unprintable)");
    Py_XDECREF(s);
    PyErr_Clear();
    Py_DECREF(exc);
  }
  int r = kiln_error_make(err, 0, "%s: %s", context, text ? text : "unknown Python error");
  free(text);
  return r;
}

const char *
emb_python_version(void)
{
  return PY_VERSION;
}
