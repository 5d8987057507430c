#define _GNU_SOURCE
#include "pycompat.h"

#include "watch.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* The bounds of kiln_runtime._scan_work, so that watching covers the
   same tree the scan would.  */
#define MAX_DEPTH   16    /* directories deeper than this are not looked into */
#define MAX_CHANGES 10000 /* more changed paths than this: a bounded scan instead */
/* Each watch is charged to the host user (fs.inotify.max_user_watches),
   shared by every session: one session may not take them all.  */
#define MAX_WATCHES 10000

/* Files: created (mknod, link, O_CREAT), written (IN_MODIFY also catches
   a file still open at the end of the cell, truncate and a rewrite to the
   same size), closed after writing, utime'd or chmod'ed, moved in, moved
   out, deleted.  Directories: the same events say one appeared or went.
   IN_ONLYDIR and IN_DONT_FOLLOW: a name swapped for a file or symlink
   between the listing and the watch is not watched.  */
#define EVENTS                                                                                     \
  (IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE    \
   | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

struct watch {
  int wd;     /* 0: a free slot */
  char *path; /* relative to the root, "" for the root itself; owned */
};

static struct {
  char *root;        /* NULL until start(); owned */
  dev_t dev;         /* the root's filesystem: kiln's binds beneath it are not watched */
  int fd;            /* the inotify instance, -1 when there is none */
  pid_t owner;       /* set with F_SETOWN on the instance: tells our fd from whatever
                        user code may have put at its number after closing it */
  struct watch *tab; /* open addressing on wd, linear probing */
  size_t cap, n;
  bool lost;      /* events were lost: a new instance and a scan are due */
  bool rescan;    /* the next changes() returns None */
  char *failure;  /* why watching stopped for good, until it is said; owned */
  PyObject *seen; /* during a drain: the changed paths (a set), or NULL when
                     a scan is due anyway */
} state = { .fd = -1 };

/* --- watch descriptors to paths --------------------------------------- */

static struct watch *
tab_find(int wd)
{
  if (state.cap == 0)
    return NULL;
  for (size_t i = (size_t)wd & (state.cap - 1);; i = (i + 1) & (state.cap - 1)) {
    if (state.tab[i].wd == wd)
      return &state.tab[i];
    if (state.tab[i].wd == 0)
      return NULL;
  }
}

static void
tab_insert(int wd, char *path)
{
  size_t i = (size_t)wd & (state.cap - 1);
  while (state.tab[i].wd != 0)
    i = (i + 1) & (state.cap - 1);
  state.tab[i] = (struct watch){ wd, path };
}

/* Records PATH for WD, replacing the path WD had if any (a directory
   moved).  Takes ownership of PATH.  */
static void
tab_put(int wd, char *path)
{
  struct watch *w = tab_find(wd);
  if (w != NULL) {
    free(w->path);
    w->path = path;
    return;
  }
  if (2 * (state.n + 1) > state.cap) {
    struct watch *old = state.tab;
    size_t oldcap = state.cap;
    state.cap = state.cap ? 2 * state.cap : 64;
    state.tab = xzalloc(state.cap * sizeof *state.tab);
    for (size_t i = 0; i < oldcap; i++)
      if (old[i].wd != 0)
        tab_insert(old[i].wd, old[i].path);
    free(old);
  }
  tab_insert(wd, path);
  state.n++;
}

static void
tab_del(int wd)
{
  struct watch *w = tab_find(wd);
  if (w == NULL)
    return;
  free(w->path);
  /* Backward-shift deletion: every entry after the hole that could live
     in it moves up, so that lookups need no tombstones.  */
  size_t hole = (size_t)(w - state.tab), mask = state.cap - 1;
  for (size_t i = (hole + 1) & mask; state.tab[i].wd != 0; i = (i + 1) & mask) {
    size_t home = (size_t)state.tab[i].wd & mask;
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      state.tab[hole] = state.tab[i];
      hole = i;
    }
  }
  state.tab[hole] = (struct watch){ 0, NULL };
  state.n--;
}

static void
tab_clear(void)
{
  for (size_t i = 0; i < state.cap; i++)
    free(state.tab[i].path);
  free(state.tab);
  state.tab = NULL;
  state.cap = state.n = 0;
}

/* Whether PATH is DIR or lies beneath it.  */
static bool
within(const char *path, const char *dir)
{
  size_t l = strlen(dir);
  return strncmp(path, dir, l) == 0 && (path[l] == '\0' || path[l] == '/');
}

/* DIR/NAME, or NAME under the root; the caller frees it.  */
static char *
join(const char *dir, const char *name)
{
  return dir[0] ? xasprintf("%s/%s", dir, name) : xstrdup(name);
}

static int
depth(const char *rel)
{
  if (rel[0] == '\0')
    return 0;
  int d = 1;
  for (const char *p = rel; *p; p++)
    d += *p == '/';
  return d;
}

/* --- the instance --------------------------------------------------- */

/* Watching stops for good: every later changes() asks for a scan, and
   the first says why on the cell's stderr.  */
