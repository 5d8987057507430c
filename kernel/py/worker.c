#define _GNU_SOURCE
#include "pycompat.h"

#include "files.h"
#include "embed.h"
#include "frame.h"
#include "wire_limits.h"
#include "interrupt.h"
#include "mark.h"
#include "log.h"
#include "records.h"
#include "neutral.h"
#include "sandbox.h"
#include "shell.h"
#include "util.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

/* Bytes of outputs one reply may carry (the front refuses frames over
   WORKER_MAX_FRAME, 32 MiB).  */

/* The worker's fds after setup: 0-2 are stdio, 3 the control socket.  */
#define CTL_FD 3

/* Reports a setup failure to the front and exits: between the fork and
   the first user statement nothing is allowed to half-succeed.  */
static _Noreturn void
fail(int ctl, kiln_error_t *err)
{
  frame_fail_exit(ctl, FRAME_WORKER_FAILED, err, "worker setup failed");
}

/* Puts the pipes on 1 and 2, /dev/null on 0, the control socket on 3, and
   closes every other fd the zygote had open.  */
static int
setup_fds(const struct wrk_params *p, kiln_error_t *err)
{
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0)
    return kiln_error_make(err, errno, "open /dev/null");
  /* Move the sources above the targets first so no dup2 clobbers one.  */
  int ctl = fcntl(p->ctl, F_DUPFD_CLOEXEC, 10);
  int out = fcntl(p->out, F_DUPFD_CLOEXEC, 10);
  int errfd = fcntl(p->err, F_DUPFD_CLOEXEC, 10);
  if (ctl < 0 || out < 0 || errfd < 0)
    return kiln_error_make(err, errno, "dup worker fds");
  if (dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0
      || dup3(ctl, CTL_FD, O_CLOEXEC) < 0)
    return kiln_error_make(err, errno, "dup2 worker fds");
  int keep[] = { 0, 1, 2, CTL_FD };
  close_fds_except(0, keep, sizeof keep / sizeof keep[0]);
  return 0;
}

/* Puts S as UTF-8, at most MAX bytes of it: a longer text is cut on a
   character boundary and says how much was cut, so that the frame stays
   within the front's limit (limits.h) whatever the cell produced.  */
static void
put_pystr(struct fbuf *fb, enum frame_tag tag, PyObject *s, size_t max)
{
  if (s == NULL || s == Py_None || !PyUnicode_Check(s))
    return;
  /* backslashreplace: a lone surrogate in a repr must not lose the reply.  */
  PyObject *b = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
  if (b == NULL) {
    PyErr_Clear();
    return;
  }
  const char *text = PyBytes_AS_STRING(b);
  size_t len = (size_t)PyBytes_GET_SIZE(b);
  if (len <= max)
    fbuf_put(fb, tag, text, len);
  else {
    cleanup_free char *note = xasprintf("\n[... %zu more bytes not shown]", len - max);
    size_t keep = utf8_boundary_before(text, max > strlen(note) ? max - strlen(note) : 0);
    struct buf cut = { 0 };
    buf_append(&cut, text, keep);
    buf_append(&cut, note, strlen(note));
    fbuf_put(fb, tag, cut.data, cut.len);
    buf_free(&cut);
  }
  Py_DECREF(b);
}

static void
put_pyint(struct fbuf *fb, enum frame_tag tag, PyObject *v)
{
  if (v == NULL || !PyLong_Check(v))
    return;
  long long n = PyLong_AsLongLong(v);
  if (n < 0 || PyErr_Occurred()) {
    PyErr_Clear();
    return;
  }
  fbuf_put_u64(fb, tag, (uint64_t)n);
}

/* Packs the cell's outputs (figures, images, display()) into one field:
   per output, mime_len:u16 name_len:u16 data_len:u32 width:u32 height:u32
   then the three strings.  Outputs past OUTPUTS_MAX bytes in all are
   dropped and counted, so a reply always fits the front's frame limit.  */
