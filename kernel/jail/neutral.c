#define _GNU_SOURCE
#include "neutral.h"
#include "mounts.h"
#include "namespaces.h"
#include "sandbox.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* In the tmpfs on /opt, outside NEUTRAL_DIR (whose trees are all a
   worker's jail shows): the host trees, and the venv's rewritten files.  */
#define SRC   "/opt/.src"
#define STAGE "/opt/.stage"

/* Text files of the venv's bin/ are rewritten up to this size; larger
   files, and any with a NUL byte (programs), are shown as they are.  */
#define REWRITE_MAX (1u << 20)

static bool
under(const char *path, const char *dir)
{
  size_t l = strlen(dir);
  return strncmp(path, dir, l) == 0 && (path[l] == '/' || path[l] == '\0');
}

void
neutral_trees_of(const struct sbx_config *c, struct neutral_trees *t)
{
  *t = (struct neutral_trees){
    .python_home = mnt_system_path(c->expose[0]) ? NULL : c->expose[0],
    .venv = c->expose[1],
    .runtime = c->expose[2],
    .state_dir = c->root_dir,
  };
}

int
neutral_check(const struct sbx_config *c, kiln_error_t *err)
{
  struct neutral_trees t;
  neutral_trees_of(c, &t);
  return neutral_enter(&t, c->userns, err);
}

static int
clone_tree(const char *path, int *fd, kiln_error_t *err)
{
  struct stat st;
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
  /* Only a directory has mounts below it to take along.  */
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    flags |= AT_RECURSIVE;
  *fd = (int)syscall(SYS_open_tree, AT_FDCWD, path, flags);
  if (*fd < 0)
    return kiln_error_make(err, errno, "open_tree %s", path);
  return 0;
}

/* Attaches the detached tree FD at DST, made as a directory, or as an
   empty file when FILE.  */
static int
attach(int fd, const char *dst, bool file, kiln_error_t *err)
{
  if (file) {
    int f = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0555);
    if (f < 0)
      return kiln_error_make(err, errno, "create %s", dst);
    close(f);
  } else if (mkdir_p(dst, 0755) < 0)
    return kiln_error_make(err, errno, "mkdir %s", dst);
  if (syscall(SYS_move_mount, fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
    return kiln_error_make(err, errno, "mount on %s", dst);
  return 0;
}

/* The host paths a venv's files name, and what they become.  The longer
   first: a venv may lie inside the prefix (pyenv's virtualenvs do).  */
struct subst {
  const char *from[4], *to[4];
  size_t n;
};

static void
subst_add(struct subst *s, const char *from, const char *to)
{
  if (from == NULL)
    return;
  for (size_t k = 0; k < s->n; k++)
    if (strcmp(s->from[k], from) == 0)
      return;
  size_t i = s->n++;
  while (i > 0 && strlen(s->from[i - 1]) < strlen(from)) {
    s->from[i] = s->from[i - 1];
    s->to[i] = s->to[i - 1];
    i--;
  }
  s->from[i] = from;
  s->to[i] = to;
}

/* TEXT (LEN bytes) with every path of S replaced, into OUT.  */
static void
rewrite(const char *text, size_t len, const struct subst *s, struct buf *out)
{
  size_t i = 0;
  while (i < len) {
    size_t k = 0;
    while (k < s->n) {
      size_t fl = strlen(s->from[k]);
      if (fl <= len - i && memcmp(text + i, s->from[k], fl) == 0)
        break;
      k++;
    }
    if (k < s->n) {
      buf_append(out, s->to[k], strlen(s->to[k]));
      i += strlen(s->from[k]);
    } else
      buf_append(out, text + i++, 1);
  }
}

/* Reads DIRFD/NAME whole when it is a text file of at most REWRITE_MAX
   bytes: returns 1 with its bytes in OUT and its mode in *MODE; 0 when
   it is not, or is not there; -1 with ERR.  */
static int
read_text(int dirfd, const char *name, struct buf *out, mode_t *mode, kiln_error_t *err)
{
  cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  if (fd < 0 && (errno == ENOENT || errno == ELOOP))
    return 0;
  if (fd < 0 || fstat(fd, &st) < 0)
    return kiln_error_make(err, errno, "open %s", name);
  if (!S_ISREG(st.st_mode) || st.st_size > REWRITE_MAX)
    return 0;
  *mode = st.st_mode & 07777;
  char chunk[16384];
  ssize_t n;
  while ((n = read(fd, chunk, sizeof chunk)) > 0) {
    if (memchr(chunk, '\0', (size_t)n))
      return 0;
    buf_append(out, chunk, (size_t)n);
  }
  if (n < 0)
    return kiln_error_make(err, errno, "read %s", name);
  return 1;
}

static int
write_new(const char *path, const struct buf *b, mode_t mode, kiln_error_t *err)
{
  cleanup_close int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0 || write_full(fd, b->data, b->len) < 0 || fchmod(fd, mode) < 0)
    return kiln_error_make(err, errno, "write %s", path);
  return 0;
}