static void
give_up(const char *why, int e)
{
  if (state.fd >= 0)
    close(state.fd);
  state.fd = -1;
  tab_clear();
  Py_CLEAR(state.seen);
  if (state.failure == NULL)
    state.failure = xasprintf("kiln: changed files in /work are found by scanning it after each "
                              "cell from now on, which is slower with many files: %s%s%s\n",
                              why, e ? ": " : "", e ? strerror(e) : "");
}

static int
open_instance(void)
{
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    give_up(errno == EMFILE ? "no inotify instance left (fs.inotify.max_user_instances)"
                            : "inotify_init1",
            errno == EMFILE ? 0 : errno);
    return -1;
  }
  /* Out of user code's way: fds are handed out lowest first, so a high
     number is the last one a cell that opens files, or closes a range of
     them, runs into.  */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= 64) {
    int high = fcntl(fd, F_DUPFD_CLOEXEC, (int)(rl.rlim_cur / 2));
    if (high >= 0) {
      close(fd);
      fd = high;
    }
  }
  state.owner = getpid();
  if (fcntl(fd, F_SETOWN, state.owner) < 0) {
    close(fd);
    give_up("F_SETOWN on the inotify fd", errno);
    return -1;
  }
  state.fd = fd;
  return 0;
}

/* Whether state.fd is still the instance we made: user code may have
   closed it, and then opened or dup'ed something else onto its number.  */
static bool
fd_ours(void)
{
  return fcntl(state.fd, F_GETOWN) == state.owner;
}

/* Adds REL to the changed paths; takes ownership of it.  */
static void
note(char *rel)
{
  if (state.seen != NULL) {
    PyObject *s = PyUnicode_DecodeFSDefault(rel);
    if (s == NULL || PySet_Add(state.seen, s) < 0 || PySet_GET_SIZE(state.seen) > MAX_CHANGES) {
      PyErr_Clear();
      Py_CLEAR(state.seen);
      state.rescan = true;
    }
    Py_XDECREF(s);
  }
  free(rel);
}

/* Watches the directory REL and every directory beneath it (same
   filesystem, within MAX_DEPTH) and notes every other entry: they may
   have been made before the watch existed.  A directory that vanished or
   cannot be read is skipped, as the scan skips it.  */
