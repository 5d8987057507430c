#define _GNU_SOURCE
#include "mounts.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Top-level system trees: bound read-only when they are directories,
   recreated when they are symlinks (merged /usr).  */
static const char *const system_trees[]
    = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32" };

/* What /etc contributes: loader cache, time zone, fonts, certificates and
   Debian's alternatives (many /usr/bin names are symlinks through it).  */
static const char *const etc_entries[] = {
  "/etc/ld.so.cache",     "/etc/localtime",    "/etc/fonts",         "/etc/ssl",
  "/etc/ca-certificates", "/etc/alternatives", "/etc/nsswitch.conf", "/etc/mime.types",
};

static int
mkdir_in(const char *root, const char *path, mode_t mode, kiln_error_t *err)
{
  cleanup_free char *full = xasprintf("%s%s", root, path);
  if (mkdir_p(full, mode) < 0)
    return kiln_error_make(err, errno, "mkdir %s", full);
  return 0;
}

/* The mount flags a read-only remount must keep: in a user namespace the
   kernel refuses to clear flags that were locked on the original.  */
static unsigned long
kept_flags(const char *path)
{
  struct statvfs st;
  unsigned long f = 0;
  if (statvfs(path, &st) < 0)
    return MS_NOSUID | MS_NODEV;
  if (st.f_flag & ST_NOSUID)
    f |= MS_NOSUID;
  if (st.f_flag & ST_NODEV)
    f |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC)
    f |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME)
    f |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME)
    f |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME)
    f |= MS_RELATIME;
  return f | MS_NOSUID | MS_NODEV;
}

/* Remounts read-only every mount strictly below DST, from mountinfo.  */
static int
remount_submounts_ro(const char *dst, kiln_error_t *err)
{
  FILE *fp = fopen("/proc/self/mountinfo", "re");
  if (fp == NULL)
    return kiln_error_make(err, errno, "open /proc/self/mountinfo");
  size_t dl = strlen(dst);
  char *line = NULL;
  size_t cap = 0;
  int ret = 0;
  while (ret == 0 && getline(&line, &cap, fp) > 0) {
    /* id parent major:minor root mount-point ...  (octal escapes in the
       mount point are left as they are: such a mount point is skipped,
       as it cannot be one of kiln's own). */
    char mp[PATH_MAX];
    if (sscanf(line, "%*d %*d %*s %*s %4095s", mp) != 1)
      continue;
    if (strncmp(mp, dst, dl) != 0 || mp[dl] != '/')
      continue;
    if (mount(NULL, mp, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(mp), NULL) < 0)
      ret = kiln_error_make(err, errno, "remount %s read-only", mp);
  }
  free(line);
  fclose(fp);
  return ret;
}

/* Binds host SRC read-only at ROOT+SRC, creating the mount point (a
   directory or an empty file, like SRC).  A missing SRC is skipped.  */
static int
bind_ro(const char *root, const char *src, kiln_error_t *err)
{
  struct stat st;
  if (stat(src, &st) < 0)
    return 0;
  cleanup_free char *dst = xasprintf("%s%s", root, src);
  if (S_ISDIR(st.st_mode)) {
    if (mkdir_p(dst, 0755) < 0)
      return kiln_error_make(err, errno, "mkdir %s", dst);
  } else {
    cleanup_free char *parent = xstrdup(src);
    *strrchr(parent, '/') = '\0';
    if (parent[0] && mkdir_in(root, parent, 0755, err) < 0)
      return -1;
    int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0444);
    if (fd < 0)
      return kiln_error_make(err, errno, "create %s", dst);
    close(fd);
  }
  if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
    return kiln_error_make(err, errno, "bind %s", src);
  if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(src), NULL) < 0)
    return kiln_error_make(err, errno, "remount %s read-only", src);
  /* A remount applies to one mount, not to those beneath it: a separate
     filesystem under /usr (or anything mounted below a bound tree) would
     stay writable.  Make the whole subtree read-only, as bubblewrap does
     for each submount; mount_setattr (Linux 5.12) does it in one call,
     older kernels walk mountinfo.  */
  struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
  if (syscall(SYS_mount_setattr, AT_FDCWD, dst, AT_RECURSIVE, &attr, sizeof attr) == 0)
    return 0;
  if (errno != ENOSYS)
    return kiln_error_make(err, errno, "make the mounts under %s read-only", src);
  return remount_submounts_ro(dst, err);
}

/* Files of the fresh /proc that still describe the host (its boot, its
   disks, its devices, its kernel's command line) are masked as container
   runtimes mask them (runc's maskedPaths): /dev/null over files, an
   empty read-only tmpfs over directories.  A path this kernel does not
   have is skipped.  */
