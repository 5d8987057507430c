/* install_packages: wheels installed for one session without giving its
   cells the network.

   The front checks each requirement (a name, extras and version
   specifiers; nothing pip could take for an option, a URL or a path)
   and the allowlist, then runs `kiln __install` (kernel/pkg/installer.c:
   pip in a jail of its own, the package index its only destination)
   into a fresh staging directory.  One install runs at a time; the rest
   wait in order.  What pip installed is checked again (every
   distribution, dependencies included, must be allowed and within
   --max-package-size), made the front's own, and hard-linked into the
   session's packages directory, which its jail binds read-only at
   PACKAGES_PATH: nothing is copied, and the files appear in the running
   session.  The next cell puts the directory on sys.path.

   An install whose every requirement is pinned (name==version) is kept
   in KILN_HOME/packages/cache under a digest of the pins, the platform,
   Python's version and the index: another session asking for the same
   gets links to the same files without running pip.  */
#define _GNU_SOURCE
#include "installer.h"
#include "internal.h"
#include "log.h"
#include "mounts.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SPECS 32
#define MAX_SPEC_LEN 200
#define LOG_KEEP (64u << 10) /* of pip's output: the end, where its errors are */
#define NOBODY 65534

struct install {
  struct install *next;
  int64_t handle;
  char session_id[40];
  char **specs;
  size_t nspecs;
  bool cacheable;
  char key[65]; /* hex digest, when cacheable */
  front_install_cb cb;
  void *ctx;
  int64_t started_ns;
  char *staging;
};

/* ---- requirements ---- */

static bool
name_char(char c)
{
  return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

/* NAME (LEN bytes) normalised as PEP 503 says: lower case, each run of
   - _ . one -.  */
static char *
normalise(const char *name, size_t len)
{
  char *out = xmalloc(len + 1);
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (c == '-' || c == '_' || c == '.') {
      if (o == 0 || out[o - 1] != '-')
        out[o++] = '-';
    } else
      out[o++] = (char)tolower((unsigned char)c);
  }
  out[o] = '\0';
  return out;
}

/* Checks SPEC: NAME[EXTRAS][SPECIFIERS], specifiers as OP VERSION joined
   by commas.  Sets *NAME (normalised, allocated) and *PINNED (exactly one
   == of a version without a wildcard).  -1 with ERR saying what is
   wrong.  */
static int
parse_spec(const char *spec, char **name, bool *pinned, kiln_error_t *err)
{
  size_t len = strlen(spec);
  const char *p = spec;
  if (len == 0 || len > MAX_SPEC_LEN)
    return kiln_error_make(err, 0, "a requirement must be 1 to %d characters", MAX_SPEC_LEN);
  if (!isalnum((unsigned char)*p))
    return kiln_error_make(err, 0,
                           "'%s' is not a requirement: give name==version (no options, URLs or "
                           "paths)",
                           spec);
  while (name_char(*p))
    p++;
  if (!isalnum((unsigned char)p[-1]))
    return kiln_error_make(err, 0, "'%s': a project name ends with a letter or digit", spec);
  size_t nlen = (size_t)(p - spec);
  if (*p == '[') {
    const char *close = strchr(p, ']');
    if (close == NULL)
      return kiln_error_make(err, 0, "'%s': unclosed [extras]", spec);
    for (const char *q = p + 1; q < close; q++)
      if (!name_char(*q) && *q != ',')
        return kiln_error_make(err, 0, "'%s': extras are names separated by commas", spec);
    p = close + 1;
  }
  int nclauses = 0;
  bool eq = false, wild = false;
  while (*p) {
    static const char *const ops[] = { "===", "==", "!=", "<=", ">=", "~=", "<", ">" };
    size_t oplen = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0] && !oplen; i++)
      if (strncmp(p, ops[i], strlen(ops[i])) == 0) {
        oplen = strlen(ops[i]);
        eq = strcmp(ops[i], "==") == 0;
      }
    if (oplen == 0)
      return kiln_error_make(err, 0,
                             "'%s': expected a version specifier (==, >=, <=, ~=, !=, <, >) "
                             "after the name",
                             spec);
    p += oplen;
    const char *v = p;
    while (isalnum((unsigned char)*p) || (*p && strchr(".*+!_-", *p) != NULL))
      if (*p++ == '*')
        wild = true;
    if (p == v)
      return kiln_error_make(err, 0, "'%s': a specifier needs a version", spec);
    nclauses++;
    if (*p == ',')
      p++;
    else if (*p)
      return kiln_error_make(err, 0, "'%s': unexpected '%c' (markers, URLs and spaces are not "
                                     "taken)",
                             spec, *p);
  }
  *pinned = nclauses == 1 && eq && !wild;
  *name = normalise(spec, nlen);
  return 0;
}

