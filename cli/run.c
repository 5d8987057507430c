/* kiln run, as one sequence of requests to the front, each started when
   the one before it is answered:

     1. --workdir: each directory of DIR made in /work, each file written
        in parts; the first request makes the session (front_file_op
        with no session id, as front_run_cell without one);
     2. a cell that sets sys.argv (the session is made here if step 1
        made none);
     3. --keep: /work listed, for the directories it holds before the
        script runs (those of DIR, and any kiln mounted something on);
     4. the script, as one cell, its output printed as it was kept;
     5. --keep: /work listed again, the directories the script made
        made in DIR too, and each regular file read back in parts and
        written into DIR (workdir.h says how).

   Everything that comes back from the session is the untrusted worker's:
   paths are checked again here, sizes are bounded by --work-size, and
   the files are written by rules that keep them below DIR.  */
#define _GNU_SOURCE
#include "run.h"
#include "records.h"
#include "util.h"
#include "workdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Bytes moved by one file request, well under the front's limit for
   one.  */
#define CHUNK (4u << 20)

struct run {
  const struct kiln_config *cfg;
  const struct run_opts *o;
  struct front *front;
  struct loop *loop;
  char *code; /* the script */
  size_t len;
  char *argv_code; /* the cell that sets sys.argv */
  bool has_wd;
  struct workdir wd;
  char sid[40]; /* "" until the first reply names the session */
  uint8_t *chunk;

  /* Copying in: the entry of WD being copied, and for a file its fd
     and how much of it has gone.  */
  size_t next;
  int in_fd;
  uint64_t in_off, in_total;
  bool in_started;

  /* Copying out: the directories /work held before the script (sorted),
     the files of /work after it, the one being copied, and the bytes
     copied so far.  */
  char **dirs_before;
  size_t ndirs_before;
  char **outs;
  size_t nouts, next_out;
  struct wd_out out;
  bool out_open;
  uint64_t out_off, out_total;
  bool keep_failed;

  int status; /* -1 until the run is over */
};

static int
compare_paths(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
finish(struct run *r, int status)
{
  r->status = status;
  loop_stop(r->loop);
}

static const char *
sid_or_null(const struct run *r)
{
  return r->sid[0] ? r->sid : NULL;
}

static void
note_session(struct run *r, const char *sid)
{
  if (!r->sid[0] && sid)
    snprintf(r->sid, sizeof r->sid, "%s", sid);
}

/* Reads the script from FD (at most MAX bytes); NAME is for messages.  */
static char *
read_script(int fd, const char *name, size_t max, size_t *len, kiln_error_t *err)
{
  struct stat st;
  if (fstat(fd, &st) < 0) {
    kiln_error_make(err, errno, "%s", name);
    return NULL;
  }
  if (S_ISDIR(st.st_mode)) {
    kiln_error_make(err, 0, "%s is a directory, not a script", name);
    return NULL;
  }
  struct buf b = { 0 };
  char tmp[65536];
  for (;;) {
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      kiln_error_make(err, errno, "%s", name);
      buf_free(&b);
      return NULL;
    }
    if (n == 0)
      break;
    if (b.len + (size_t)n > max) {
      kiln_error_make(err, 0, "%s is larger than %zu bytes (--max-code)", name, max);
      buf_free(&b);
      return NULL;
    }
    buf_append(&b, tmp, (size_t)n);
  }
  *len = b.len;
  buf_append(&b, "", 1);
  return (char *)b.data;
}

/* Appends S to B as a Python bytes literal.  */
static void
put_bytes_literal(struct buf *b, const char *s)
{
  buf_append(b, "b'", 2);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p >= 0x20 && *p < 0x7f && *p != '\\' && *p != '\'')
      buf_append(b, p, 1);
    else {
      char esc[5];
      snprintf(esc, sizeof esc, "\\x%02x", *p);
      buf_append(b, esc, 4);
    }
  }
  buf_append(b, "'", 1);
}

