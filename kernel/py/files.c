#define _GNU_SOURCE
#include "files.h"
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

#define WORK "/work"

static int
open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
  struct open_how how = {
    .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
    .mode = (flags & O_CREAT) ? mode : 0,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
  };
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static void
result(struct fbuf *out, int status, const char *message)
{
  fbuf_init(out, FRAME_FILE_RESULT);
  fbuf_put_u64(out, TAG_STATUS, (uint64_t)status);
  if (message)
    fbuf_put_str(out, TAG_MESSAGE, message);
}

static void
fail(struct fbuf *out, int e, const char *what, const char *path)
{
  cleanup_free char *msg = xasprintf("%s '%s': %s", what, path, strerror(e));
  result(out, e ? e : EINVAL, msg);
}

/* A listing being built: it stops at the limits' entries or bytes and
   says it was cut short.  */
struct listing {
  struct buf b;
  size_t n;
  const struct kiln_limits *lim;
  bool truncated;
};

static void
list_dir(int dirfd, const char *prefix, int depth, struct listing *l)
{
  int fd = dup(dirfd);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (d == NULL) {
    if (fd >= 0)
      close(fd);
    return;
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL && !l->truncated) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    struct stat st;
    if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    cleanup_free char *path
        = prefix[0] ? xasprintf("%s/%s", prefix, de->d_name) : xstrdup(de->d_name);
    size_t plen = strlen(path);
    if (plen > UINT16_MAX)
      continue;
    struct rec_entry e = {
      .kind = S_ISREG(st.st_mode)   ? 'f'
              : S_ISDIR(st.st_mode) ? 'd'
              : S_ISLNK(st.st_mode) ? 'l'
                                    : 'o',
      .size = (uint64_t)st.st_size,
      .mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec,
      .path = path,
      .path_len = plen,
    };
    if (l->n == l->lim->listing_entries
        || l->b.len + REC_ENTRY_HDR + plen > l->lim->listing_bytes) {
      l->truncated = true;
      break;
    }
    rec_entry_put(&l->b, &e);
    l->n++;
    if (S_ISDIR(st.st_mode) && depth == REC_LIST_MAX_DEPTH)
      l->truncated = true;
    else if (S_ISDIR(st.st_mode)) {
      int sub = open_beneath(dirfd, de->d_name, O_RDONLY | O_DIRECTORY, 0);
      if (sub >= 0) {
        list_dir(sub, path, depth + 1, l);
        close(sub);
      }
    }
  }
  closedir(d);
}

/* Creates the directories leading to PATH beneath ROOT; returns a fd of
   the innermost one and leaves the last component in *LEAF.  */
static int
parent_dir(int root, char *path, const char **leaf)
{
  int dir = dup(root);
  char *p = path;
  for (char *slash; dir >= 0 && (slash = strchr(p, '/')) != NULL; p = slash + 1) {
    *slash = '\0';
    if (mkdirat(dir, p, 0755) < 0 && errno != EEXIST) {
      close(dir);
      return -1;
    }
    int next = open_beneath(dir, p, O_RDONLY | O_DIRECTORY, 0);
    close(dir);
    dir = next;
    *slash = '/';
  }
  *leaf = p;
  return dir;
}

/* Answers a part read: at most MAX bytes of FD (a regular file, ST)
   from OFFSET, and the file's size, so that the reader knows when it has
   all of it.  */
static void
read_part(int fd, const struct stat *st, uint64_t offset, uint64_t max, struct fbuf *out)
{
  uint64_t size = (uint64_t)st->st_size;
  size_t want = offset >= size ? 0 : (size - offset < max ? (size_t)(size - offset) : (size_t)max);
  size_t got = 0;
  cleanup_free uint8_t *data = xmalloc(want + 1);
  while (got < want) {
    ssize_t r = pread(fd, data + got, want - got, (off_t)(offset + got));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      cleanup_free char *msg = xasprintf("cannot read: %s", strerror(errno));
      result(out, errno, msg);
      return;
    }
    if (r == 0)
      break;
    got += (size_t)r;
  }
  result(out, 0, NULL);
  fbuf_put(out, TAG_DATA, data, got);
  fbuf_put_u64(out, TAG_SIZE, size);
}