/* ---- the allowlist ---- */

static void
allow_add(struct install_link *l, const char *name, size_t len)
{
  while (len && isspace((unsigned char)*name))
    name++, len--;
  while (len && isspace((unsigned char)name[len - 1]))
    len--;
  if (len == 0)
    return;
  if (len == 1 && name[0] == '*') {
    l->allow_all = true;
    return;
  }
  l->allow = xrealloc(l->allow, (l->nallow + 1) * sizeof *l->allow);
  l->allow[l->nallow++] = normalise(name, len);
}

/* Reads --allow-packages: "*", names separated by commas, or a file.  */
static int
allow_load(struct front *f, kiln_error_t *err)
{
  struct install_link *l = &f->install;
  if (l->allow_loaded)
    return 0;
  const char *v = f->cfg->packages.allow ? f->cfg->packages.allow : "*";
  if (strchr(v, '/') != NULL) {
    FILE *fp = fopen(v, "re");
    if (fp == NULL)
      return kiln_error_make(err, errno, "--allow-packages: cannot read %s", v);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) > 0) {
      char *hash = strchr(line, '#');
      if (hash)
        *hash = '\0';
      allow_add(l, line, strlen(line));
    }
    free(line);
    fclose(fp);
  } else
    for (const char *p = v; *p;) {
      const char *comma = strchr(p, ',');
      size_t n = comma ? (size_t)(comma - p) : strlen(p);
      allow_add(l, p, n);
      p += n + (comma != NULL);
    }
  l->allow_loaded = true;
  return 0;
}

static bool
allowed(const struct install_link *l, const char *name)
{
  if (l->allow_all)
    return true;
  for (size_t i = 0; i < l->nallow; i++)
    if (strcmp(l->allow[i], name) == 0)
      return true;
  return false;
}

/* ---- directories ---- */

static char *
packages_dir(const struct front *f, const char *sub)
{
  return xasprintf("%s/packages/%s", f->cfg->home, sub);
}