static void
watch_tree(const char *rel)
{
  size_t nstack = 1, capstack = 16;
  char **stack = xmalloc(capstack * sizeof *stack);
  stack[0] = xstrdup(rel);
  while (nstack > 0) {
    cleanup_free char *dir = stack[--nstack];
    /* Watching may have stopped on the way.  */
    if (state.fd < 0 || depth(dir) > MAX_DEPTH)
      continue;
    cleanup_free char *abs = dir[0] ? xasprintf("%s/%s", state.root, dir) : xstrdup(state.root);
    int fd = open(abs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
      continue;
    struct stat st;
    DIR *d = NULL;
    if (fstat(fd, &st) < 0 || st.st_dev != state.dev || (d = fdopendir(fd)) == NULL) {
      close(fd);
      continue;
    }
    /* The watch before the listing: an entry made in between is then
       both listed and reported by an event, never neither.  */
    int wd = inotify_add_watch(state.fd, abs, EVENTS);
    if (wd < 0) {
      int e = errno;
      closedir(d);
      if (e == ENOSPC || e == ENOMEM) {
        give_up("no inotify watch left (fs.inotify.max_user_watches)", e == ENOSPC ? 0 : e);
      }
      continue;
    }
    if (tab_find(wd) == NULL && state.n >= MAX_WATCHES) {
      closedir(d);
      give_up("more than 10000 directories under /work", 0);
      continue;
    }
    tab_put(wd, xstrdup(dir));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        continue;
      unsigned char type = de->d_type;
      if (type == DT_UNKNOWN) {
        struct stat es;
        type = fstatat(dirfd(d), de->d_name, &es, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(es.st_mode)
                   ? DT_DIR
                   : DT_REG;
      }
      if (type != DT_DIR) {
        note(join(dir, de->d_name));
        continue;
      }
      if (nstack == capstack) {
        capstack *= 2;
        stack = xrealloc(stack, capstack * sizeof *stack);
      }
      stack[nstack++] = join(dir, de->d_name);
    }
    closedir(d);
  }
  free(stack);
}

/* Removes the watches of the directory REL and everything beneath it:
   it was moved away, maybe somewhere not watched; if it reappears
   under /work the event for that watches it again under its new name.  */
static void
unwatch_tree(const char *rel)
{
  size_t n = 0;
  int *wds = xmalloc((state.n + 1) * sizeof *wds);
  for (size_t i = 0; i < state.cap; i++)
    if (state.tab[i].wd != 0 && within(state.tab[i].path, rel))
      wds[n++] = state.tab[i].wd;
  for (size_t i = 0; i < n; i++) {
    inotify_rm_watch(state.fd, wds[i]);
    tab_del(wds[i]);
  }
  free(wds);
}

/* A fresh instance watching the whole tree; the queue of the old one is
   dropped, and the caller scans.  */
static void
rebuild(void)
{
  if (state.fd >= 0)
    close(state.fd);
  state.fd = -1;
  tab_clear();
  Py_CLEAR(state.seen);
  state.lost = false;
  state.rescan = true;
  if (open_instance() == 0)
    watch_tree("");
}

static void
handle(const struct inotify_event *ev)
{
  if (ev->mask & IN_Q_OVERFLOW) {
    state.lost = true;
    return;
  }
  if (ev->mask & IN_IGNORED) {
    tab_del(ev->wd);
    return;
  }
  struct watch *w = tab_find(ev->wd);
  /* A watch removed since (its events still queued), or an event on the
     watched directory itself.  */
  if (w == NULL || ev->len == 0)
    return;
  char *rel = join(w->path, ev->name);
  if (!(ev->mask & IN_ISDIR)) {
    note(rel);
    return;
  }
  if (ev->mask & IN_MOVED_FROM)
    unwatch_tree(rel);
  else if (ev->mask & (IN_CREATE | IN_MOVED_TO))
    watch_tree(rel);
  else if (ev->mask & IN_ATTRIB) {
    /* A directory that could not be read when it appeared may have
       become readable.  */
    cleanup_free char *abs = xasprintf("%s/%s", state.root, rel);
    int wd = inotify_add_watch(state.fd, abs, EVENTS);
    if (wd < 0 || tab_find(wd) == NULL) {
      watch_tree(rel);
      /* Not taken up (too deep, another filesystem): not kept either.  */
      if (wd >= 0 && state.fd >= 0 && tab_find(wd) == NULL)
        inotify_rm_watch(state.fd, wd);
    }
  }
  /* A deleted directory's watch goes with its IN_IGNORED.  */
  free(rel);
}

/* Reads every queued event.  */
static void
drain(void)
{
  static char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
  while (state.fd >= 0 && !state.lost) {
    ssize_t n = read(state.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      break;
    if (n <= 0) {
      state.lost = true;
      break;
    }
    for (char *p = buf; p < buf + n && state.fd >= 0;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      p += sizeof *ev + ev->len;
      handle(ev);
    }
  }
}

/* --- the Python module ---------------------------------------------- */

/* start(root) -> bool */
static PyObject *
py_start(PyObject *self, PyObject *args)
{
  PyObject *path = NULL;
  (void)self;
  if (!PyArg_ParseTuple(args, "O&", PyUnicode_FSConverter, &path))
    return NULL;
  if (state.root != NULL) {
    Py_DECREF(path);
    return PyBool_FromLong(state.fd >= 0);
  }
  struct stat st;
  if (stat(PyBytes_AS_STRING(path), &st) < 0) {
    PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    Py_DECREF(path);
    return NULL;
  }
  state.root = xstrdup(PyBytes_AS_STRING(path));
  Py_DECREF(path);
  state.dev = st.st_dev;
  /* The first changes() asks for a scan, so that whatever the root held
     already is reported once, as before watching.  */
  state.rescan = true;
  if (open_instance() == 0)
    watch_tree("");
  return PyBool_FromLong(state.fd >= 0);
}

/* changes() -> sorted list of relative paths, or None: scan instead.  */
static PyObject *
py_changes(PyObject *self, PyObject *noargs)
{
  (void)self;
  (void)noargs;
  if (state.root == NULL)
    Py_RETURN_NONE;
  if (state.fd >= 0 && !fd_ours()) {
    /* Not ours any more: never close or read it.  */
    state.fd = -1;
    rebuild();
  }
  if (state.fd >= 0) {
    if (!state.rescan && (state.seen = PySet_New(NULL)) == NULL)
      return NULL;
    drain();
    if (state.lost)
      rebuild();
  }
  if (state.fd < 0) {
    if (state.failure != NULL) {
      /* Once, between the cell's own output and its end.  */
      write_full(STDERR_FILENO, state.failure, strlen(state.failure));
      free(steal_pointer(&state.failure));
    }
    Py_CLEAR(state.seen);
    Py_RETURN_NONE;
  }
  PyObject *seen = steal_pointer(&state.seen);
  if (state.rescan || seen == NULL) {
    state.rescan = false;
    Py_XDECREF(seen);
    Py_RETURN_NONE;
  }
  PyObject *list = PySequence_List(seen);
  Py_DECREF(seen);
  if (list != NULL && PyList_Sort(list) < 0)
    Py_CLEAR(list);
  return list;
}

static PyMethodDef methods[] = {
  { "start", py_start, METH_VARARGS,
    "start(root) -> bool: watch root's tree for changed files; False if it cannot be watched" },
  { "changes", py_changes, METH_NOARGS,
    "changes() -> sorted relative paths with events since the last call, or None: scan instead" },
  { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = { PyModuleDef_HEAD_INIT,
                                     "_kiln_watch",
                                     "kiln's record of changed files under /work (inotify)",
                                     -1,
                                     methods,
                                     NULL,
                                     NULL,
                                     NULL,
                                     NULL };

static PyObject *
init_module(void)
{
  return PyModule_Create(&module);
}

int
wch_register(void)
{
  return PyImport_AppendInittab("_kiln_watch", init_module);
}