static int
mask_proc(const char *root, kiln_error_t *err)
{
  static const char *const files[] = {
    "/proc/cmdline",       "/proc/sys/kernel/random/boot_id",
    "/proc/diskstats",     "/proc/interrupts",
    "/proc/partitions",    "/proc/kcore",
    "/proc/keys",          "/proc/key-users",
    "/proc/latency_stats", "/proc/timer_list",
    "/proc/sched_debug",   "/proc/kallsyms",
    "/proc/modules",       "/proc/softirqs",
    "/proc/sysrq-trigger",
  };
  static const char *const dirs[] = { "/proc/acpi", "/proc/asound", "/proc/scsi", "/proc/bus",
                                      "/proc/irq",  "/proc/driver", "/proc/tty" };
  cleanup_free char *null = xasprintf("%s/dev/null", root);
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    cleanup_free char *dst = xasprintf("%s%s", root, files[i]);
    if (access(dst, F_OK) < 0)
      continue;
    if (mount(null, dst, NULL, MS_BIND, NULL) < 0)
      return kiln_error_make(err, errno, "mask %s", files[i]);
  }
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    cleanup_free char *dst = xasprintf("%s%s", root, dirs[i]);
    if (access(dst, F_OK) < 0)
      continue;
    if (mount("tmpfs", dst, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0") < 0)
      return kiln_error_make(err, errno, "mask %s", dirs[i]);
  }
  return 0;
}

static int
mount_tmpfs(const char *root, const char *path, const char *opts, kiln_error_t *err)
{
  cleanup_free char *dst = xasprintf("%s%s", root, path);
  if (mkdir_p(dst, 0755) < 0)
    return kiln_error_make(err, errno, "mkdir %s", dst);
  if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
    return kiln_error_make(err, errno, "mount tmpfs on %s (%s)", path, opts);
  return 0;
}

static int
write_in(const char *root, const char *path, const char *text, kiln_error_t *err)
{
  cleanup_free char *full = xasprintf("%s%s", root, path);
  cleanup_close int fd = open(full, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0 || write_full(fd, text, strlen(text)) < 0)
    return kiln_error_make(err, errno, "write %s", full);
  return 0;
}

/* /dev with only null, zero, full, random and urandom: bound from the
   host (mknod is not allowed in a user namespace, and binding needs no
   CAP_MKNOD either way).  */
static int
build_dev(const char *root, size_t shm_size, kiln_error_t *err)
{
  static const char *const devices[] = { "null", "zero", "full", "random", "urandom" };
  if (mount_tmpfs(root, "/dev", "size=64k,mode=0755", err) < 0)
    return -1;
  for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
    cleanup_free char *src = xasprintf("/dev/%s", devices[i]);
    cleanup_free char *dst = xasprintf("%s/dev/%s", root, devices[i]);
    int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0)
      return kiln_error_make(err, errno, "create %s", dst);
    close(fd);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
      return kiln_error_make(err, errno, "bind %s", src);
  }
  static const char *const links[][2] = {
    { "/proc/self/fd", "fd" },
    { "/proc/self/fd/0", "stdin" },
    { "/proc/self/fd/1", "stdout" },
    { "/proc/self/fd/2", "stderr" },
  };
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    cleanup_free char *dst = xasprintf("%s/dev/%s", root, links[i][1]);
    if (symlink(links[i][0], dst) < 0)
      return kiln_error_make(err, errno, "symlink %s", dst);
  }
  cleanup_free char *shm = xasprintf("size=%zu,mode=1777", shm_size);
  if (mount_tmpfs(root, "/dev/shm", shm, err) < 0)
    return -1;
  /* Nothing may be added to /dev (in a user namespace the sandbox's uid
     owns this tmpfs): read-only, its devices and /dev/shm still work.  */
  cleanup_free char *dev = xasprintf("%s/dev", root);
  if (mount(NULL, dev, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
      < 0)
    return kiln_error_make(err, errno, "remount /dev read-only");
  return 0;
}

/* Binds host directory SRC at PACKAGES_PATH: read-only for a worker,
   which sees files appear there as they are installed (the same
   directory, not a copy); writable for the installer, whose target it
   is.  Never executable as a set-id or device tree either way.  */
static int
bind_packages(const char *root, const char *src, bool rw, kiln_error_t *err)
{
  cleanup_free char *dst = xasprintf("%s" PACKAGES_PATH, root);
  if (mkdir_p(dst, 0755) < 0)
    return kiln_error_make(err, errno, "mkdir %s", dst);
  if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
    return kiln_error_make(err, errno, "bind %s", src);
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | kept_flags(src);
  if (!rw)
    flags |= MS_RDONLY;
  if (mount(NULL, dst, NULL, flags, NULL) < 0)
    return kiln_error_make(err, errno, "remount %s", dst);
  return 0;
}

static bool
covered(const char *path, const char *const *trees, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(trees[i]);
    if (strncmp(path, trees[i], l) == 0 && (path[l] == '/' || path[l] == '\0'))
      return true;
  }
  return false;
}