char *
install_session_dir(const struct front *f, const char *session_id)
{
  return xasprintf("%s/packages/sessions/%s", f->cfg->home, session_id);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)ftw;
  if (flag == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

static void
rm_tree(const char *dir)
{
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void
install_session_forget(const struct front *f, const char *session_id)
{
  cleanup_free char *dir = install_session_dir(f, session_id);
  rm_tree(dir);
}

int
install_session_make(const struct front *f, const char *session_id, kiln_error_t *err)
{
  cleanup_free char *dir = install_session_dir(f, session_id);
  if (mkdir_p(dir, 0755) < 0)
    return kiln_error_make(err, errno, "mkdir %s", dir);
  return 0;
}

/* Whether the session has any package installed.  */
bool
install_session_has(const struct front *f, const char *session_id)
{
  cleanup_free char *dir = install_session_dir(f, session_id);
  DIR *d = opendir(dir);
  if (d == NULL)
    return false;
  bool any = false;
  for (struct dirent *e; !any && (e = readdir(d)) != NULL;)
    any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  return any;
}

/* The distributions in site directory DIR, as "name version" of each
   NAME-VERSION.dist-info (NAMES and VERSIONS allocated, N of each).  */
struct dists {
  char **names, **versions;
  size_t n;
};

static void
dists_free(struct dists *d)
{
  for (size_t i = 0; i < d->n; i++) {
    free(d->names[i]);
    free(d->versions[i]);
  }
  free(d->names);
  free(d->versions);
  *d = (struct dists){ 0 };
}

static void
dists_read(const char *dir, struct dists *out)
{
  *out = (struct dists){ 0 };
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    size_t len = strlen(e->d_name);
    static const char suffix[] = ".dist-info";
    if (len <= sizeof suffix - 1 || strcmp(e->d_name + len - (sizeof suffix - 1), suffix) != 0)
      continue;
    const char *dash = memchr(e->d_name, '-', len);
    if (dash == NULL)
      continue;
    out->names = xrealloc(out->names, (out->n + 1) * sizeof *out->names);
    out->versions = xrealloc(out->versions, (out->n + 1) * sizeof *out->versions);
    out->names[out->n] = normalise(e->d_name, (size_t)(dash - e->d_name));
    out->versions[out->n]
        = xstrndup(dash + 1, len - (sizeof suffix - 1) - (size_t)(dash + 1 - e->d_name));
    out->n++;
  }
  closedir(d);
}

/* The site directory pip filled under PREFIX (lib/python3.X/site-packages,
   or Debian's local/lib/python3.X/dist-packages): the first directory,
   breadth first to depth 4, holding a .dist-info.  Allocated, or NULL.  */
static char *
find_site(const char *prefix, int depth)
{
  struct dists d;
  dists_read(prefix, &d);
  bool here = d.n > 0;
  dists_free(&d);
  if (here)
    return xstrdup(prefix);
  if (depth == 0)
    return NULL;
  DIR *dir = opendir(prefix);
  if (dir == NULL)
    return NULL;
  char *found = NULL;
  for (struct dirent *e; found == NULL && (e = readdir(dir)) != NULL;) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.')
      continue;
    cleanup_free char *sub = xasprintf("%s/%s", prefix, e->d_name);
    found = find_site(sub, depth - 1);
  }
  closedir(dir);
  return found;
}

/* The bytes a distribution's RECORD names under SITE (its installed
   size), or 0 when it has no RECORD.  */
static uint64_t
dist_size(const char *site, const char *dist_info)
{
  cleanup_free char *record = xasprintf("%s/%s/RECORD", site, dist_info);
  FILE *fp = fopen(record, "re");
  if (fp == NULL)
    return 0;
  uint64_t total = 0;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, fp) > 0) {
    char *comma = strchr(line, ',');
    if (comma == NULL || strstr(line, "..") != NULL || line[0] == '/')
      continue;
    *comma = '\0';
    cleanup_free char *path = xasprintf("%s/%s", site, line);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
      total += (uint64_t)st.st_size;
  }
  free(line);
  fclose(fp);
  return total;
}

/* The dist-info directory name of distribution I of SITE.  */
static char *
dist_info_of(const char *site, const char *name)
{
  DIR *d = opendir(site);
  if (d == NULL)
    return NULL;
  char *found = NULL;
  for (struct dirent *e; found == NULL && (e = readdir(d)) != NULL;) {
    const char *dash = strchr(e->d_name, '-');
    if (dash == NULL || strstr(e->d_name, ".dist-info") == NULL)
      continue;
    cleanup_free char *n = normalise(e->d_name, (size_t)(dash - e->d_name));
    if (strcmp(n, name) == 0)
      found = xstrdup(e->d_name);
  }
  closedir(d);
  return found;
}

/* Every distribution under SITE allowed and within the size limit;
   else -1 with ERR naming the first that is not.  */
static int
check_dists(struct front *f, const char *site, const struct dists *d, kiln_error_t *err)
{
  for (size_t i = 0; i < d->n; i++) {
    if (!allowed(&f->install, d->names[i]))
      return kiln_error_make(err, 0,
                             "%s %s (a dependency) is not in the allowed packages "
                             "(--allow-packages)",
                             d->names[i], d->versions[i]);
    cleanup_free char *di = dist_info_of(site, d->names[i]);
    uint64_t size = di ? dist_size(site, di) : 0;
    if (size > f->cfg->packages.max_size)
      return kiln_error_make(err, 0,
                             "%s %s is %.1f MiB installed, over --max-package-size (%.1f MiB)",
                             d->names[i], d->versions[i], (double)size / (1 << 20),
                             (double)f->cfg->packages.max_size / (1 << 20));
  }
  return 0;
}

/* ---- linking into a session ---- */

