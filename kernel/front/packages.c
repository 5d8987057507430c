/* The sandbox venv's packages, read from its dist-info metadata at
   start-up, without Python: for the tool descriptions and the banner.  */
#define _GNU_SOURCE
#include "internal.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The value of header KEY ("Name", "Version") in METADATA text (RFC 822
   style, the headers before the first empty line), or NULL.  */
static char *
header(const char *text, const char *key)
{
  size_t klen = strlen(key);
  for (const char *p = text; *p && *p != '\n'; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "") {
    if (strncasecmp(p, key, klen) == 0 && p[klen] == ':') {
      const char *v = p + klen + 1;
      while (*v == ' ' || *v == '\t')
        v++;
      size_t n = strcspn(v, "\r\n");
      return n ? xstrndup(v, n) : NULL;
    }
  }
  return NULL;
}

static int
by_name(const void *a, const void *b)
{
  return strcasecmp(*(char *const *)a, *(char *const *)b);
}

/* "name version" of the distribution whose dist-info directory is DIR.  */
static char *
describe(const char *dir)
{
  cleanup_free char *path = xasprintf("%s/METADATA", dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  char text[8192];
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0)
    return NULL;
  text[n] = '\0';
  cleanup_free char *name = header(text, "Name");
  cleanup_free char *version = header(text, "Version");
  if (name == NULL || version == NULL || strchr(name, ',') || strchr(version, ','))
    return NULL;
  return xasprintf("%s %s", name, version);
}

char *
packages_scan(const char *venv)
{
  cleanup_free char *lib = xasprintf("%s/lib", venv);
  DIR *l = opendir(lib);
  if (l == NULL)
    return xstrdup("");
  char **found = NULL;
  size_t n = 0;
  struct dirent *le;
  while ((le = readdir(l)) != NULL) {
    if (strncmp(le->d_name, "python", 6) != 0)
      continue;
    cleanup_free char *site = xasprintf("%s/%s/site-packages", lib, le->d_name);
    DIR *d = opendir(site);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
      size_t len = strlen(de->d_name);
      if (len < 10 || strcmp(de->d_name + len - 10, ".dist-info") != 0)
        continue;
      cleanup_free char *dir = xasprintf("%s/%s", site, de->d_name);
      char *one = describe(dir);
      if (one) {
        found = xrealloc(found, (n + 1) * sizeof *found);
        found[n++] = one;
      }
    }
    if (d)
      closedir(d);
  }
  closedir(l);
  if (n > 1)
    qsort(found, n, sizeof *found, by_name);
  struct buf b = { 0 };
  for (size_t i = 0; i < n; i++) {
    if (b.len)
      buf_append(&b, ",", 1);
    buf_append(&b, found[i], strlen(found[i]));
    free(found[i]);
  }
  free(found);
  buf_append(&b, "", 1);
  return (char *)b.data;
}

const char *
front_packages(const struct front *f)
{
  return f->packages;
}