static void
put_outputs(struct fbuf *fb, PyObject *list, const struct kiln_limits *lim)
{
  if (list == NULL || !PyList_Check(list))
    return;
  struct buf blob = { 0 }, marks = { 0 };
  uint64_t dropped = 0;
  size_t n = 0;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
    const char *mime, *name, *data;
    Py_ssize_t mlen, nlen, dlen;
    unsigned int w, h;
    PyObject *mark_obj = Py_None;
    PyObject *item = PyList_GET_ITEM(list, i);
    if (!PyTuple_Check(item)
        || !PyArg_ParseTuple(item, "s#s#y#II|O", &mime, &mlen, &name, &nlen, &data, &dlen, &w, &h,
                             &mark_obj)) {
      PyErr_Clear();
      continue;
    }
    /* Where it was shown (mark.h); none: at the end of the output.  */
    uint32_t mark = UINT32_MAX;
    if (PyLong_Check(mark_obj)) {
      unsigned long v = PyLong_AsUnsignedLong(mark_obj);
      if (PyErr_Occurred())
        PyErr_Clear();
      else if (v < UINT32_MAX)
        mark = (uint32_t)v;
    }
    struct rec_output o = {
      .mime = mime,
      .mime_len = (size_t)mlen,
      .name = name,
      .name_len = (size_t)nlen,
      .data = (const uint8_t *)data,
      .data_len = (size_t)dlen,
      .width = w,
      .height = h,
    };
    /* An inline copy belongs to the image before it and is not counted
       as an output of its own.  */
    bool is_inline = mlen > 7 && memcmp(mime + mlen - 7, ";inline", 7) == 0;
    if ((!is_inline && n >= lim->outputs_count)
        || rec_output_put(&blob, &o, lim->outputs_bytes) < 0)
      dropped += !is_inline;
    else if (!is_inline) {
      n++;
      uint8_t le[4]
          = { (uint8_t)mark, (uint8_t)(mark >> 8), (uint8_t)(mark >> 16), (uint8_t)(mark >> 24) };
      buf_append(&marks, le, 4);
    }
  }
  if (blob.len)
    fbuf_put(fb, TAG_OUTPUTS, blob.data, blob.len);
  if (marks.len)
    fbuf_put(fb, TAG_OUTPUT_MARKS, marks.data, marks.len);
  buf_free(&marks);
  if (dropped)
    fbuf_put_u64(fb, TAG_OUTPUTS_DROPPED, dropped);
  buf_free(&blob);
}

/* Runs one cell through kiln_runtime.run_cell and builds the DONE frame
   into FB.  */
static void
run_cell(PyObject *run, const char *code, size_t len, const struct field *compiled,
         uint64_t cell_no, const struct kiln_limits *lim, struct fbuf *fb)
{
  fbuf_init(fb, FRAME_DONE);
  /* An interrupt meant for the previous cell may have arrived after it
     ended; it must not hit this one.  */
  if (PyErr_CheckSignals() < 0)
    PyErr_Clear();

  PyObject *ret = NULL;
  PyObject *src = PyUnicode_DecodeUTF8(code, (Py_ssize_t)len, "surrogateescape");
  /* A cache hit: the compile helper's code for this source, which the
     runtime loads instead of compiling.  */
  PyObject *co = compiled ? PyBytes_FromStringAndSize((const char *)compiled->data,
                                                      (Py_ssize_t)compiled->len)
                          : Py_NewRef(Py_None);
  mark_cell_begin(CTL_FD, lim->outputs_bytes);
  if (src != NULL && co != NULL)
    ret = PyObject_CallFunction(run, "OKnO", src, (unsigned long long)cell_no,
                                (Py_ssize_t)lim->max_result, co);
  mark_cell_end();
  Py_XDECREF(src);
  Py_XDECREF(co);
  if (ret == NULL || !PyTuple_Check(ret) || PyTuple_GET_SIZE(ret) != 8) {
    kiln_error_t e = NULL;
    if (PyErr_Occurred())
      emb_error_from_python(&e, "kiln runtime");
    fbuf_put_u64(fb, TAG_STATUS, CELL_ERROR);
    fbuf_put_str(fb, TAG_ERR_TYPE, "KilnInternalError");
    fbuf_put_str(fb, TAG_ERR_MESSAGE, e ? e->msg : "kiln runtime returned a malformed result");
    kiln_error_release(&e);
    Py_XDECREF(ret);
    return;
  }
  long status = PyLong_AsLong(PyTuple_GET_ITEM(ret, 0));
  fbuf_put_u64(fb, TAG_STATUS, (uint64_t)(status < 0 ? CELL_ERROR : status));
  put_pystr(fb, TAG_RESULT, PyTuple_GET_ITEM(ret, 1), lim->text_bytes);
  put_pystr(fb, TAG_ERR_TYPE, PyTuple_GET_ITEM(ret, 2), 256);
  put_pystr(fb, TAG_ERR_MESSAGE, PyTuple_GET_ITEM(ret, 3), lim->text_bytes);
  put_pystr(fb, TAG_ERR_TRACEBACK, PyTuple_GET_ITEM(ret, 4), lim->text_bytes);
  put_pyint(fb, TAG_ERR_LINENO, PyTuple_GET_ITEM(ret, 5));
  put_pyint(fb, TAG_ERR_OFFSET, PyTuple_GET_ITEM(ret, 6));
  put_outputs(fb, PyTuple_GET_ITEM(ret, 7), lim);
  Py_DECREF(ret);
}