static const char *link_src, *link_dst;
static int link_errno;

static int
link_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)ftw;
  const char *rel = path + strlen(link_src);
  cleanup_free char *dst = xasprintf("%s%s", link_dst, rel);
  if (flag == FTW_D) {
    if (mkdir(dst, 0755) < 0 && errno != EEXIST)
      link_errno = errno;
  } else if (flag == FTW_SL) {
    char target[4096];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n >= 0) {
      target[n] = '\0';
      if (symlink(target, dst) < 0 && errno != EEXIST)
        link_errno = errno;
    }
  } else if (S_ISREG(st->st_mode)) {
    /* A file another install of the same distribution put there is the
       same file: kept.  */
    if (link(path, dst) < 0 && errno != EEXIST)
      link_errno = errno;
  }
  return link_errno ? 1 : 0;
}

/* Hard-links the tree SRC into DST (same filesystem: KILN_HOME).  */
static int
link_tree(const char *src, const char *dst, kiln_error_t *err)
{
  link_src = src;
  link_dst = dst;
  link_errno = 0;
  if (nftw(src, link_one, 16, FTW_PHYS) != 0 || link_errno)
    return kiln_error_make(err, link_errno ? link_errno : errno, "link the packages into %s",
                           dst);
  return 0;
}

static uid_t own_uid;
static gid_t own_gid;

static int
chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  (void)!lchown(path, own_uid, own_gid);
  return 0;
}

/* ---- the queue ---- */

static void
install_free(struct install *r)
{
  for (size_t i = 0; i < r->nspecs; i++)
    free(r->specs[i]);
  free(r->specs);
  if (r->staging) {
    rm_tree(r->staging);
    free(r->staging);
  }
  free(r);
}

static void
answer(struct front *f, struct install *r, const char *error, const char *log_tail,
       const char *installed, bool cached)
{
  struct install_reply rep = {
    .session_id = r->session_id,
    .ok = error == NULL,
    .message = error,
    .log = log_tail,
    .installed = installed ? installed : "",
    .cached = cached,
    .duration_ms = (double)(now_ns() - r->started_ns) / 1e6,
  };
  if (r->cb)
    r->cb(r->ctx, &rep);
}

/* "name version, ..." of D.  */
static char *
dists_text(const struct dists *d)
{
  struct buf b = { 0 };
  for (size_t i = 0; i < d->n; i++) {
    cleanup_free char *one = xasprintf("%s%s %s", i ? ", " : "", d->names[i], d->versions[i]);
    buf_append(&b, one, strlen(one));
  }
  buf_append(&b, "", 1);
  return (char *)b.data;
}

/* Links SITE's distributions into R's session and answers R.  */
static void
deliver(struct front *f, struct install *r, const char *site, bool cached)
{
  kiln_error_t err = NULL;
  struct session *s = session_find(f, r->session_id);
  struct dists d, have;
  dists_read(site, &d);
  cleanup_free char *sdir = install_session_dir(f, r->session_id);
  dists_read(sdir, &have);
  cleanup_free char *text = dists_text(&d);
  if (s == NULL || s->closed) {
    answer(f, r, "the session was closed during the install", NULL, NULL, false);
    goto out;
  }
  /* One version of a project per session: a second would be shadowed
     by the first on sys.path, or mixed with it file by file.  */
  for (size_t i = 0; i < d.n; i++)
    for (size_t k = 0; k < have.n; k++)
      if (strcmp(d.names[i], have.names[k]) == 0 && strcmp(d.versions[i], have.versions[k]) != 0) {
        cleanup_free char *msg = xasprintf(
            "%s %s is installed in this session already; it cannot also have %s %s (a session "
            "keeps one version of a package: start a new session for another)",
            have.names[k], have.versions[k], d.names[i], d.versions[i]);
        answer(f, r, msg, NULL, NULL, false);
        goto out;
      }
  if (install_session_make(f, r->session_id, &err) < 0 || link_tree(site, sdir, &err) < 0) {
    log_error(LOG_ERROR, &err, "install_packages");
    answer(f, r, "the packages could not be linked into the session's directory", NULL, NULL,
           false);
    goto out;
  }
  /* The next cell (of this worker or any later one) adds the directory
     to sys.path and drops the import system's caches.  */
  s->has_packages = true;
  s->packages_changed = true;
  answer(f, r, NULL, NULL, text, cached);
out:
  dists_free(&d);
  dists_free(&have);
}

