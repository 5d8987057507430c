/* The compile helper (compiler.h).  Its whole life:

     1. receive the configuration from the front;
     2. start CPython and import everything a compile touches, since no
        file can be opened later;
     3. enter its jail (compiler_jail.c), the tight filter last;
     4. say READY with what decides compiled code besides the source
        (magic number, optimisation level, flags): the front keys the
        cache with them;
     5. answer each COMPILE with the marshalled notebook form of the cell
        (kiln_runtime.compile_for_cache), or a reason there is none.

   It runs no user code: compiling evaluates nothing a cell says.  */
#define _GNU_SOURCE
#include "pycompat.h"

#include "compiler.h"
#include "compiler_jail.h"
#include "embed.h"
#include "frame.h"
#include "handoff.h"
#include "log.h"
#include "seccomp_policy.h"
#include "util.h"
#include "wire_limits.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static _Noreturn void
fail(kiln_error_t *err)
{
  frame_fail_exit(COMPILER_FD, FRAME_COMPILER_FAILED, err, "compile helper start-up failed");
}

static void
answer(PyObject *compile, const struct frame *f, const struct kiln_limits *lim)
{
  struct fbuf fb;
  fbuf_init(&fb, FRAME_COMPILED);
  const struct field *code = frame_get(f, TAG_CODE);
  PyObject *src = code ? PyUnicode_DecodeUTF8((const char *)code->data, (Py_ssize_t)code->len,
                                              "surrogateescape")
                       : NULL;
  PyObject *ret = src ? PyObject_CallOneArg(compile, src) : NULL;
  Py_XDECREF(src);
  /* A short source can compile to far more ('k' * 4000, many times):
     an answer the front would refuse as too large would cost the
     helper its life.  */
  if (ret && PyBytes_Check(ret) && (size_t)PyBytes_GET_SIZE(ret) + 64 > lim->front_frame)
    fbuf_put_str(&fb, TAG_MESSAGE, "the compiled cell is larger than a frame: not cached");
  else if (ret && PyBytes_Check(ret))
    fbuf_put(&fb, TAG_DATA, PyBytes_AS_STRING(ret), (size_t)PyBytes_GET_SIZE(ret));
  else if (ret && PyUnicode_Check(ret))
    fbuf_put_str(&fb, TAG_MESSAGE, PyUnicode_AsUTF8(ret) ? PyUnicode_AsUTF8(ret) : "?");
  else {
    kiln_error_t e = NULL;
    if (PyErr_Occurred())
      emb_error_from_python(&e, "compile");
    fbuf_put_str(&fb, TAG_MESSAGE, e ? e->msg : "no code");
    kiln_error_release(&e);
  }
  PyErr_Clear();
  Py_XDECREF(ret);
  fbuf_finish(&fb);
  if (frame_send(COMPILER_FD, &fb, NULL, 0, NULL) < 0)
    _exit(1);
  fbuf_free(&fb);
}

void
cmp_exec_main(void)
{
  kiln_error_t err = NULL;
  pid_t front = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() != front)
    _exit(1);
  prctl(PR_SET_NAME, "kiln-compiler", 0, 0, 0);
  set_cloexec(COMPILER_FD, true);
  int keep[] = { 0, 1, 2, COMPILER_FD };
  close_fds_except(0, keep, sizeof keep / sizeof keep[0]);
  signal(SIGPIPE, SIG_IGN);

  /* 1. */
  struct frame f;
  uint8_t *payload = NULL;
  static struct kiln_config cfg;
  static struct sbx_config sbx;
  if (frame_recv(COMPILER_FD, &f, &payload, 1 << 20, &err) < 0
      || hof_decode(&f, &cfg, &sbx, &err) < 0)
    fail(&err);
  free(payload);
  log_setup(cfg.log_level, cfg.log_format);
  struct kiln_limits lim;
  limits_derive(&cfg, &lim);
  /* The filter is built before CPython runs, by the same code that
     builds the workers'.  */
  struct sock_fprog filter = { 0 };
  if (sbx.jail && scf_build_compiler(&filter, &err) < 0)
    fail(&err);
  clearenv();
  setenv("LANG", "C.UTF-8", 1);
  setenv("LC_ALL", "C.UTF-8", 1);

  /* 2. */
  if (emb_init(&cfg, &err) < 0)
    fail(&err);
  PyObject *rt = PyImport_ImportModule("kiln_runtime");
  PyObject *info = rt ? PyObject_CallMethod(rt, "compiler_init", NULL) : NULL;
  PyObject *compile = rt ? PyObject_GetAttrString(rt, "compile_for_cache") : NULL;
  const char *magic = NULL;
  Py_ssize_t magic_len = 0;
  unsigned long long optimize = 0, flags = 0;
  const char *runtime = NULL;
  if (info == NULL || compile == NULL
      || !PyArg_ParseTuple(info, "y#KKs", &magic, &magic_len, &optimize, &flags, &runtime)) {
    emb_error_from_python(&err, "kiln_runtime.compiler_init");
    fail(&err);
  }
  struct fbuf ready;
  fbuf_init(&ready, FRAME_COMPILER_READY);
  fbuf_put(&ready, TAG_MAGIC, magic, (size_t)magic_len);
  fbuf_put_u64(&ready, TAG_OPTIMIZE, optimize);
  fbuf_put_u64(&ready, TAG_FLAGS, flags);
  fbuf_put_str(&ready, TAG_RUNTIME, runtime);
  fbuf_finish(&ready);
  Py_DECREF(info);
  Py_DECREF(rt);

  /* 3. */
  if (sbx_enter_compiler(&sbx, &filter, &err) < 0)
    fail(&err);

  /* 4. */
  if (frame_send(COMPILER_FD, &ready, NULL, 0, NULL) < 0)
    _exit(1);
  fbuf_free(&ready);

  /* 5.  The front is trusted; a frame it should not send ends the
     helper, and the front starts another.  */
  for (;;) {
    if (frame_recv(COMPILER_FD, &f, &payload, lim.front_frame, &err) < 0)
      _exit(err && err->status == ECONNRESET ? 0 : 1);
    if (f.type != FRAME_COMPILE)
      _exit(1);
    answer(compile, &f, &lim);
    free(payload);
  }
}