/* Writes the session's state to FD (FRAME_SNAPSHOT) and builds the
   answer into FB.  */
static void
take_snapshot(PyObject *rt, int fd, uint64_t max_bytes, const struct kiln_limits *lim,
              struct fbuf *fb)
{
  fbuf_init(fb, FRAME_SNAPSHOT_DONE);
  PyObject *ret = PyObject_CallMethod(rt, "snapshot", "iK", fd, (unsigned long long)max_bytes);
  unsigned long long size = 0;
  const char *hash = NULL;
  Py_ssize_t hash_len = 0;
  PyObject *lost = NULL, *dropped = NULL;
  if (ret == NULL || !PyArg_ParseTuple(ret, "Ky#UU", &size, &hash, &hash_len, &lost, &dropped)
      || hash_len != 32) {
    kiln_error_t e = NULL;
    emb_error_from_python(&e, "snapshot");
    fbuf_put_str(fb, TAG_MESSAGE, e ? e->msg : "the snapshot failed");
    kiln_error_release(&e);
    Py_XDECREF(ret);
    return;
  }
  fbuf_put_u64(fb, TAG_SIZE, size);
  fbuf_put(fb, TAG_HASH, hash, 32);
  put_pystr(fb, TAG_LOST, lost, lim->text_bytes);
  put_pystr(fb, TAG_DROPPED, dropped, lim->text_bytes);
  Py_DECREF(ret);
}

/* Sends FB, an answer between cells, after what the worker printed;
   frees it.  */
static int
send_answer(struct fbuf *fb)
{
  fflush(stdout);
  fflush(stderr);
  fbuf_finish(fb);
  int sent = frame_send(CTL_FD, fb, NULL, 0, NULL);
  fbuf_free(fb);
  return sent;
}

/* Answers FRAME_INTROSPECT F (a frontend's question about code at a
   cursor) into FB as a FILE_RESULT whose DATA is JSON.  */
static void
introspect(PyObject *rt, const struct frame *f, struct fbuf *fb)
{
  fbuf_init(fb, FRAME_FILE_RESULT);
  uint64_t kind = 0, cursor = 0, max_bytes = 0, cell_no = 0;
  const struct field *code = frame_get(f, TAG_CODE);
  if (code == NULL || frame_get_u64(f, TAG_KIND, false, &kind, NULL) < 0
      || frame_get_u64(f, TAG_OFFSET, false, &cursor, NULL) < 0
      || frame_get_u64(f, TAG_MAX_BYTES, false, &max_bytes, NULL) < 0
      || frame_get_u64(f, TAG_CELL_NO, false, &cell_no, NULL) < 0) {
    fbuf_put_u64(fb, TAG_STATUS, EINVAL);
    fbuf_put_str(fb, TAG_MESSAGE, "malformed INTROSPECT from the front");
    return;
  }
  /* The session's code runs here too (a property, an expression): the
     interrupt at the question's deadline reaches it as a cell's does.  */
  intr_arm(cell_no);
  PyObject *ret = PyObject_CallMethod(rt, "introspect", "Ks#KK", (unsigned long long)kind,
                                      (const char *)code->data, (Py_ssize_t)code->len,
                                      (unsigned long long)cursor, (unsigned long long)max_bytes);
  if (ret == NULL || !PyBytes_Check(ret) || (uint64_t)PyBytes_GET_SIZE(ret) > max_bytes) {
    kiln_error_t e = NULL;
    if (ret == NULL)
      emb_error_from_python(&e, "introspect");
    fbuf_put_u64(fb, TAG_STATUS, EINVAL);
    fbuf_put_str(fb, TAG_MESSAGE, e ? e->msg : "the answer was not JSON bytes within the limit");
    kiln_error_release(&e);
    Py_XDECREF(ret);
    return;
  }
  fbuf_put_u64(fb, TAG_STATUS, 0);
  fbuf_put(fb, TAG_DATA, PyBytes_AS_STRING(ret), (size_t)PyBytes_GET_SIZE(ret));
  Py_DECREF(ret);
}

/* Loads a snapshot (FRAME_RESTORE F, read from FD when >= 0) into the
   session and builds the answer into FB.  */