void
files_serve(const struct frame *f, const struct kiln_limits *lim, struct fbuf *out)
{
  cleanup_free char *path = NULL;
  size_t plen = 0;
  const struct field *pf = frame_get(f, TAG_PATH);
  if (pf == NULL || !rec_path_ok((const char *)pf->data, pf->len, f->type == FRAME_FILE_LIST)) {
    result(out, EINVAL, "the path must be relative to /work, without '..', '.' or empty parts");
    return;
  }
  path = xstrndup((const char *)pf->data, pf->len);
  plen = pf->len;
  cleanup_close int root = open(WORK, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) {
    fail(out, errno, "open", WORK);
    return;
  }
  if (f->type == FRAME_FILE_LIST) {
    cleanup_close int dir = plen ? open_beneath(root, path, O_RDONLY | O_DIRECTORY, 0)
                                 : open(WORK, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
      fail(out, errno, "cannot list", path);
      return;
    }
    struct listing l = { .lim = lim };
    list_dir(dir, path, 0, &l);
    result(out, 0, NULL);
    fbuf_put(out, TAG_LISTING, l.b.data, l.b.len);
    if (l.truncated)
      fbuf_put_u64(out, TAG_TRUNCATED, 1);
    buf_free(&l.b);
    return;
  }
  uint64_t offset = 0;
  bool at = frame_get(f, TAG_OFFSET) != NULL;
  kiln_error_t ferr = NULL;
  if (frame_get_u64(f, TAG_OFFSET, true, &offset, &ferr) < 0) {
    result(out, EINVAL, ferr->msg);
    kiln_error_release(&ferr);
    return;
  }
  if (f->type == FRAME_FILE_READ) {
    uint64_t max = 0;
    if (frame_get_u64(f, TAG_MAX_BYTES, true, &max, &ferr) < 0) {
      result(out, EINVAL, ferr->msg);
      kiln_error_release(&ferr);
      return;
    }
    if (max == 0 || max > lim->file_bytes)
      max = lim->file_bytes;
    /* O_NONBLOCK: a FIFO planted by a cell must not hang the read.  */
    cleanup_close int fd = open_beneath(root, path, O_RDONLY | O_NONBLOCK, 0);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
      fail(out, errno, "cannot open", path);
      return;
    }
    if (!S_ISREG(st.st_mode)) {
      fail(out, EINVAL, "not a regular file", path);
      return;
    }
    if (at) {
      read_part(fd, &st, offset, max, out);
      return;
    }
    if ((uint64_t)st.st_size > max) {
      cleanup_free char *msg = xasprintf("'%s' is %lld bytes, over the %llu-byte limit for reading",
                                         path, (long long)st.st_size, (unsigned long long)max);
      result(out, EFBIG, msg);
      return;
    }
    /* Read at most the size fstat gave: a file growing meanwhile cannot
       make the reply bigger.  */
    size_t want = (size_t)st.st_size, got = 0;
    cleanup_free uint8_t *data = xmalloc(want + 1);
    while (got < want) {
      ssize_t r = read(fd, data + got, want - got);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      got += (size_t)r;
    }
    result(out, 0, NULL);
    fbuf_put(out, TAG_DATA, data, got);
    return;
  }
  if (f->type == FRAME_FILE_MKDIR) {
    const char *leaf;
    cleanup_close int dir = parent_dir(root, path, &leaf);
    if (dir < 0 || (mkdirat(dir, leaf, 0755) < 0 && errno != EEXIST)) {
      fail(out, errno, "cannot create the directory", path);
      return;
    }
    /* What is already there must be a directory itself, not a symlink
       to one.  */
    cleanup_close int made = open_beneath(dir, leaf, O_RDONLY | O_DIRECTORY, 0);
    if (made < 0) {
      fail(out, errno, "cannot create the directory", path);
      return;
    }
    result(out, 0, NULL);
    return;
  }
  if (f->type == FRAME_FILE_WRITE) {
    const struct field *df = frame_get(f, TAG_DATA);
    const char *leaf;
    cleanup_close int dir = parent_dir(root, path, &leaf);
    if (dir < 0) {
      fail(out, errno, "cannot create the directories of", path);
      return;
    }
    /* With an offset the file is one written in parts: it must exist
       already, and what the earlier parts wrote stays.  */
    int flags = at ? O_WRONLY | O_NONBLOCK : O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK;
    cleanup_close int fd = open_beneath(dir, leaf, flags, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
      fail(out, errno, "cannot write", path);
      return;
    }
    if (!S_ISREG(st.st_mode)) {
      fail(out, EINVAL, "not a regular file", path);
      return;
    }
    if (offset > (uint64_t)INT64_MAX || (at && lseek(fd, (off_t)offset, SEEK_SET) < 0)) {
      fail(out, offset > (uint64_t)INT64_MAX ? EINVAL : errno, "cannot write", path);
      return;
    }
    if (df && df->len && write_full(fd, df->data, df->len) < 0) {
      fail(out, errno, "cannot write", path);
      return;
    }
    result(out, 0, NULL);
    return;
  }
  result(out, EINVAL, "unknown file request");
}
