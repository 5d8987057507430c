/* A cell's whole (capped) stdout and stderr, kept on disk beside the
   session's /work when they are longer than a reply shows in full, so
   that a client can read them (kiln://sessions/ID/cells/N/stdout).  The
   last CELLS_KEPT cells' are kept; older ones are deleted as new ones
   come.  */
#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CELLS_KEPT 32

static const char *const stream_names[] = { "stdout", "stderr" };

static char *
output_path(const struct session *s, uint64_t cell, int stream)
{
  return xasprintf("%s/cells/%llu.%s", s->workdir, (unsigned long long)cell, stream_names[stream]);
}

bool
cell_output_store(struct session *s, uint64_t cell, int stream, const char *data, size_t len)
{
  if (len <= FRONT_OUTPUT_INLINE_MAX)
    return false;
  cleanup_free char *dir = xasprintf("%s/cells", s->workdir);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    log_msg(LOG_ERROR, "mkdir %s: %s", dir, strerror(errno));
    return false;
  }
  if (cell > CELLS_KEPT) {
    cleanup_free char *old = output_path(s, cell - CELLS_KEPT, stream);
    unlink(old);
  }
  cleanup_free char *path = output_path(s, cell, stream);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    log_msg(LOG_ERROR, "could not keep the output of cell %llu of session %s: %s",
            (unsigned long long)cell, s->id, strerror(errno));
    return false;
  }
  bool ok = write_full(fd, data, len) == 0;
  if (close(fd) < 0)
    ok = false;
  if (!ok) {
    log_msg(LOG_ERROR, "could not keep the output of cell %llu of session %s: %s",
            (unsigned long long)cell, s->id, strerror(errno));
    unlink(path);
  }
  return ok;
}

char *
front_cell_output_read(struct front *f, const char *session_id, uint64_t cell, int stream,
                       size_t *len, kiln_error_t *err)
{
  struct session *s = session_find(f, session_id);
  if (s == NULL)
    return kiln_error_make(err, 0, "unknown session '%s'", session_id), NULL;
  if (stream != 1 && stream != 2)
    return kiln_error_make(err, 0, "no such stream"), NULL;
  cleanup_free char *path = output_path(s, cell, stream - 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return kiln_error_make(err, 0,
                           "cell %llu of session %s has no %s kept (only the last %d cells' "
                           "outputs longer than %d bytes are)",
                           (unsigned long long)cell, s->id, stream_names[stream - 1], CELLS_KEPT,
                           FRONT_OUTPUT_INLINE_MAX),
           NULL;
  /* What was written is at most the cap and its marker.  */
  size_t max = f->cfg->max_output + 256;
  char *data = xmalloc(max + 1);
  size_t n = 0;
  while (n < max) {
    ssize_t r = read(fd, data + n, max - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  data[n] = '\0';
  *len = n;
  return data;
}

void
cell_outputs_remove(const char *session_dir)
{
  cleanup_free char *dir = xasprintf("%s/cells", session_dir);
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.')
      unlinkat(dirfd(d), de->d_name, 0);
  closedir(d);
  rmdir(dir);
}