static void
load_snapshot(PyObject *rt, const struct frame *f, int fd, const struct kiln_limits *lim,
              struct fbuf *fb)
{
  fbuf_init(fb, FRAME_RESTORED);
  const struct field *hash = frame_get(f, TAG_HASH), *data = frame_get(f, TAG_DATA);
  PyObject *src = fd >= 0 ? PyLong_FromLong(fd)
                  : data  ? PyBytes_FromStringAndSize((const char *)data->data, data->len)
                          : NULL;
  PyObject *expected = hash ? PyBytes_FromStringAndSize((const char *)hash->data, hash->len) : NULL;
  PyObject *ret = src && expected ? PyObject_CallMethod(rt, "restore", "OO", src, expected) : NULL;
  Py_XDECREF(src);
  Py_XDECREF(expected);
  int ok = 0;
  PyObject *msg = NULL, *lost = NULL;
  if (ret == NULL || !PyArg_ParseTuple(ret, "pUU", &ok, &msg, &lost)) {
    kiln_error_t e = NULL;
    emb_error_from_python(&e, "restore");
    fbuf_put_u64(fb, TAG_STATUS, 1);
    fbuf_put_str(fb, TAG_MESSAGE, e ? e->msg : "the snapshot could not be loaded");
    kiln_error_release(&e);
    Py_XDECREF(ret);
    return;
  }
  fbuf_put_u64(fb, TAG_STATUS, ok ? 0 : 1);
  put_pystr(fb, TAG_MESSAGE, msg, lim->text_bytes);
  put_pystr(fb, TAG_LOST, lost, lim->text_bytes);
  Py_DECREF(ret);
}