/* The cell that sets sys.argv: the script's name and arguments as the
   shell passed them, decoded as Python decodes its own command line.
   It leaves no name behind in the session's globals.  */
static char *
argv_cell(const struct run_opts *o)
{
  static const char head[] = "__import__('sys').argv = [";
  struct buf b = { 0 };
  buf_append(&b, head, strlen(head));
  for (int i = -1; i < o->nargs; i++) {
    static const char dec[] = "__import__('os').fsdecode(";
    buf_append(&b, dec, strlen(dec));
    put_bytes_literal(&b, i < 0 ? o->script : o->args[i]);
    buf_append(&b, "), ", 3);
  }
  buf_append(&b, "]\n", 3);
  return (char *)b.data;
}

struct run *
run_prepare(const struct kiln_config *cfg, const struct run_opts *o, kiln_error_t *err)
{
  struct run *r = xzalloc(sizeof *r);
  r->cfg = cfg;
  r->o = o;
  r->in_fd = -1;
  r->status = -1;
  r->wd.fd = -1;
  bool from_stdin = strcmp(o->script, "-") == 0;
  int fd = from_stdin ? STDIN_FILENO : open(o->script, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    kiln_error_make(err, errno, "%s", o->script);
    run_free(r);
    return NULL;
  }
  r->code = read_script(fd, from_stdin ? "standard input" : o->script, cfg->max_code, &r->len, err);
  if (!from_stdin)
    close(fd);
  if (r->code == NULL) {
    run_free(r);
    return NULL;
  }
  r->argv_code = argv_cell(o);
  if (o->workdir) {
    r->has_wd = true;
    if (wd_scan(&r->wd, o->workdir, cfg->work_size, stderr, err) < 0) {
      run_free(r);
      return NULL;
    }
  }
  r->chunk = xmalloc(CHUNK);
  return r;
}

/* The script's output and error, as `python script.py` would show them.  */
static void
print_reply(const struct cell_reply *c)
{
  fwrite(c->out, 1, c->out_len, stdout);
  fflush(stdout);
  fwrite(c->err, 1, c->err_len, stderr);
  if (c->err_type) {
    if (c->err_traceback && c->err_traceback[0])
      fputs(c->err_traceback, stderr);
    else
      fprintf(stderr, "%s: %s\n", c->err_type, c->err_message ? c->err_message : "");
    if (c->notice)
      fprintf(stderr, "kiln: %s\n", c->notice);
  }
}

static int
exit_status(const struct cell_reply *c)
{
  int code;
  switch (c->status) {
  case REPLY_OK:
    return 0;
  case REPLY_INTERRUPTED:
    return 124;
  case REPLY_KILLED:
    return 137;
  case REPLY_CRASHED:
    return RUN_EXIT_CRASHED;
  default:
    code = 1;
    /* A script's own exit status: the worker's message for a failing
       SystemExit starts with it (a successful one is REPLY_OK).  */
    if (c->err_type && strcmp(c->err_type, "SystemExit") == 0 && c->err_message
        && sscanf(c->err_message, "exit status %d:", &code) != 1)
      code = 1;
    return code;
  }
}

static void run_argv(struct run *r);
static void before_script(struct run *r);
static void run_script_cell(struct run *r);
static void copy_out(struct run *r);
static void copy_out_done(struct run *r);

/* --- 1. Copying --workdir in ------------------------------------------ */

static void copy_in_next(struct run *r);

static void
copy_in_failed(struct run *r, const char *message)
{
  const struct wd_entry *e = &r->wd.entries[r->next];
  fprintf(stderr, "kiln: --workdir: cannot copy %s/%s into /work: %s\n", r->wd.name, e->path,
          message);
  finish(r, RUN_EXIT_USAGE);
}