/* One entry of the venv's bin/ into the stage, when it names a path of
   S: a link, or a script, with its paths rewritten.  Anything else is
   left to show through from the venv below the stage.  */
static int
stage_entry(int bin, const char *name, const char *dst, const struct subst *s, kiln_error_t *err)
{
  struct stat st;
  if (fstatat(bin, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_make(err, errno, "stat bin/%s", name);
  struct buf text = { 0 }, b = { 0 };
  int r = 0;
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = readlinkat(bin, name, target, sizeof target - 1);
    if (n < 0)
      return kiln_error_make(err, errno, "readlink bin/%s", name);
    rewrite(target, (size_t)n, s, &b);
    buf_append(&b, "", 1);
    if (symlink((const char *)b.data, dst) < 0)
      r = kiln_error_make(err, errno, "symlink %s", dst);
  } else if (S_ISREG(st.st_mode)) {
    mode_t mode = 0;
    r = read_text(bin, name, &text, &mode, err);
    if (r == 1) {
      rewrite((const char *)text.data, text.len, s, &b);
      r = b.len == text.len && memcmp(b.data, text.data, b.len) == 0
              ? 0
              : write_new(dst, &b, mode, err);
    }
  }
  buf_free(&text);
  buf_free(&b);
  return r;
}

/* The venv's bin/ and pyvenv.cfg, rewritten by S, into STAGE/venv: the
   top layer of the venv's overlay.  VENV is the venv's tree.  */
static int
stage_venv(int venv, const struct subst *s, kiln_error_t *err)
{
  if (mkdir_p(STAGE "/venv/bin", 0755) < 0)
    return kiln_error_make(err, errno, "mkdir " STAGE "/venv/bin");
  int binfd = openat(venv, "bin", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (binfd >= 0) {
    DIR *d = fdopendir(binfd);
    if (d == NULL) {
      close(binfd);
      return kiln_error_make(err, errno, "read the venv's bin");
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        continue;
      cleanup_free char *dst = xasprintf(STAGE "/venv/bin/%s", de->d_name);
      rc = stage_entry(dirfd(d), de->d_name, dst, s, err);
    }
    closedir(d);
    if (rc < 0)
      return -1;
  }
  struct buf cfg = { 0 }, b = { 0 };
  mode_t mode = 0;
  int r = read_text(venv, "pyvenv.cfg", &cfg, &mode, err);
  if (r == 1) {
    rewrite((const char *)cfg.data, cfg.len, s, &b);
    r = write_new(STAGE "/venv/pyvenv.cfg", &b, 0444, err);
  }
  buf_free(&cfg);
  buf_free(&b);
  return r < 0 ? -1 : 0;
}

/* Shows LOWER (and TOP over it, when not NULL) at DST, read-only, as an
   overlay: a mount whose mountinfo names no host path, where a bind
   mount would name its source's path in the host's filesystem.  */
static int
overlay(const char *dst, const char *top, const char *lower, kiln_error_t *err)
{
  if (mkdir_p(dst, 0755) < 0)
    return kiln_error_make(err, errno, "mkdir %s", dst);
  /* A read-only overlay (no upper directory) needs two lower ones.  */
  cleanup_free char *opts = xasprintf("lowerdir=%s:%s", top ? top : SRC "/empty", lower);
  if (mount("overlay", dst, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts) < 0)
    return kiln_error_make(err, errno, "mount an overlay of %s on %s", lower, dst);
  return 0;
}

int
neutral_enter(const struct neutral_trees *t, bool userns, kiln_error_t *err)
{
  struct stat st;
  if (stat("/opt", &st) < 0 || !S_ISDIR(st.st_mode))
    return kiln_error_make(err, 0, "this host has no /opt directory to show them under");
  if (under(t->state_dir, "/opt"))
    return kiln_error_make(err, 0, "KILN_HOME is under /opt, which the layout covers");
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (unshare(CLONE_NEWNS | (userns ? CLONE_NEWUSER : 0)) < 0)
    return kiln_error_make(err, errno, "unshare a mount namespace for kiln's trees");
  if (userns && ns_map_ids(uid, gid, err) < 0)
    return -1;
  /* The host's mounts still reach this namespace; none of its own
     reaches the host.  */
  if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
    return kiln_error_make(err, errno, "make / a slave");

  /* Taken before /opt is covered: any of them may be under it.  */
  cleanup_free char *self = realpath("/proc/self/exe", NULL);
  if (self == NULL)
    return kiln_error_make(err, errno, "find this executable");
  /* The venv's files may name the trees by their real paths too.  */
  cleanup_free char *real_venv = realpath(t->venv, NULL);
  cleanup_free char *real_python = t->python_home ? realpath(t->python_home, NULL) : NULL;
  cleanup_close int python = -1, venv = -1, runtime = -1, exe = -1;
  if ((t->python_home && clone_tree(t->python_home, &python, err) < 0)
      || clone_tree(t->venv, &venv, err) < 0 || clone_tree(t->runtime, &runtime, err) < 0
      || clone_tree(self, &exe, err) < 0)
    return -1;
  if (mount("tmpfs", "/opt", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755") < 0)
    return kiln_error_make(err, errno, "mount a tmpfs on /opt");
  if (mkdir_p(SRC "/empty", 0755) < 0 || mkdir_p(NEUTRAL_DIR "/bin", 0755) < 0)
    return kiln_error_make(err, errno, "mkdir under /opt");
  if ((python >= 0 && attach(python, SRC "/python", false, err) < 0)
      || attach(venv, SRC "/venv", false, err) < 0
      || attach(runtime, SRC "/runtime", false, err) < 0 || attach(exe, NEUTRAL_EXE, true, err) < 0)
    return -1;

  struct subst s = { .n = 0 };
  subst_add(&s, t->venv, NEUTRAL_VENV);
  subst_add(&s, real_venv, NEUTRAL_VENV);
  if (t->python_home) {
    subst_add(&s, t->python_home, NEUTRAL_PYTHON);
    subst_add(&s, real_python, NEUTRAL_PYTHON);
  }
  if (stage_venv(venv, &s, err) < 0)
    return -1;
  if ((python >= 0 && overlay(NEUTRAL_PYTHON, NULL, SRC "/python", err) < 0)
      || overlay(NEUTRAL_VENV, STAGE "/venv", SRC "/venv", err) < 0
      || overlay(NEUTRAL_RUNTIME, NULL, SRC "/runtime", err) < 0)
    return -1;
  if (mount(NULL, "/opt", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
      < 0)
    return kiln_error_make(err, errno, "remount /opt read-only");
  return 0;
}
