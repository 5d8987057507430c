#define _GNU_SOURCE
#include "workdir.h"
#include "records.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* PATH below DIRFD, resolved without leaving it and without following
   any symlink on the way (the last component included).  */
static int
open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
  struct open_how how = {
    .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
    .mode = (flags & O_CREAT) ? mode : 0,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static const char *
kind_of(mode_t mode)
{
  return S_ISLNK(mode)    ? "a symlink"
         : S_ISDIR(mode)  ? "a directory"
         : S_ISFIFO(mode) ? "a named pipe"
         : S_ISSOCK(mode) ? "a socket"
         : S_ISCHR(mode)  ? "a character device"
         : S_ISBLK(mode)  ? "a block device"
                          : "a special file";
}

static void
add_entry(struct workdir *w, char *path, bool dir, uint64_t size)
{
  w->entries = xrealloc(w->entries, (w->n + 1) * sizeof *w->entries);
  w->entries[w->n++] = (struct wd_entry){ path, dir, size };
}

/* Adds what directory DFD (PREFIX below DIR, DEPTH levels down) holds.  */
static int
scan_dir(struct workdir *w, int dfd, const char *prefix, int depth, uint64_t max_bytes, FILE *warn,
         kiln_error_t *err)
{
  int fd = dup(dfd);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (d == NULL) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return kiln_error_make(err, e, "cannot read %s/%s", w->name, prefix);
  }
  struct dirent *de;
  int rc = 0;
  errno = 0;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    char *path = prefix[0] ? xasprintf("%s/%s", prefix, de->d_name) : xstrdup(de->d_name);
    struct stat st;
    if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      rc = kiln_error_make(err, errno, "cannot read %s/%s", w->name, path);
      free(path);
      break;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
      fprintf(warn,
              "kiln: --workdir: skipping %s/%s: it is %s, and only regular files and "
              "directories are copied into /work\n",
              w->name, path, kind_of(st.st_mode));
      free(path);
      continue;
    }
    if (strlen(path) > REC_PATH_MAX) {
      rc = kiln_error_make(err, 0, "%s/%s...: the path is longer than %d bytes", w->name,
                           de->d_name, REC_PATH_MAX);
      free(path);
      break;
    }
    if (w->n == REC_LIST_MAX_ENTRIES) {
      rc = kiln_error_make(err, 0,
                           "%s holds more than %d files and directories, more than kiln copies "
                           "into /work",
                           w->name, REC_LIST_MAX_ENTRIES);
      free(path);
      break;
    }
    if (S_ISREG(st.st_mode)) {
      /* Said now rather than once the session has been started.  */
      if (faccessat(dfd, de->d_name, R_OK, AT_EACCESS) < 0) {
        rc = kiln_error_make(err, errno, "cannot read %s/%s", w->name, path);
        free(path);
        break;
      }
      w->bytes += (uint64_t)st.st_size;
      if (w->bytes > max_bytes) {
        rc = kiln_error_make(err, 0,
                             "%s holds more than %llu bytes, the size of the session's /work "
                             "(--work-size)",
                             w->name, (unsigned long long)max_bytes);
        free(path);
        break;
      }
      add_entry(w, path, false, (uint64_t)st.st_size);
      continue;
    }
    /* As deep as a listing of /work goes, so that --keep sees all of
       what went in.  */
    if (depth == REC_LIST_MAX_DEPTH) {
      rc = kiln_error_make(err, 0, "%s/%s: directories nest more than %d deep", w->name, path,
                           REC_LIST_MAX_DEPTH);
      free(path);
      break;
    }
    add_entry(w, path, true, 0);
    int sub = open_beneath(dfd, de->d_name, O_RDONLY | O_DIRECTORY, 0);
    if (sub < 0) {
      rc = kiln_error_make(err, errno, "cannot read %s/%s", w->name, path);
      break;
    }
    rc = scan_dir(w, sub, path, depth + 1, max_bytes, warn, err);
    close(sub);
    errno = 0;
  }
  if (rc == 0 && errno != 0)
    rc = kiln_error_make(err, errno, "cannot read %s/%s", w->name, prefix);
  closedir(d);
  return rc;
}

int
wd_scan(struct workdir *w, const char *dir, uint64_t max_bytes, FILE *warn, kiln_error_t *err)
{
  *w = (struct workdir){ .name = xstrdup(dir), .fd = -1 };
  /* DIR itself is the user's choice and may be reached through a
     symlink; only what lies below it is held to the rules.  */
  w->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (w->fd < 0)
    return kiln_error_make(err, errno, "--workdir %s", dir);
  return scan_dir(w, w->fd, "", 0, max_bytes, warn, err);
}

void
wd_free(struct workdir *w)
{
  for (size_t i = 0; i < w->n; i++)
    free(w->entries[i].path);
  free(w->entries);
  free(w->name);
  if (w->fd >= 0)
    close(w->fd);
  *w = (struct workdir){ .fd = -1 };
}

int
wd_open_file(const struct workdir *w, const char *path, kiln_error_t *err)
{
  /* O_NONBLOCK: whatever took the file's place since the scan, a named
     pipe included, must not hang the copy.  */
  int fd = open_beneath(w->fd, path, O_RDONLY | O_NONBLOCK, 0);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return kiln_error_make(err, e, "cannot read %s/%s", w->name, path);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return kiln_error_make(err, 0, "%s/%s is no longer a regular file", w->name, path);
  }
  return fd;
}