static void
on_copied(void *ctx, const struct file_reply *fr)
{
  struct run *r = ctx;
  note_session(r, fr->session_id);
  if (fr->status != 0) {
    copy_in_failed(r, fr->status == ENOSPC ? "no space left in /work (--work-size)"
                      : fr->message        ? fr->message
                                           : strerror(fr->status));
    return;
  }
  if (r->wd.entries[r->next].dir)
    r->next++;
  copy_in_next(r);
}

static void
copy_in_next(struct run *r)
{
  kiln_error_t err = NULL;
  for (;;) {
    if (r->next == r->wd.n) {
      run_argv(r);
      return;
    }
    const struct wd_entry *e = &r->wd.entries[r->next];
    int64_t h = -1;
    if (e->dir)
      h = front_file_op(r->front, sid_or_null(r), FRONT_FILE_MKDIR, e->path, strlen(e->path), NULL,
                        0, 0, on_copied, r, &err);
    else {
      if (r->in_fd < 0) {
        if ((r->in_fd = wd_open_file(&r->wd, e->path, &err)) < 0)
          break;
        r->in_off = 0;
        r->in_started = false;
      }
      ssize_t n;
      do
        n = read(r->in_fd, r->chunk, CHUNK);
      while (n < 0 && errno == EINTR);
      if (n < 0) {
        kiln_error_make(&err, errno, "read");
        break;
      }
      if (n == 0 && r->in_started) {
        close(steal_fd(&r->in_fd));
        r->next++;
        continue;
      }
      /* The file may have grown since DIR was listed.  */
      r->in_total += (uint64_t)n;
      if (r->in_total > r->cfg->work_size) {
        kiln_error_make(&err, 0, "more than the session's /work holds (--work-size)");
        break;
      }
      h = front_file_op_at(r->front, sid_or_null(r), FRONT_FILE_WRITE, e->path, strlen(e->path),
                           r->in_off, r->chunk, (size_t)n, 0, on_copied, r, &err);
      r->in_off += (uint64_t)n;
      r->in_started = true;
    }
    if (h < 0)
      break;
    return;
  }
  copy_in_failed(r, err->msg);
  kiln_error_release(&err);
}

/* --- 2. and 4. The cells ---------------------------------------------- */

static void
on_script_done(void *ctx, const struct cell_reply *c)
{
  struct run *r = ctx;
  print_reply(c);
  r->status = exit_status(c);
  if (!r->o->keep) {
    finish(r, r->status);
    return;
  }
  /* A worker that was killed or died took its /work with it; a new
     worker would list an empty one.  */
  if (c->status == REPLY_KILLED || c->status == REPLY_CRASHED || c->state_lost) {
    fprintf(stderr, "kiln: --keep: /work was lost with the worker; nothing was copied back\n");
    r->keep_failed = true;
    copy_out_done(r);
    return;
  }
  copy_out(r);
}

static void
run_script_cell(struct run *r)
{
  kiln_error_t err = NULL;
  if (front_run_cell(r->front, r->sid, r->code, r->len, 0, on_script_done, r, &err) < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    kiln_error_release(&err);
    finish(r, RUN_EXIT_USAGE);
  }
}

static void
on_argv_done(void *ctx, const struct cell_reply *c)
{
  struct run *r = ctx;
  note_session(r, c->session_id);
  if (c->status != REPLY_OK) {
    print_reply(c);
    fprintf(stderr, "kiln: could not set sys.argv\n");
    finish(r, c->status == REPLY_CRASHED ? RUN_EXIT_CRASHED : RUN_EXIT_USAGE);
    return;
  }
  before_script(r);
}

static void
run_argv(struct run *r)
{
  kiln_error_t err = NULL;
  if (front_run_cell(r->front, sid_or_null(r), r->argv_code, strlen(r->argv_code), 0, on_argv_done,
                     r, &err)
      < 0) {
    fprintf(stderr, "kiln: %s\n", err->msg);
    kiln_error_release(&err);
    finish(r, RUN_EXIT_USAGE);
  }
}

/* --- 3. What /work holds before the script ---------------------------- */