/* pip's output, from its last lines: what a user needs to read.  */
static char *
explain(struct front *f, int code, const char *log)
{
  (void)f;
  if (code == INSTALL_EXIT_PROXY)
    return xasprintf("the download went over its limit (--max-package-size)");
  if (strstr(log, "refused a connection to"))
    return xasprintf("the installer tried to reach a host other than the package index: %s",
                     strstr(log, "refused a connection to"));
  if (strstr(log, "ResolutionImpossible") || strstr(log, "conflicting dependencies"))
    return xstrdup("the packages conflict with each other or with the preinstalled packages "
                   "(their versions are fixed); pip says why below");
  if (strstr(log, "No matching distribution found"))
    return xstrdup("no wheel of it for this platform and Python (or no such version) on the "
                   "package index: kiln installs wheels only, never source distributions");
  if (strstr(log, "trying to install outside the target directory"))
    return xstrdup("a wheel tried to write outside its directory (a path in its RECORD "
                   "escapes it); nothing of it was installed");
  if (code == INSTALL_EXIT_SETUP)
    return xstrdup("the installer's sandbox could not be set up (see kiln's log)");
  if (f->install.killed_at_deadline)
    return xasprintf("the install took longer than --install-timeout (%.0f s)",
                     f->cfg->packages.timeout_s);
  return xasprintf("pip failed (exit status %d)", code);
}

static void start_next(struct front *f);

static void
finish(struct front *f)
{
  struct install_link *l = &f->install;
  struct install *r = l->head;
  l->head = r->next;
  if (l->head == NULL)
    l->tail = NULL;
  l->running = false;
  l->pid = 0;
  buf_append(&l->log, "", 1);
  const char *log = (const char *)l->log.data;
  int code = WIFEXITED(l->status) ? WEXITSTATUS(l->status) : 128 + WTERMSIG(l->status);
  if (code != 0) {
    cleanup_free char *why = explain(f, code, log);
    answer(f, r, why, log, NULL, false);
  } else {
    cleanup_free char *site = find_site(r->staging, 4);
    struct dists d = { 0 };
    kiln_error_t err = NULL;
    if (site == NULL)
      answer(f, r, "pip installed nothing", log, NULL, false);
    else {
      dists_read(site, &d);
      if (check_dists(f, site, &d, &err) < 0) {
        answer(f, r, err->msg, NULL, NULL, false);
        kiln_error_release(&err);
      } else {
        /* The files become the front's: the installer's uid (which any
           later install runs as) cannot change them under a session.  */
        own_uid = geteuid();
        own_gid = getegid();
        nftw(r->staging, chown_one, 16, FTW_PHYS);
        cleanup_free char *cached = NULL;
        if (r->cacheable) {
          cleanup_free char *cache = packages_dir(f, "cache");
          cached = xasprintf("%s/%s", cache, r->key);
          if (mkdir_p(cache, 0700) < 0 || rename(site, cached) < 0) {
            log_msg(LOG_WARN, "install_packages: cannot keep %s in the cache: %s", r->key,
                    strerror(errno));
            free(cached);
            cached = NULL;
          }
        }
        deliver(f, r, cached ? cached : site, false);
      }
      dists_free(&d);
    }
  }
  buf_free(&l->log);
  install_free(r);
  start_next(f);
}

static void
on_output(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)events;
  struct front *f = data;
  struct install_link *l = &f->install;
  char chunk[8192];
  ssize_t n = read(fd, chunk, sizeof chunk);
  if (n > 0) {
    buf_append(&l->log, chunk, (size_t)n);
    if (l->log.len > 2 * LOG_KEEP) {
      memmove(l->log.data, l->log.data + l->log.len - LOG_KEEP, LOG_KEEP);
      l->log.len = LOG_KEEP;
    }
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  loop_del(loop, fd);
  close(fd);
  l->watching = false;
  if (l->reaped)
    finish(f);
}

