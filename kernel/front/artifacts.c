/* The images a session's cells produced, kept on disk under the
   session's directory so that a client can read them at full size later.
   They live outside the session's size-limited /work and its cgroup, so
   the front bounds them: a quota per session (a quarter of
   --max-artifacts-size) and one for all sessions together; the oldest are
   evicted first, and the reply of the cell that caused it says so.  The
   files are written off the loop (artifact_writer.c); until one is
   complete it is read from memory.  A disk without room for an image is
   said in the reply, and a write that fails anyway leaves nothing behind
   and is logged.  */
#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static size_t
session_quota(const struct front *f)
{
  return f->cfg->max_artifacts_size / 4;
}

static char *
artifact_path(const struct session *s, const struct artifact *a)
{
  return xasprintf("%s/artifacts/%s", s->workdir, a->name);
}

/* Removes A's file, or the write that would make it.  */
static void
discard(struct front *f, const struct session *s, struct artifact *a)
{
  if (a->job) {
    art_drop(f->writer, a->job);
    a->job = NULL;
    return;
  }
  cleanup_free char *path = artifact_path(s, a);
  unlink(path);
}

/* Removes S's oldest artifact from disk and from the accounts.  */
static void
evict_oldest(struct front *f, struct session *s)
{
  discard(f, s, &s->artifacts[0]);
  s->artifacts_bytes -= s->artifacts[0].size;
  f->artifacts_bytes -= s->artifacts[0].size;
  memmove(s->artifacts, s->artifacts + 1, (s->nartifacts - 1) * sizeof *s->artifacts);
  s->nartifacts--;
}

/* The session holding the oldest artifact of all, or NULL.  */
static struct session *
oldest_holder(struct front *f)
{
  struct session *best = NULL;
  for (struct session *s = f->sessions; s; s = s->next)
    if (s->nartifacts && (best == NULL || s->artifacts[0].serial < best->artifacts[0].serial))
      best = s;
  return best;
}

struct artifact *
artifact_store(struct session *s, const char *mime, const uint8_t *data, size_t len, uint32_t w,
               uint32_t h, struct artifact_notes *notes)
{
  struct front *f = s->front;
  if (len > session_quota(f)) {
    notes->refused++;
    return NULL;
  }
  /* Make room: the session's own oldest first, then anyone's.  */
  while (s->nartifacts && s->artifacts_bytes + len > session_quota(f)) {
    evict_oldest(f, s);
    notes->evicted++;
  }
  struct session *o;
  while (f->artifacts_bytes + len > f->cfg->max_artifacts_size && (o = oldest_holder(f)) != NULL) {
    evict_oldest(f, o);
    notes->evicted += o == s;
    notes->evicted_others += o != s;
  }
  cleanup_free char *dir = xasprintf("%s/artifacts", s->workdir);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    notes->write_errno = errno;
    log_msg(LOG_ERROR, "mkdir %s: %s", dir, strerror(errno));
    return NULL;
  }
  struct artifact a = { .mime = mime,
                        .size = len,
                        .width = w,
                        .height = h,
                        .cell = s->execution_count,
                        .serial = ++f->artifact_serial };
  const char *ext = strcmp(mime, "image/jpeg") == 0      ? "jpg"
                    : strcmp(mime, "image/svg+xml") == 0 ? "svg"
                                                         : "png";
  snprintf(a.name, sizeof a.name, "cell%llu-%llu.%s", (unsigned long long)s->execution_count,
           (unsigned long long)a.serial, ext);
  /* The write happens after the reply; whether the disk has room is
     known now, and said in this reply.  */
  struct statvfs vfs;
  if (statvfs(dir, &vfs) == 0
      && (unsigned long long)vfs.f_bavail * vfs.f_frsize < len + (64u << 10)) {
    notes->write_errno = ENOSPC;
    return NULL;
  }
  cleanup_free char *path = artifact_path(s, &a);
  uint8_t *copy = xmalloc(len ? len : 1);
  memcpy(copy, data, len);
  a.job = art_write(f->writer, path, copy, len);
  s->artifacts = xrealloc(s->artifacts, (s->nartifacts + 1) * sizeof *s->artifacts);
  s->artifacts[s->nartifacts] = a;
  s->artifacts_bytes += len;
  f->artifacts_bytes += len;
  return &s->artifacts[s->nartifacts++];
}

char *
artifact_notice(const struct artifact_notes *n)
{
  struct buf b = { 0 };
  if (n->refused) {
    cleanup_free char *t = xasprintf(
        "%zu image(s) were larger than a session may keep and were not stored. ", n->refused);
    buf_append(&b, t, strlen(t));
  }
  if (n->evicted || n->evicted_others) {
    cleanup_free char *others = n->evicted_others
                                    ? xasprintf(" and %zu of other sessions", n->evicted_others)
                                    : xstrdup("");
    cleanup_free char *t = xasprintf(
        "To stay within --max-artifacts-size, %zu older image(s) of this session%s were deleted; "
        "their URIs no longer resolve. ",
        n->evicted, others);
    buf_append(&b, t, strlen(t));
  }
  if (n->write_errno) {
    cleanup_free char *t
        = xasprintf("Some images could not be stored (%s) and are missing from this reply. ",
                    strerror(n->write_errno));
    buf_append(&b, t, strlen(t));
  }
  if (b.len == 0)
    return NULL;
  b.data[b.len - 1] = '\0';
  return (char *)b.data;
}