static void
on_baseline(void *ctx, const struct file_reply *fr)
{
  struct run *r = ctx;
  note_session(r, fr->session_id);
  if (fr->status != 0) {
    fprintf(stderr, "kiln: --keep: cannot list /work: %s\n",
            fr->message ? fr->message : strerror(fr->status));
    finish(r, RUN_EXIT_USAGE);
    return;
  }
  for (size_t i = 0; i < fr->nentries; i++)
    if (fr->entries[i].kind == 'd') {
      r->dirs_before = xrealloc(r->dirs_before, (r->ndirs_before + 1) * sizeof *r->dirs_before);
      r->dirs_before[r->ndirs_before++] = xstrdup(fr->entries[i].path);
    }
  if (r->ndirs_before > 1)
    qsort(r->dirs_before, r->ndirs_before, sizeof *r->dirs_before, compare_paths);
  run_script_cell(r);
}

/* Lists /work before the script runs, when --keep will need it, then
   goes on to the cells.  */
static void
before_script(struct run *r)
{
  if (!r->o->keep) {
    run_script_cell(r);
    return;
  }
  kiln_error_t err = NULL;
  if (front_file_op(r->front, r->sid, FRONT_FILE_LIST, "", 0, NULL, 0, 0, on_baseline, r, &err)
      < 0) {
    fprintf(stderr, "kiln: --keep: cannot list /work: %s\n", err->msg);
    kiln_error_release(&err);
    finish(r, RUN_EXIT_USAGE);
  }
}

/* --- 5. Copying /work back out ------------------------------------- */

static void copy_out_next(struct run *r);

/* Ends the copy back: the script's status stands, unless it succeeded
   and something could not be copied.  */
static void
copy_out_done(struct run *r)
{
  if (r->keep_failed)
    fprintf(stderr, "kiln: --keep: not everything in /work was copied back into %s\n", r->wd.name);
  finish(r, r->keep_failed && r->status == 0 ? RUN_EXIT_KEEP : r->status);
}

static void
keep_warn(struct run *r, const char *path, const char *why)
{
  fprintf(stderr, "kiln: --keep: /work/%s: %s\n", path, why);
  r->keep_failed = true;
}

static void
on_part(void *ctx, const struct file_reply *fr)
{
  struct run *r = ctx;
  const char *path = r->outs[r->next_out];
  kiln_error_t err = NULL;
  bool failed = fr->status != 0;
  if (failed)
    keep_warn(r, path, fr->message ? fr->message : strerror(fr->status));
  else if (r->out_total + fr->len > r->cfg->work_size) {
    /* More than /work can hold: the worker is not telling the truth.  */
    keep_warn(r, path, "more bytes than the session's /work holds; copying stopped");
    wd_out_close(&r->out, false, NULL, NULL);
    r->out_open = false;
    copy_out_done(r);
    return;
  } else if (wd_out_write(&r->out, fr->data, fr->len, &err) < 0) {
    keep_warn(r, path, err->msg);
    kiln_error_release(&err);
    failed = true;
  }
  if (!failed) {
    r->out_off += fr->len;
    r->out_total += fr->len;
    if (fr->len > 0 && r->out_off < fr->size) {
      copy_out_next(r);
      return;
    }
  }
  bool changed = false;
  if (wd_out_close(&r->out, !failed, &changed, &err) < 0) {
    keep_warn(r, path, err->msg);
    kiln_error_release(&err);
  }
  r->out_open = false;
  r->next_out++;
  copy_out_next(r);
}

static void
copy_out_next(struct run *r)
{
  kiln_error_t err = NULL;
  while (!r->out_open) {
    if (r->next_out == r->nouts) {
      copy_out_done(r);
      return;
    }
    if (wd_out_open(&r->wd, r->outs[r->next_out], &r->out, &err) < 0) {
      keep_warn(r, r->outs[r->next_out], err->msg);
      kiln_error_release(&err);
      r->next_out++;
      continue;
    }
    r->out_open = true;
    r->out_off = 0;
  }
  const char *path = r->outs[r->next_out];
  if (front_file_op_at(r->front, r->sid, FRONT_FILE_READ_PART, path, strlen(path), r->out_off, NULL,
                       0, CHUNK, on_part, r, &err)
      < 0) {
    keep_warn(r, path, err->msg);
    kiln_error_release(&err);
    wd_out_close(&r->out, false, NULL, NULL);
    r->out_open = false;
    r->next_out++;
    copy_out_next(r);
  }
}