void
install_reaped(struct front *f, int status)
{
  struct install_link *l = &f->install;
  l->status = status;
  l->reaped = true;
  if (!l->watching)
    finish(f);
}

static const char *
index_host(const char *url, char *host, size_t cap, int *port)
{
  const char *p = url;
  *port = 80;
  if (strncmp(p, "https://", 8) == 0) {
    p += 8;
    *port = 443;
  } else if (strncmp(p, "http://", 7) == 0)
    p += 7;
  else
    return NULL;
  size_t n = strcspn(p, ":/");
  if (n == 0 || n >= cap)
    return NULL;
  memcpy(host, p, n);
  host[n] = '\0';
  if (p[n] == ':')
    *port = atoi(p + n + 1);
  return host;
}

/* Writes the preinstalled packages as constraints (name==version), for
   pip to resolve against.  */
static char *
write_constraints(struct front *f, kiln_error_t *err)
{
  cleanup_free char *dir = packages_dir(f, "");
  if (mkdir_p(dir, 0700) < 0) {
    kiln_error_make(err, errno, "mkdir %s", dir);
    return NULL;
  }
  char *path = xasprintf("%sconstraints.txt", dir);
  struct buf b = { 0 };
  /* f->packages: "name version,name version,..." */
  for (const char *p = f->packages ? f->packages : ""; *p;) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    const char *sp = memchr(p, ' ', n);
    if (sp) {
      buf_append(&b, p, (size_t)(sp - p));
      buf_append(&b, "==", 2);
      buf_append(&b, sp + 1, n - (size_t)(sp + 1 - p));
      buf_append(&b, "\n", 1);
    }
    p += n + (comma != NULL);
  }
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  int rc = fd < 0 ? -1 : write_full(fd, b.data ? (const char *)b.data : "", b.len);
  if (fd >= 0)
    close(fd);
  buf_free(&b);
  if (rc < 0) {
    kiln_error_make(err, errno, "write %s", path);
    free(path);
    return NULL;
  }
  return path;
}

static int
spawn_installer(struct front *f, struct install *r, kiln_error_t *err)
{
  struct install_link *l = &f->install;
  const struct sbx_config *sbx = f->cfg->sbx;
  if (sbx == NULL || !sbx->jail)
    return kiln_error_make(err, 0, "packages are installed only with the sandbox on");
  if (l->constraints == NULL && (l->constraints = write_constraints(f, err)) == NULL)
    return -1;
  cleanup_free char *staging_root = packages_dir(f, "staging");
  if (mkdir_p(staging_root, 0700) < 0)
    return kiln_error_make(err, errno, "mkdir %s", staging_root);
  r->staging = xasprintf("%s/XXXXXX", staging_root);
  if (mkdtemp(r->staging) == NULL) {
    free(r->staging);
    r->staging = NULL;
    return kiln_error_make(err, errno, "mkdtemp for an install");
  }
  if (!sbx->userns && chown(r->staging, NOBODY, NOBODY) < 0)
    return kiln_error_make(err, errno, "chown %s", r->staging);
  /* The staging tree is under a 0700 directory: only its own uid and
     the front reach it, through the bind.  */
  char host[256];
  int port;
  if (index_host(f->cfg->packages.index, host, sizeof host, &port) == NULL)
    return kiln_error_make(err, 0, "--package-index '%s' is not an http(s) URL",
                           f->cfg->packages.index);

  const char *argv[64];
  size_t n = 0;
  cleanup_free char *python = xasprintf("%s/bin/python3", f->cfg->venv);
  cleanup_free char *max = xasprintf("%zu", f->cfg->packages.max_size * 4 + (64u << 20));
  cleanup_free char *allow1 = xasprintf("%s:%d", host, port);
  cleanup_free char *ids = xasprintf("%u:%u", (unsigned)sbx->host_uid, (unsigned)sbx->host_gid);
  argv[n++] = "kiln-install";
  argv[n++] = INSTALLER_COMMAND;
  argv[n++] = "--python";
  argv[n++] = python;
  argv[n++] = "--index";
  argv[n++] = f->cfg->packages.index;
  argv[n++] = "--target";
  argv[n++] = r->staging;
  argv[n++] = "--root";
  argv[n++] = sbx->root_dir;
  argv[n++] = "--constraints";
  argv[n++] = l->constraints;
  argv[n++] = "--max-bytes";
  argv[n++] = max;
  argv[n++] = "--allow";
  argv[n++] = allow1;
  /* The public index serves its files from another host.  */
  if (strcmp(host, "pypi.org") == 0) {
    argv[n++] = "--allow";
    argv[n++] = "files.pythonhosted.org:443";
  }
  if (sbx->userns) {
    argv[n++] = "--userns";
    argv[n++] = ids;
  }
  for (size_t i = 0; i < sbx->nexpose; i++) {
    argv[n++] = "--expose";
    argv[n++] = sbx->expose[i];
  }
  argv[n++] = "--";
  for (size_t i = 0; i < r->nspecs && n < sizeof argv / sizeof argv[0] - 1; i++)
    argv[n++] = r->specs[i];
  argv[n] = NULL;

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0)
    return kiln_error_make(err, errno, "pipe");
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  posix_spawnattr_init(&attr);
  sigset_t none, dflt;
  sigemptyset(&none);
  sigemptyset(&dflt);
  sigaddset(&dflt, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &dflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  int rc = posix_spawn(&l->pid, "/proc/self/exe", &fa, &attr, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    l->pid = 0;
    return kiln_error_make(err, rc, "start the installer");
  }
  set_nonblock(pipefd[0], true);
  l->out = pipefd[0];
  if (loop_add(f->loop, l->out, EPOLLIN, on_output, f, err) < 0) {
    kill(l->pid, SIGKILL);
    close(l->out);
    /* Reaped as usual: its exit answers it.  */
    return -1;
  }
  l->watching = true;
  return 0;
}

