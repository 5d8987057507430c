/* install_packages' checks and files (install.h): the requirements a
   request may name, the allowlist, the distributions pip installed and
   their sizes, and the hard links that put them in a session.  */
#define _GNU_SOURCE
#include "install.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SPEC_LEN 200

/* ---- requirements ---- */

static bool
name_char(char c)
{
  return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

/* NAME (LEN bytes) normalised as PEP 503 says: lower case, each run of
   - _ . one -.  */
char *
install_normalise(const char *name, size_t len)
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
int
install_parse_spec(const char *spec, char **name, bool *pinned, kiln_error_t *err)
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
      return kiln_error_make(err, 0,
                             "'%s': unexpected '%c' (markers, URLs and spaces are not "
                             "taken)",
                             spec, *p);
  }
  *pinned = nclauses == 1 && eq && !wild;
  *name = install_normalise(spec, nlen);
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
  l->allow[l->nallow++] = install_normalise(name, len);
}

/* Reads --allow-packages: "*", names separated by commas, or a file.  */
int
install_allow_load(struct front *f, kiln_error_t *err)
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

bool
install_allowed(const struct install_link *l, const char *name)
{
  if (l->allow_all)
    return true;
  for (size_t i = 0; i < l->nallow; i++)
    if (strcmp(l->allow[i], name) == 0)
      return true;
  return false;
}

/* ---- directories ---- */

char *
install_packages_dir(const struct front *f, const char *sub)
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

void
install_rm_tree(const char *dir)
{
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void
install_session_forget(const struct front *f, const char *session_id)
{
  cleanup_free char *dir = install_session_dir(f, session_id);
  install_rm_tree(dir);
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

void
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

void
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
    out->names[out->n] = install_normalise(e->d_name, (size_t)(dash - e->d_name));
    out->versions[out->n]
        = xstrndup(dash + 1, len - (sizeof suffix - 1) - (size_t)(dash + 1 - e->d_name));
    out->n++;
  }
  closedir(d);
}

/* The site directory pip filled under PREFIX (lib/python3.X/site-packages,
   or Debian's local/lib/python3.X/dist-packages): the first directory,
   breadth first to depth 4, holding a .dist-info.  Allocated, or NULL.  */
char *
install_find_site(const char *prefix, int depth)
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
    found = install_find_site(sub, depth - 1);
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
    cleanup_free char *n = install_normalise(e->d_name, (size_t)(dash - e->d_name));
    if (strcmp(n, name) == 0)
      found = xstrdup(e->d_name);
  }
  closedir(d);
  return found;
}

/* Every distribution under SITE allowed and within the size limit;
   else -1 with ERR naming the first that is not.  */
int
install_check_dists(struct front *f, const char *site, const struct dists *d, kiln_error_t *err)
{
  for (size_t i = 0; i < d->n; i++) {
    if (!install_allowed(&f->install, d->names[i]))
      return kiln_error_make(err, 0,
                             "%s %s (a dependency) is not in the allowed packages "
                             "(--allow-packages)",
                             d->names[i], d->versions[i]);
    cleanup_free char *di = dist_info_of(site, d->names[i]);
    uint64_t size = di ? dist_size(site, di) : 0;
    if (size > f->cfg->packages.max_size)
      return kiln_error_make(
          err, 0, "%s %s is %.1f MiB installed, over --max-package-size (%.1f MiB)", d->names[i],
          d->versions[i], (double)size / (1 << 20), (double)f->cfg->packages.max_size / (1 << 20));
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
int
install_link_tree(const char *src, const char *dst, kiln_error_t *err)
{
  link_src = src;
  link_dst = dst;
  link_errno = 0;
  if (nftw(src, link_one, 16, FTW_PHYS) != 0 || link_errno)
    return kiln_error_make(err, link_errno ? link_errno : errno, "link the packages into %s", dst);
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

void
install_own_tree(const char *dir)
{
  own_uid = geteuid();
  own_gid = getegid();
  nftw(dir, chown_one, 16, FTW_PHYS);
}

/* Writes the preinstalled packages as constraints (name==version), for
   pip to resolve against.  */
char *
install_write_constraints(struct front *f, kiln_error_t *err)
{
  cleanup_free char *dir = install_packages_dir(f, "");
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
