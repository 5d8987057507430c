#define _GNU_SOURCE
#include "cgroups.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const v1_controllers[3] = { "memory", "pids", "cpu" };

static int
write_file(const char *dir, const char *file, const char *value, kiln_error_t *err)
{
  cleanup_free char *path = xasprintf("%s/%s", dir, file);
  cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_make(err, errno, "open %s", path);
  if (write(fd, value, strlen(value)) < 0)
    return kiln_error_make(err, errno, "write %s to %s", value, path);
  return 0;
}

static char *
read_small(const char *path)
{
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  if (n < 0)
    return NULL;
  buf[n] = '\0';
  return xstrdup(buf);
}

/* The front's own group in the hierarchy that has CONTROLLER (v1), or in
   the unified one (CONTROLLER == NULL), from /proc/self/cgroup.  */
static char *
own_group(const char *controller)
{
  cleanup_free char *text = read_small("/proc/self/cgroup");
  if (text == NULL)
    return NULL;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL)
      continue;
    *c2 = '\0';
    const char *ctrls = c1 + 1, *path = c2 + 1;
    if (controller == NULL ? strcmp(line, "0") == 0 && ctrls[0] == '\0' : false)
      return xstrdup(path);
    if (controller != NULL) {
      char *list = xstrdup(ctrls), *s2 = NULL;
      bool hit = false;
      for (char *c = strtok_r(list, ",", &s2); c; c = strtok_r(NULL, ",", &s2))
        hit |= strcmp(c, controller) == 0;
      free(list);
      if (hit)
        return xstrdup(path);
    }
  }
  return NULL;
}

static bool
writable_dir(const char *dir)
{
  return access(dir, W_OK) == 0;
}

/* Whether process PID exists.  A group whose kiln is gone is nobody's;
   one whose pid now belongs to another process is left alone (a reused
   pid cannot be told from a renamed kiln), so only the dead are reaped.  */
static bool
pid_alive(long pid)
{
  return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH);
}

/* Removes group DIR and the session groups in it, killing what is left
   in them (processes of a kiln that died without cleaning up).  */
static void
remove_tree(const char *dir)
{
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      if (de->d_type != DT_DIR || de->d_name[0] == '.')
        continue;
      cleanup_free char *sub = xasprintf("%s/%s", dir, de->d_name);
      for (int i = 0; i < 50 && rmdir(sub) < 0 && errno == EBUSY; i++) {
        cleanup_free char *procs = xasprintf("%s/cgroup.procs", sub);
        FILE *fp = fopen(procs, "re");
        long pid;
        while (fp && fscanf(fp, "%ld", &pid) == 1)
          kill((pid_t)pid, SIGKILL);
        if (fp)
          fclose(fp);
        usleep(10000);
      }
    }
    closedir(d);
  }
  rmdir(dir);
}

/* Removes the kiln-<pid> groups under PARENT whose kiln is gone.  */
static void
reap_stale(const char *parent)
{
  DIR *d = opendir(parent);
  if (d == NULL)
    return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    char *end;
    if (strncmp(de->d_name, "kiln-", 5) != 0)
      continue;
    long pid = strtol(de->d_name + 5, &end, 10);
    if (*end != '\0' || pid == (long)getpid() || pid_alive(pid))
      continue;
    cleanup_free char *dir = xasprintf("%s/%s", parent, de->d_name);
    remove_tree(dir);
  }
  closedir(d);
}