bool
mnt_system_path(const char *path)
{
  return covered(path, system_trees, sizeof system_trees / sizeof system_trees[0]);
}

int
mnt_build_root(const struct mnt_plan *p, kiln_error_t *err)
{
  const char *root = p->root_dir;

  /* Nothing mounted from here on may propagate back to the host.  */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return kiln_error_make(err, errno, "make / private");
  if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0)
    return kiln_error_make(err, errno, "mount the new root on %s", root);

  /* The writable areas first: a host tree that happens to live under
     /work or /tmp on this host (a checkout in /tmp, say) is then mounted
     on top of them instead of being hidden by them.  */
  cleanup_free char *work = xasprintf("size=%zu,mode=0700,uid=%u,gid=%u", p->work_size,
                                      (unsigned)p->uid, (unsigned)p->gid);
  cleanup_free char *tmp = xasprintf("size=%zu,mode=1777", p->tmp_size);
  if (mount_tmpfs(root, "/work", work, err) < 0 || mount_tmpfs(root, "/tmp", tmp, err) < 0
      || build_dev(root, p->tmp_size, err) < 0)
    return -1;
  if (mkdir_in(root, "/proc", 0555, err) < 0)
    return -1;
  cleanup_free char *proc = xasprintf("%s/proc", root);
  /* A fresh /proc shows only this pid namespace.  */
  if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
    /* The kernel mounts a new /proc in a user namespace only where a
       whole one is visible; container engines hide parts of theirs.  */
    if (errno == EPERM)
      return kiln_error_make(err, errno,
                             "mount /proc (in a container, the engine hides parts of /proc: run "
                             "it with --security-opt systempaths=unconfined, or in Kubernetes "
                             "with securityContext.procMount: Unmasked; see docker/README.md)");
    return kiln_error_make(err, errno, "mount /proc");
  }
  if (mask_proc(root, err) < 0)
    return -1;

  for (size_t i = 0; i < sizeof system_trees / sizeof system_trees[0]; i++) {
    const char *t = system_trees[i];
    struct stat st;
    if (lstat(t, &st) < 0)
      continue;
    if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = readlink(t, target, sizeof target - 1);
      if (n < 0)
        return kiln_error_make(err, errno, "readlink %s", t);
      target[n] = '\0';
      cleanup_free char *dst = xasprintf("%s%s", root, t);
      if (symlink(target, dst) < 0)
        return kiln_error_make(err, errno, "symlink %s", dst);
    } else if (bind_ro(root, t, err) < 0)
      return -1;
  }

  if (mkdir_in(root, "/etc", 0755, err) < 0)
    return -1;
  for (size_t i = 0; i < sizeof etc_entries / sizeof etc_entries[0]; i++)
    if (bind_ro(root, etc_entries[i], err) < 0)
      return -1;
  char text[512];
  snprintf(text, sizeof text,
           "root:x:0:0:root:/root:/usr/sbin/nologin\n"
           "sandbox:x:%u:%u:kiln sandbox:/work:/bin/sh\n"
           "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
           (unsigned)p->uid, (unsigned)p->gid);
  if (write_in(root, "/etc/passwd", text, err) < 0)
    return -1;
  snprintf(text, sizeof text, "root:x:0:\nsandbox:x:%u:\nnogroup:x:65534:\n", (unsigned)p->gid);
  if (write_in(root, "/etc/group", text, err) < 0)
    return -1;
  snprintf(text, sizeof text, "%s\n", p->hostname);
  if (write_in(root, "/etc/hostname", text, err) < 0)
    return -1;
  snprintf(text, sizeof text, "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost\n",
           p->hostname);
  if (write_in(root, "/etc/hosts", text, err) < 0)
    return -1;

  /* Python's prefix, the venv and kiln's runtime, at the paths the zygote
     imported them from.  */
  for (size_t i = 0; i < p->nexpose; i++)
    if (!mnt_system_path(p->expose[i]) && bind_ro(root, p->expose[i], err) < 0)
      return -1;

  if (p->packages_dir && bind_packages(root, p->packages_dir, p->packages_rw, err) < 0)
    return -1;

  /* pivot_root with the new and old roots stacked on the same directory,
     then detach the old one: no path leads back to the host.  */
  if (chdir(root) < 0)
    return kiln_error_make(err, errno, "chdir %s", root);
  if (syscall(SYS_pivot_root, ".", ".") < 0)
    return kiln_error_make(err, errno, "pivot_root");
  if (umount2(".", MNT_DETACH) < 0)
    return kiln_error_make(err, errno, "detach the old root");
  if (chdir("/") < 0)
    return kiln_error_make(err, errno, "chdir /");
  /* The root itself (its directories and /etc files) is read-only too.  */
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
    return kiln_error_make(err, errno, "remount / read-only");
  if (chdir("/work") < 0)
    return kiln_error_make(err, errno, "chdir /work");
  return 0;
}