void
artifacts_drop_all(struct session *s)
{
  for (size_t i = 0; i < s->nartifacts; i++)
    discard(s->front, s, &s->artifacts[i]);
  s->front->artifacts_bytes -= s->artifacts_bytes;
  s->artifacts_bytes = 0;
  cleanup_free char *adir = xasprintf("%s/artifacts", s->workdir);
  rmdir(adir);
  free(s->artifacts);
  s->artifacts = NULL;
  s->nartifacts = 0;
}

void
artifact_written(void *ctx, struct art_job *job, int errnum)
{
  struct front *f = ctx;
  for (struct session *s = f->sessions; s; s = s->next)
    for (size_t i = 0; i < s->nartifacts; i++) {
      struct artifact *a = &s->artifacts[i];
      if (a->job != job)
        continue;
      a->job = NULL;
      if (errnum == 0)
        return;
      /* The reply has gone: the image is only gone from the table, and
         the log says why.  */
      log_msg(LOG_ERROR, "could not store image %s of session %s: %s", a->name, s->id,
              strerror(errnum));
      s->artifacts_bytes -= a->size;
      f->artifacts_bytes -= a->size;
      memmove(a, a + 1, (s->nartifacts - i - 1) * sizeof *a);
      s->nartifacts--;
      return;
    }
}

uint8_t *
front_artifact_read(struct front *f, const char *session_id, const char *name, const char **mime,
                    size_t *len, kiln_error_t *err)
{
  struct session *s = session_find(f, session_id);
  if (s == NULL) {
    kiln_error_make(err, 0, "unknown session '%s'", session_id);
    return NULL;
  }
  /* Only names kiln gave out: nothing a client sends becomes a path.  */
  for (size_t i = 0; i < s->nartifacts; i++) {
    struct artifact *a = &s->artifacts[i];
    if (strcmp(a->name, name) != 0)
      continue;
    *mime = a->mime;
    if (a->job) {
      size_t n;
      const uint8_t *d = art_job_data(a->job, &n);
      uint8_t *copy = xmalloc(n ? n : 1);
      memcpy(copy, d, n);
      *len = n;
      return copy;
    }
    cleanup_free char *path = artifact_path(s, a);
    cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != a->size) {
      kiln_error_make(err, errno, "cannot read image %s", name);
      return NULL;
    }
    uint8_t *data = xmalloc(a->size ? a->size : 1);
    if (read_full(fd, data, a->size) < 0) {
      kiln_error_make(err, errno, "cannot read image %s", name);
      free(data);
      return NULL;
    }
    *len = a->size;
    return data;
  }
  kiln_error_make(err, 0, "session %s has no artifact '%s'; it may have been evicted", session_id,
                  name);
  return NULL;
}

void
front_each_artifact(struct front *f,
                    void (*fn)(void *ctx, const char *session_id, const char *name,
                               const char *mime, size_t size, uint32_t width, uint32_t height),
                    void *ctx)
{
  for (struct session *s = f->sessions; s; s = s->next)
    for (size_t i = 0; i < s->nartifacts; i++)
      fn(ctx, s->id, s->artifacts[i].name, s->artifacts[i].mime, s->artifacts[i].size,
         s->artifacts[i].width, s->artifacts[i].height);
}

char *
artifacts_encode(const struct session *s)
{
  struct buf b = { 0 };
  for (size_t i = 0; i < s->nartifacts; i++) {
    const struct artifact *a = &s->artifacts[i];
    if (a->job)
      continue; /* not on disk (yet): nothing to come back to */
    cleanup_free char *line = xasprintf("%s\t%s\t%zu\t%u\t%u\t%llu\n", a->name, a->mime, a->size,
                                        a->width, a->height, (unsigned long long)a->cell);
    buf_append(&b, line, strlen(line));
  }
  buf_append(&b, "", 1);
  return (char *)b.data;
}

/* The static spelling of an image type an artifact may have.  */
static const char *
image_mime(const char *m)
{
  static const char *const known[] = { "image/png", "image/jpeg", "image/svg+xml" };
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(known[i], m) == 0)
      return known[i];
  return NULL;
}

void
artifacts_decode(struct session *s, const char *text)
{
  struct front *f = s->front;
  for (const char *p = text; *p;) {
    size_t n = strcspn(p, "\n");
    cleanup_free char *line = xstrndup(p, n);
    p += n + (p[n] == '\n');
    char name[48], mime[32];
    size_t size;
    unsigned w, h;
    unsigned long long cell;
    if (sscanf(line, "%47[^\t]\t%31[^\t]\t%zu\t%u\t%u\t%llu", name, mime, &size, &w, &h, &cell) != 6
        || image_mime(mime) == NULL || strchr(name, '/') || name[0] == '.')
      continue;
    /* Only a file still there, as large as recorded, comes back.  */
    struct artifact a = { .mime = image_mime(mime),
                          .size = size,
                          .width = w,
                          .height = h,
                          .cell = cell,
                          .serial = ++f->artifact_serial };
    snprintf(a.name, sizeof a.name, "%s", name);
    cleanup_free char *path = artifact_path(s, &a);
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != size)
      continue;
    s->artifacts = xrealloc(s->artifacts, (s->nartifacts + 1) * sizeof *s->artifacts);
    s->artifacts[s->nartifacts++] = a;
    s->artifacts_bytes += size;
    f->artifacts_bytes += size;
  }
}

void
artifacts_forget(struct session *s)
{
  s->front->artifacts_bytes -= s->artifacts_bytes;
  s->artifacts_bytes = 0;
  free(s->artifacts);
  s->artifacts = NULL;
  s->nartifacts = 0;
}