void
cg_host_probe(struct cg_host *h, const char *tag)
{
  memset(h, 0, sizeof *h);
  /* A pure v2 host: controllers live in the unified hierarchy.  Sessions
     go in a child of the front's group, which needs the controllers
     enabled for its children.  */
  cleanup_free char *ctrls = read_small("/sys/fs/cgroup/cgroup.controllers");
  if (ctrls && strstr(ctrls, "memory") && strstr(ctrls, "pids")) {
    cleanup_free char *own = own_group(NULL);
    if (own) {
      cleanup_free char *base = xasprintf("/sys/fs/cgroup%s", strcmp(own, "/") == 0 ? "" : own);
      reap_stale(base);
      char *parent = xasprintf("%s/%s", base, tag);
      if (mkdir(parent, 0755) == 0 || errno == EEXIST) {
        kiln_error_t e = NULL;
        if (write_file(parent, "cgroup.subtree_control", "+memory +pids +cpu", &e) == 0
            || write_file(parent, "cgroup.subtree_control", "+memory +pids", NULL) == 0) {
          h->version = 2;
          h->dirs[0] = parent;
          kiln_error_release(&e);
          return;
        }
        h->why
            = xasprintf("cgroup v2: cannot enable controllers in %s: %s", parent, e ? e->msg : "?");
        kiln_error_release(&e);
        rmdir(parent);
        free(parent);
        return;
      }
      h->why = xasprintf("cgroup v2: cannot create %s: %s", parent, strerror(errno));
      free(parent);
      return;
    }
  }
  /* v1: each controller has its own hierarchy.  memory and pids are
     required; cpu is used when present.  */
  for (int i = 0; i < 3; i++) {
    cleanup_free char *own = own_group(v1_controllers[i]);
    if (own == NULL)
      continue;
    cleanup_free char *base
        = xasprintf("/sys/fs/cgroup/%s%s", v1_controllers[i], strcmp(own, "/") == 0 ? "" : own);
    reap_stale(base);
    char *dir = xasprintf("%s/%s", base, tag);
    if ((mkdir(dir, 0755) == 0 || errno == EEXIST) && writable_dir(dir))
      h->dirs[i] = dir;
    else
      free(dir);
  }
  if (h->dirs[0] && h->dirs[1]) {
    h->version = 1;
    /* Inside the kiln group, children count towards its limits.  */
    write_file(h->dirs[0], "memory.use_hierarchy", "1", NULL);
    return;
  }
  h->why = xstrdup(
      ctrls ? "cgroup v2 without the memory and pids controllers, and no writable v1 memory and "
              "pids hierarchies"
            : "no writable memory and pids cgroup hierarchies (not root, or cgroups not mounted)");
  for (int i = 0; i < 3; i++) {
    if (h->dirs[i])
      rmdir(h->dirs[i]);
    free(h->dirs[i]);
    h->dirs[i] = NULL;
  }
}

void
cg_host_free(struct cg_host *h)
{
  for (int i = 0; i < 3; i++) {
    if (h->dirs[i])
      rmdir(h->dirs[i]);
    free(h->dirs[i]);
  }
  free(h->why);
  memset(h, 0, sizeof *h);
}

char *
cg_host_describe(const struct cg_host *h, const struct cg_limits *l)
{
  if (h->version == 0)
    return xasprintf("unavailable (%s)", h->why ? h->why : "unknown");
  return xasprintf(
      "cgroup v%d (memory %zu MiB, %u processes%s)", h->version, l->memory >> 20, l->pids,
      (h->version == 1 ? h->dirs[2] != NULL : true) && l->cpus > 0 ? ", cpu quota" : "");
}

static char *
session_dir(const struct cg_host *h, int i, const char *id)
{
  return h->dirs[i] ? xasprintf("%s/%s", h->dirs[i], id) : NULL;
}

static int
apply_limits(const struct cg_host *h, const char *id, const struct cg_limits *l, kiln_error_t *err)
{
  char v[64];
  if (h->version == 2) {
    cleanup_free char *d = session_dir(h, 0, id);
    snprintf(v, sizeof v, "%zu", l->memory);
    if (write_file(d, "memory.max", v, err) < 0)
      return -1;
    /* No swap: a session over its memory is stopped, not slowed down.  */
    write_file(d, "memory.swap.max", "0", NULL);
    snprintf(v, sizeof v, "%u", l->pids);
    if (write_file(d, "pids.max", v, err) < 0)
      return -1;
    if (l->cpus > 0) {
      snprintf(v, sizeof v, "%ld 100000", (long)(l->cpus * 100000));
      write_file(d, "cpu.max", v, NULL);
    }
    return 0;
  }
  cleanup_free char *mem = session_dir(h, 0, id);
  cleanup_free char *pids = session_dir(h, 1, id);
  cleanup_free char *cpu = session_dir(h, 2, id);
  snprintf(v, sizeof v, "%zu", l->memory);
  if (write_file(mem, "memory.limit_in_bytes", v, err) < 0)
    return -1;
  write_file(mem, "memory.memsw.limit_in_bytes", v, NULL);
  snprintf(v, sizeof v, "%u", l->pids);
  if (write_file(pids, "pids.max", v, err) < 0)
    return -1;
  if (cpu && l->cpus > 0) {
    write_file(cpu, "cpu.cfs_period_us", "100000", NULL);
    snprintf(v, sizeof v, "%ld", (long)(l->cpus * 100000));
    write_file(cpu, "cpu.cfs_quota_us", v, NULL);
  }
  return 0;
}

int
cg_session_create(const struct cg_host *h, const char *id, const struct cg_limits *l,
                  kiln_error_t *err)
{
  if (h->version == 0)
    return 0;
  for (int i = 0; i < (h->version == 2 ? 1 : 3); i++) {
    cleanup_free char *d = session_dir(h, i, id);
    if (d && mkdir(d, 0755) < 0 && errno != EEXIST)
      return kiln_error_make(err, errno, "mkdir %s", d);
  }
  if (apply_limits(h, id, l, err) < 0) {
    cg_session_remove(h, id);
    return -1;
  }
  return 0;
}