static void
start_next(struct front *f)
{
  struct install_link *l = &f->install;
  while (l->head && !l->running) {
    struct install *r = l->head;
    r->started_ns = now_ns();
    if (r->cacheable) {
      cleanup_free char *cache = packages_dir(f, "cache");
      cleanup_free char *entry = xasprintf("%s/%s", cache, r->key);
      struct stat st;
      if (stat(entry, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* Installed before for another session: links, no pip.  */
        l->head = r->next;
        if (l->head == NULL)
          l->tail = NULL;
        deliver(f, r, entry, true);
        install_free(r);
        continue;
      }
    }
    kiln_error_t err = NULL;
    buf_free(&l->log);
    l->reaped = false;
    l->watching = false;
    l->killed_at_deadline = false;
    if (spawn_installer(f, r, &err) < 0) {
      if (l->pid > 0) {
        /* Started but not watched: its exit ends it.  */
        l->running = true;
        l->deadline_ns = now_ns();
        kiln_error_release(&err);
        return;
      }
      l->head = r->next;
      if (l->head == NULL)
        l->tail = NULL;
      log_error(LOG_ERROR, &err, "install_packages");
      answer(f, r, "the installer could not be started (see kiln's log)", NULL, NULL, false);
      install_free(r);
      continue;
    }
    l->running = true;
    l->deadline_ns = now_ns() + (int64_t)(f->cfg->packages.timeout_s * 1e9);
  }
}

/* The cache key of R's pins: BLAKE2b-256 over what decides the files.  */
static void
install_key(const struct front *f, struct install *r, char **names)
{
  struct utsname u;
  uname(&u);
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  const char *parts[] = { "kiln-packages-1", u.machine, f->python_version,
                          f->cfg->packages.index };
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    crypto_generichash_update(&st, (const unsigned char *)(parts[i] ? parts[i] : ""),
                              strlen(parts[i] ? parts[i] : "") + 1);
  /* Sorted: the same set in another order is the same install.  */
  size_t n = r->nspecs;
  char **sorted = xmalloc(n * sizeof *sorted);
  for (size_t i = 0; i < n; i++) {
    const char *eq = strstr(r->specs[i], "==");
    sorted[i] = xasprintf("%s==%s", names[i], eq ? eq + 2 : "");
  }
  for (size_t i = 1; i < n; i++)
    for (size_t k = i; k > 0 && strcmp(sorted[k - 1], sorted[k]) > 0; k--) {
      char *t = sorted[k];
      sorted[k] = sorted[k - 1];
      sorted[k - 1] = t;
    }
  for (size_t i = 0; i < n; i++) {
    crypto_generichash_update(&st, (const unsigned char *)sorted[i], strlen(sorted[i]) + 1);
    free(sorted[i]);
  }
  free(sorted);
  unsigned char out[32];
  crypto_generichash_final(&st, out, sizeof out);
  sodium_bin2hex(r->key, sizeof r->key, out, sizeof out);
}

int64_t
front_install_packages(struct front *f, const char *session_id, const char *const *specs,
                       size_t nspecs, front_install_cb cb, void *ctx, kiln_error_t *err)
{
  struct session *s = session_id ? session_find(f, session_id) : NULL;
  if (s == NULL || s->closed)
    return kiln_error_make(err, 0, "unknown session '%s'", session_id ? session_id : "");
  if (nspecs == 0 || nspecs > MAX_SPECS)
    return kiln_error_make(err, 0, "give 1 to %d packages", MAX_SPECS);
  if (allow_load(f, err) < 0)
    return -1;
  char **names = xzalloc(nspecs * sizeof *names);
  bool pinned_all = true;
  int rc = 0;
  for (size_t i = 0; i < nspecs && rc == 0; i++) {
    bool pinned = false;
    rc = parse_spec(specs[i], &names[i], &pinned, err);
    if (rc == 0 && !allowed(&f->install, names[i]))
      rc = kiln_error_make(err, 0, "'%s' is not in the allowed packages (--allow-packages)",
                           names[i]);
    pinned_all = pinned_all && pinned;
  }
  struct install *r = NULL;
  if (rc == 0) {
    r = xzalloc(sizeof *r);
    r->handle = ++f->next_handle;
    snprintf(r->session_id, sizeof r->session_id, "%s", s->id);
    r->specs = xzalloc(nspecs * sizeof *r->specs);
    for (size_t i = 0; i < nspecs; i++)
      r->specs[i] = xstrdup(specs[i]);
    r->nspecs = nspecs;
    r->cacheable = pinned_all;
    if (r->cacheable)
      install_key(f, r, names);
    r->cb = cb;
    r->ctx = ctx;
  }
  for (size_t i = 0; i < nspecs; i++)
    free(names[i]);
  free(names);
  if (rc < 0)
    return -1;
  struct install_link *l = &f->install;
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
  int64_t handle = r->handle;
  start_next(f);
  return handle;
}

bool
install_cancel(struct front *f, int64_t handle)
{
  struct install_link *l = &f->install;
  for (struct install **pp = &l->head; *pp; pp = &(*pp)->next) {
    struct install *r = *pp;
    if (r->handle != handle)
      continue;
    if (r == l->head && l->running) {
      /* Its exit ends it, unanswered.  */
      r->cb = NULL;
      kill(l->pid, SIGKILL);
      return true;
    }
    *pp = r->next;
    if (l->tail == r) {
      l->tail = NULL;
      for (struct install *t = l->head; t; t = t->next)
        l->tail = t;
    }
    install_free(r);
    return true;
  }
  return false;
}

int64_t
install_deadline(const struct front *f)
{
  return f->install.running && f->install.pid > 0 ? f->install.deadline_ns : -1;
}

void
install_tick(struct front *f, int64_t now)
{
  struct install_link *l = &f->install;
  if (l->running && l->pid > 0 && now >= l->deadline_ns && !l->killed_at_deadline) {
    l->killed_at_deadline = true;
    kill(l->pid, SIGKILL);
  }
}

void
install_free_all(struct front *f)
{
  struct install_link *l = &f->install;
  if (l->running && l->pid > 0) {
    kill(l->pid, SIGKILL);
    waitpid(l->pid, NULL, 0);
  }
  if (l->watching) {
    loop_del(f->loop, l->out);
    close(l->out);
    l->watching = false;
  }
  while (l->head) {
    struct install *r = l->head;
    l->head = r->next;
    install_free(r);
  }
  for (size_t i = 0; i < l->nallow; i++)
    free(l->allow[i]);
  free(l->allow);
  free(l->constraints);
  buf_free(&l->log);
}