static void
on_listing(void *ctx, const struct file_reply *fr)
{
  struct run *r = ctx;
  if (fr->status != 0) {
    fprintf(stderr, "kiln: --keep: cannot list /work: %s\n",
            fr->message ? fr->message : strerror(fr->status));
    r->keep_failed = true;
    copy_out_done(r);
    return;
  }
  if (fr->truncated)
    keep_warn(r, "", "the listing of /work stopped at its limit of entries, bytes or depth");
  kiln_error_t err = NULL;
  for (size_t i = 0; i < fr->nentries; i++) {
    const struct file_entry *e = &fr->entries[i];
    if (!rec_path_ok(e->path, strlen(e->path), false)) {
      keep_warn(r, e->path, "not a path kiln writes into --workdir");
      continue;
    }
    /* Only what the script could have made as data comes back: a
       symlink would point anywhere on the host, a device or a pipe is
       not a file to keep.  */
    if (e->kind == 'l') {
      fprintf(stderr,
              "kiln: --keep: skipping /work/%s: it is a symlink, and only regular files "
              "and directories are copied back\n",
              e->path);
      continue;
    }
    if (e->kind != 'f' && e->kind != 'd') {
      fprintf(stderr,
              "kiln: --keep: refusing /work/%s: it is a special file, and only regular "
              "files and directories are copied back\n",
              e->path);
      continue;
    }
    if (e->kind == 'd') {
      /* Directories /work held before the script are not the script's:
         those of DIR are there already, and those kiln made to mount
         its own trees on (a host whose Python lives under /work) are
         not to be made in DIR.  */
      const char *key = e->path;
      if (r->ndirs_before
          && bsearch(&key, r->dirs_before, r->ndirs_before, sizeof *r->dirs_before, compare_paths))
        continue;
      if (wd_mkdir(&r->wd, e->path, &err) < 0) {
        keep_warn(r, e->path, err->msg);
        kiln_error_release(&err);
      }
      continue;
    }
    r->outs = xrealloc(r->outs, (r->nouts + 1) * sizeof *r->outs);
    r->outs[r->nouts++] = xstrdup(e->path);
  }
  copy_out_next(r);
}

static void
copy_out(struct run *r)
{
  kiln_error_t err = NULL;
  if (front_file_op(r->front, r->sid, FRONT_FILE_LIST, "", 0, NULL, 0, 0, on_listing, r, &err)
      < 0) {
    fprintf(stderr, "kiln: --keep: cannot list /work: %s\n", err->msg);
    kiln_error_release(&err);
    r->keep_failed = true;
    copy_out_done(r);
  }
}

void
run_start(struct run *r, struct front *f, struct loop *loop)
{
  r->front = f;
  r->loop = loop;
  if (r->has_wd)
    copy_in_next(r);
  else
    run_argv(r);
}

int
run_status(const struct run *r)
{
  return r->status;
}

void
run_free(struct run *r)
{
  if (r == NULL)
    return;
  if (r->out_open)
    wd_out_close(&r->out, false, NULL, NULL);
  if (r->in_fd >= 0)
    close(r->in_fd);
  for (size_t i = 0; i < r->nouts; i++)
    free(r->outs[i]);
  free(r->outs);
  for (size_t i = 0; i < r->ndirs_before; i++)
    free(r->dirs_before[i]);
  free(r->dirs_before);
  if (r->has_wd)
    wd_free(&r->wd);
  free(r->chunk);
  free(r->code);
  free(r->argv_code);
  free(r);
}