void
wrk_main(const struct wrk_params *p)
{
  kiln_error_t err = NULL;
  PyOS_AfterFork_Child();

  prctl(PR_SET_NAME, "kiln-worker", 0, 0, 0);
  /* Its own session and process group, so that everything the cell
     starts can be signalled at once.  */
  if (setsid() < 0) {
    kiln_error_make(&err, errno, "setsid");
    fail(p->ctl, &err);
  }
  if (setup_fds(p, &err) < 0)
    fail(p->ctl, &err);

  struct sbx_params sp = { .session_id = p->session_id,
                           .uid = p->uid,
                           .gid = p->gid,
                           .scf = p->scf,
                           .serial = p->serial,
                           .packages_dir = p->packages_dir };
  if (sbx_enter(p->sbx, &sp, &err) < 0)
    fail(CTL_FD, &err);

  /* Jailed: only now does Python run on the session's behalf.  */
  PyObject *env = PyDict_New();
  for (const char *const *e = sbx_environment; env && *e; e++) {
    const char *eq = strchr(*e, '=');
    PyObject *k = PyUnicode_FromStringAndSize(*e, eq - *e), *v = PyUnicode_FromString(eq + 1);
    if (k == NULL || v == NULL || PyDict_SetItem(env, k, v) < 0)
      Py_CLEAR(env);
    Py_XDECREF(k);
    Py_XDECREF(v);
  }
  /* The session's Pythons find libpython at the prefix's neutral path
     only this way: their own search path names the host's.  */
  if (env && p->sbx->python_neutral) {
    PyObject *v = PyUnicode_FromString(NEUTRAL_PYTHON "/lib");
    if (v == NULL || PyDict_SetItemString(env, "LD_LIBRARY_PATH", v) < 0)
      Py_CLEAR(env);
    Py_XDECREF(v);
  }
  PyObject *rt = env ? PyImport_ImportModule("kiln_runtime") : NULL;
  PyObject *init = rt ? PyObject_CallMethod(rt, "worker_init", "Oin", env, (int)p->sbx->jail,
                                            (Py_ssize_t)p->max_image_side)
                      : NULL;
  Py_XDECREF(env);
  PyObject *run = rt ? PyObject_GetAttrString(rt, "run_cell") : NULL;
  PyObject *changed_files = rt ? PyObject_GetAttrString(rt, "changed_files") : NULL;
  if (init == NULL || run == NULL || changed_files == NULL) {
    emb_error_from_python(&err, "worker_init");
    fail(CTL_FD, &err);
  }
  Py_DECREF(init);

  struct fbuf fb;
  fbuf_init(&fb, FRAME_WORKER_READY);
  fbuf_finish(&fb);
  if (frame_send(CTL_FD, &fb, NULL, 0, NULL) < 0)
    _exit(1);
  fbuf_free(&fb);

  /* From here on user code runs.  The loop ends when the front closes the
     socket (session closed) or sends something it should not.  */
  for (;;) {
    struct frame f;
    uint8_t *payload = NULL;
    if (frame_recv(CTL_FD, &f, &payload, p->limits->front_frame, NULL) < 0)
      break;
    /* The answer to an input() an interrupt gave up on.  */
    if (mark_stale_input(&f)) {
      free(payload);
      continue;
    }
    /* Only a snapshot comes with an fd: the file to write or read.  */
    int fd = -1;
    for (size_t i = 0; i < f.nfds; i++) {
      if (i == 0 && (f.type == FRAME_SNAPSHOT || f.type == FRAME_RESTORE))
        fd = f.fds[i];
      else
        close(f.fds[i]);
    }
    /* Between cells: a snapshot, the session's files (served by C
       alone), a frontend's question, a shell command; each answered in
       one frame.  */
    bool answered = true;
    if (f.type == FRAME_SNAPSHOT || f.type == FRAME_RESTORE) {
      uint64_t max_bytes = 0;
      if (f.type == FRAME_RESTORE)
        load_snapshot(rt, &f, fd, p->limits, &fb);
      else if (fd < 0 || frame_get_u64(&f, TAG_MAX_BYTES, false, &max_bytes, NULL) < 0) {
        fbuf_init(&fb, FRAME_SNAPSHOT_DONE);
        fbuf_put_str(&fb, TAG_MESSAGE, "malformed SNAPSHOT from the front");
      } else
        take_snapshot(rt, fd, max_bytes, p->limits, &fb);
      if (fd >= 0)
        close(fd);
    } else if (f.type == FRAME_FILE_LIST || f.type == FRAME_FILE_READ || f.type == FRAME_FILE_WRITE
               || f.type == FRAME_FILE_MKDIR)
      files_serve(&f, p->limits, &fb);
    else if (f.type == FRAME_INTROSPECT)
      introspect(rt, &f, &fb);
    else if (f.type == FRAME_SHELL) {
      uint64_t cell_no = 0;
      (void)frame_get_u64(&f, TAG_CELL_NO, true, &cell_no, NULL);
      intr_arm(cell_no);
      shell_serve(&f, p->sbx->jail, &fb);
      /* The files the command wrote, reported as a cell's are.  */
      PyObject *files = PyObject_CallNoArgs(changed_files);
      if (files == NULL)
        PyErr_Clear();
      put_outputs(&fb, files, p->limits);
      Py_XDECREF(files);
    } else
      answered = false;
    if (answered) {
      free(payload);
      if (send_answer(&fb) < 0)
        break;
      continue;
    }
    if (f.type != FRAME_EXEC)
      break;
    uint64_t cell_no = 0;
    const struct field *code = frame_get(&f, TAG_CODE);
    kiln_error_t ferr = NULL;
    if (code == NULL || frame_get_u64(&f, TAG_CELL_NO, false, &cell_no, &ferr) < 0) {
      /* The front is trusted: a malformed EXEC is a bug there, and this
         worker stops rather than guess.  */
      log_error(LOG_ERROR, &ferr, "malformed EXEC from the front");
      break;
    }
    /* Packages were installed for the session since the last cell: their
       directory goes on sys.path first (.pth files included), and the
       import system forgets what it found missing before.  */
    cleanup_free char *site = NULL;
    if (frame_get_str(&f, TAG_PATH, true, &site, NULL, &ferr) == 0 && site != NULL) {
      PyObject *mod = PyImport_ImportModule("kiln_packages");
      PyObject *r = mod ? PyObject_CallMethod(mod, "add_site_dir", "s", site) : NULL;
      Py_XDECREF(mod);
      if (r == NULL) {
        kiln_error_t e = NULL;
        emb_error_from_python(&e, "add_site_dir");
        log_error(LOG_WARN, &e, "installed packages");
      }
      Py_XDECREF(r);
    }
    kiln_error_release(&ferr);
    intr_arm(cell_no);
    run_cell(run, (const char *)code->data, code->len, frame_get(&f, TAG_COMPILED), cell_no,
             p->limits, &fb);
    free(payload);
    /* C-level stdio (printf from extensions) is block-buffered on a pipe;
       everything the cell wrote must be in the pipes before DONE.  */
    fflush(stdout);
    fflush(stderr);
    fbuf_finish(&fb);
    if (frame_send(CTL_FD, &fb, NULL, 0, NULL) < 0)
      break;
    fbuf_free(&fb);
  }
  /* Workers never finalise Python: flush and go.  */
  fflush(stdout);
  fflush(stderr);
  _exit(0);
}