/* Opens the directory of the first LEN bytes of PATH below DIR, making
   each missing one; returns its fd or -1 with ERR.  */
static int
open_dirs(const struct workdir *w, const char *path, size_t len, kiln_error_t *err)
{
  int dir = dup(w->fd);
  if (dir < 0)
    return kiln_error_make(err, errno, "dup");
  size_t start = 0;
  while (start < len) {
    size_t end = start;
    while (end < len && path[end] != '/')
      end++;
    cleanup_free char *name = xstrndup(path + start, end - start);
    if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST) {
      int e = errno;
      close(dir);
      return kiln_error_make(err, e, "cannot make the directory %s/%.*s", w->name, (int)end, path);
    }
    /* A symlink in the way, to a directory or not, fails here (ELOOP),
       as does a file (ENOTDIR).  */
    int next = open_beneath(dir, name, O_RDONLY | O_DIRECTORY, 0);
    int e = errno;
    close(dir);
    if (next < 0) {
      struct stat st;
      cleanup_free char *so_far = xstrndup(path, end);
      bool link = fstatat(w->fd, so_far, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
      return link ? kiln_error_make(err, 0, "%s/%.*s is a symlink, which kiln does not follow",
                                    w->name, (int)end, path)
                  : kiln_error_make(err, e, "cannot open the directory %s/%.*s", w->name, (int)end,
                                    path);
    }
    dir = next;
    start = end + 1;
  }
  return dir;
}

int
wd_mkdir(const struct workdir *w, const char *path, kiln_error_t *err)
{
  if (!rec_path_ok(path, strlen(path), false))
    return kiln_error_make(err, 0, "'%s' is not a path below %s", path, w->name);
  int fd = open_dirs(w, path, strlen(path), err);
  if (fd < 0)
    return -1;
  close(fd);
  return 0;
}

int
wd_out_open(const struct workdir *w, const char *path, struct wd_out *o, kiln_error_t *err)
{
  *o = (struct wd_out){ .parent = -1, .fd = -1, .old = -1 };
  size_t len = strlen(path);
  if (!rec_path_ok(path, len, false))
    return kiln_error_make(err, 0, "'%s' is not a path below %s", path, w->name);
  const char *slash = strrchr(path, '/');
  size_t dir_len = slash ? (size_t)(slash - path) : 0;
  o->parent = open_dirs(w, path, dir_len, err);
  if (o->parent < 0)
    return -1;
  o->leaf = xstrdup(slash ? slash + 1 : path);
  mode_t mode = 0644;
  struct stat st;
  if (fstatat(o->parent, o->leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISREG(st.st_mode)) {
      kiln_error_make(err, 0, "%s/%s is %s; it is left as it is", w->name, path,
                      kind_of(st.st_mode));
      goto fail;
    }
    o->old = openat(o->parent, o->leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (o->old >= 0 && fstat(o->old, &st) == 0 && S_ISREG(st.st_mode)) {
      o->old_size = (uint64_t)st.st_size;
      mode = st.st_mode & 07777;
      o->same = true;
    }
  } else if (errno != ENOENT) {
    kiln_error_make(err, errno, "cannot write %s/%s", w->name, path);
    goto fail;
  }
  for (int tries = 0; o->fd < 0; tries++) {
    uint8_t r[6];
    random_bytes(r, sizeof r);
    snprintf(o->tmp, sizeof o->tmp, ".kiln-keep-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
             r[4], r[5]);
    o->fd = openat(o->parent, o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (o->fd < 0 && (errno != EEXIST || tries == 10)) {
      o->tmp[0] = '\0';
      kiln_error_make(err, errno, "cannot write into %s", w->name);
      goto fail;
    }
  }
  /* The mode of the file it replaces, or what a new file gets under the
     user's umask.  */
  if (o->old < 0) {
    mode_t mask = umask(0);
    umask(mask);
    mode &= ~mask;
  }
  fchmod(o->fd, mode);
  return 0;
fail:
  wd_out_close(o, false, NULL, NULL);
  return -1;
}

int
wd_out_write(struct wd_out *o, const uint8_t *data, size_t len, kiln_error_t *err)
{
  if (len == 0)
    return 0;
  if (write_full(o->fd, data, len) < 0)
    return kiln_error_make(err, errno, "cannot write %s", o->leaf);
  if (o->same) {
    cleanup_free uint8_t *was = xmalloc(len);
    ssize_t got = pread(o->old, was, len, (off_t)o->written);
    o->same = got == (ssize_t)len && memcmp(was, data, len) == 0;
  }
  o->written += len;
  return 0;
}

int
wd_out_close(struct wd_out *o, bool commit, bool *changed, kiln_error_t *err)
{
  int rc = 0;
  bool moved = false;
  if (commit && o->fd >= 0) {
    bool same = o->same && o->written == o->old_size;
    if (!same && renameat(o->parent, o->tmp, o->parent, o->leaf) < 0)
      rc = kiln_error_make(err, errno, "cannot put %s in place", o->leaf);
    moved = !same && rc == 0;
  }
  if (!moved && o->tmp[0])
    unlinkat(o->parent, o->tmp, 0);
  if (changed)
    *changed = moved;
  if (o->fd >= 0)
    close(o->fd);
  if (o->old >= 0)
    close(o->old);
  if (o->parent >= 0)
    close(o->parent);
  free(o->leaf);
  *o = (struct wd_out){ .parent = -1, .fd = -1, .old = -1 };
  return rc;
}