int
cg_session_join(const struct cg_host *h, const char *id, pid_t pid, kiln_error_t *err)
{
  char v[32];
  snprintf(v, sizeof v, "%d", (int)pid);
  for (int i = 0; i < (h->version == 2 ? 1 : h->version == 1 ? 3 : 0); i++) {
    cleanup_free char *d = session_dir(h, i, id);
    if (d && write_file(d, "cgroup.procs", v, err) < 0)
      return -1;
  }
  return 0;
}

/* The number after KEY in a "key value" file, or 0.  */
/* KEY's value in TEXT, lines of "key value" (0 when absent).  */
static long
keyed(const char *text, const char *key)
{
  size_t k = strlen(key);
  for (const char *line = text; line && *line;
       line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
    if (strncmp(line, key, k) == 0 && line[k] == ' ')
      return strtol(line + k + 1, NULL, 10);
  return 0;
}

/* KEY's value in the counter file open at FD, read afresh.  */
static long
counter_at(int fd, const char *key)
{
  char buf[4096];
  ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  return keyed(buf, key);
}

/* The files cg_session_events reads: its memory events, its pids
   events.  */
static void
event_files(const struct cg_host *h, const char *id, char **mem, char **pids)
{
  cleanup_free char *md = session_dir(h, 0, id);
  cleanup_free char *pd = session_dir(h, h->version == 2 ? 0 : 1, id);
  /* v1 has oom_kill in memory.oom_control since Linux 4.13.  */
  *mem = xasprintf("%s/%s", md, h->version == 2 ? "memory.events" : "memory.oom_control");
  *pids = xasprintf("%s/pids.events", pd);
}

int
cg_session_event_fds(const struct cg_host *h, const char *id, int fds[2])
{
  fds[0] = fds[1] = -1;
  if (h->version == 0)
    return -1;
  cleanup_free char *mem = NULL, *pids = NULL;
  event_files(h, id, &mem, &pids);
  fds[0] = open(mem, O_RDONLY | O_CLOEXEC);
  fds[1] = open(pids, O_RDONLY | O_CLOEXEC);
  if (fds[0] >= 0 && fds[1] >= 0)
    return 0;
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  fds[0] = fds[1] = -1;
  return -1;
}

void
cg_events_at(const int fds[2], uint64_t *oom_kills, bool *pids)
{
  long kills = counter_at(fds[0], "oom_kill");
  *oom_kills = kills > 0 ? (uint64_t)kills : 0;
  *pids = counter_at(fds[1], "max") > 0;
}

void
cg_session_events(const struct cg_host *h, const char *id, uint64_t *oom_kills, bool *pids)
{
  *oom_kills = 0;
  *pids = false;
  if (h->version == 0)
    return;
  cleanup_free char *mem = NULL, *pd = NULL;
  event_files(h, id, &mem, &pd);
  cleanup_free char *mtext = read_small(mem), *ptext = read_small(pd);
  long kills = mtext ? keyed(mtext, "oom_kill") : 0;
  *oom_kills = kills > 0 ? (uint64_t)kills : 0;
  *pids = ptext && keyed(ptext, "max") > 0;
}

int
cg_session_remove(const struct cg_host *h, const char *id)
{
  int busy = 0;
  for (int i = 0; i < (h->version == 2 ? 1 : h->version == 1 ? 3 : 0); i++) {
    cleanup_free char *d = session_dir(h, i, id);
    if (d == NULL || rmdir(d) == 0 || errno != EBUSY)
      continue;
    /* Anything still inside is killed: nothing a cell started outlives
       its session.  Killed tasks leave asynchronously, so the caller
       tries again later.  */
    busy = -1;
    cleanup_free char *procs = xasprintf("%s/cgroup.procs", d);
    cleanup_free char *text = read_small(procs);
    for (char *p = text; p && *p;) {
      long pid = strtol(p, &p, 10);
      if (pid > 0)
        kill((pid_t)pid, SIGKILL);
      while (*p == '\n')
        p++;
    }
  }
  return busy;
}

void
cg_forget(const struct cg_host *h, struct cg_graveyard *g, const char *id)
{
  if (cg_session_remove(h, id) == 0)
    return;
  g->ids = xrealloc(g->ids, (g->n + 1) * sizeof *g->ids);
  g->ids[g->n++] = xstrdup(id);
}

void
cg_graveyard_retry(const struct cg_host *h, struct cg_graveyard *g)
{
  for (size_t i = 0; i < g->n;) {
    if (cg_session_remove(h, g->ids[i]) == 0) {
      free(g->ids[i]);
      g->ids[i] = g->ids[--g->n];
    } else
      i++;
  }
}

void
cg_graveyard_free(struct cg_graveyard *g)
{
  for (size_t i = 0; i < g->n; i++)
    free(g->ids[i]);
  free(g->ids);
  g->ids = NULL;
  g->n = 0;
}
