/* The artifact writer: a file written off the loop appears whole under
   its name, and a dropped job leaves nothing behind the moment the drop
   returns, even when it is dropped in the middle of its write (the
   front removes a closed session's directory right after).  */
#define _GNU_SOURCE
#include "artifact_writer.h"
#include "check.h"
#include "loop.h"
#include "util.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct seen {
  struct loop *loop;
  struct art_job *job;
  int errnum;
  int calls;
};

static void
on_done(void *ctx, struct art_job *job, int errnum)
{
  struct seen *s = ctx;
  s->job = job;
  s->errnum = errnum;
  s->calls++;
  loop_stop(s->loop);
}

static bool
exists(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0;
}

static char *
temp_dir(void)
{
  char *dir = xstrdup("/tmp/kiln-art-XXXXXX");
  if (mkdtemp(dir) == NULL)
    abort();
  return dir;
}

static void
a_written_file_appears_whole_and_is_reported(void)
{
  kiln_error_t err = NULL;
  struct seen seen = { .loop = loop_new(&err) };
  struct art_writer *w = art_writer_new(seen.loop, on_done, &seen, &err);
  CHECK(w != NULL);
  cleanup_free char *dir = temp_dir();
  cleanup_free char *path = xasprintf("%s/a.png", dir);
  uint8_t *data = xmalloc(4096);
  memset(data, 7, 4096);
  struct art_job *job = art_write(w, path, data, 4096);
  CHECK(loop_run(seen.loop, &err) == 0);
  CHECK(seen.calls == 1);
  CHECK(seen.job == job);
  CHECK(seen.errnum == 0);
  struct stat st;
  CHECK(stat(path, &st) == 0 && st.st_size == 4096);
  cleanup_free char *part = xasprintf("%s.part", path);
  CHECK(!exists(part));
  unlink(path);
  CHECK(rmdir(dir) == 0);
  art_writer_free(w);
  loop_free(seen.loop);
}

/* Drops a job once its temporary file is seen, i.e. while the thread is
   writing it.  Returns false when the write ended before it was seen
   (the caller tries a larger one).  */
static bool
drop_mid_write(size_t len)
{
  kiln_error_t err = NULL;
  struct seen seen = { .loop = loop_new(&err) };
  struct art_writer *w = art_writer_new(seen.loop, on_done, &seen, &err);
  cleanup_free char *dir = temp_dir();
  cleanup_free char *path = xasprintf("%s/big.png", dir);
  cleanup_free char *part = xasprintf("%s.part", path);
  uint8_t *data = xmalloc(len);
  memset(data, 1, len);
  struct art_job *job = art_write(w, path, data, len);
  while (!exists(part) && !exists(path))
    ;
  bool caught = !exists(path);
  art_drop(w, job);
  if (caught) {
    CHECK(!exists(part));
    CHECK(!exists(path));
    CHECK(rmdir(dir) == 0);
  }
  art_writer_free(w);
  CHECK(seen.calls == 0);
  unlink(path);
  rmdir(dir);
  loop_free(seen.loop);
  return caught;
}

static void
a_job_dropped_mid_write_leaves_no_file_when_the_drop_returns(void)
{
  bool caught = false;
  for (size_t len = 64u << 20; !caught && len <= (1u << 30); len *= 2)
    caught = drop_mid_write(len);
  CHECK(caught);
}

static void
a_queued_job_dropped_is_never_written(void)
{
  kiln_error_t err = NULL;
  struct seen seen = { .loop = loop_new(&err) };
  struct art_writer *w = art_writer_new(seen.loop, on_done, &seen, &err);
  cleanup_free char *dir = temp_dir();
  /* The first keeps the thread busy while the second waits its turn.  */
  cleanup_free char *first = xasprintf("%s/first.png", dir);
  cleanup_free char *second = xasprintf("%s/second.png", dir);
  size_t len = 64u << 20;
  uint8_t *a = xmalloc(len);
  memset(a, 2, len);
  uint8_t *b = xmalloc(16);
  memset(b, 3, 16);
  art_write(w, first, a, len);
  struct art_job *job = art_write(w, second, b, 16);
  art_drop(w, job);
  CHECK(loop_run(seen.loop, &err) == 0);
  CHECK(seen.calls == 1);
  CHECK(exists(first));
  /* The thread is idle again: the dropped job would have been written.  */
  art_writer_free(w);
  CHECK(!exists(second));
  cleanup_free char *part = xasprintf("%s.part", second);
  CHECK(!exists(part));
  unlink(first);
  CHECK(rmdir(dir) == 0);
  loop_free(seen.loop);
}

int
main(void)
{
  static const struct test_case cases[] = {
    { "a written file appears whole and is reported",
      a_written_file_appears_whole_and_is_reported },
    { "a job dropped mid-write leaves no file when the drop returns",
      a_job_dropped_mid_write_leaves_no_file_when_the_drop_returns },
    { "a queued job dropped is never written", a_queued_job_dropped_is_never_written },
  };
  return RUN(cases);
}
