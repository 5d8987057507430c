/* The host side of `kiln run --workdir DIR [--keep]`: which of DIR's
   files go into the session's /work, and how the files that come back
   are written into DIR.  Nothing here follows a symlink below DIR or
   writes outside it: every path is opened one component at a time,
   beneath DIR, refusing symlinks (openat2 RESOLVE_BENEATH |
   RESOLVE_NO_SYMLINKS).  */
#ifndef KILN_CLI_WORKDIR_H
#define KILN_CLI_WORKDIR_H

#include "error.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* A regular file or a directory of DIR, by its path relative to DIR.  */
struct wd_entry {
  char *path; /* owned */
  bool dir;
  uint64_t size;
};

struct workdir {
  char *name; /* DIR as given, for messages */
  int fd;     /* DIR itself */
  /* Every directory and regular file below DIR, each directory before
     what it holds; BYTES is the files' sizes summed.  */
  struct wd_entry *entries;
  size_t n;
  uint64_t bytes;
};

/* Opens DIR and lists what is to be copied into /work: its regular files
   and directories, recursively.  Symlinks and special files are skipped,
   each with a warning on WARN.  Fails (-1 with ERR) when DIR or one of
   its directories cannot be read, when a path is too long for /work,
   or when the files hold more than MAX_BYTES (the session's /work).  W
   is filled even on failure and freed with wd_free.  */
int wd_scan(struct workdir *w, const char *dir, uint64_t max_bytes, FILE *warn, kiln_error_t *err);

void wd_free(struct workdir *w);

/* Opens the regular file PATH below DIR for reading (a new fd the caller
   closes), or -1 with ERR if it is not one any more.  */
int wd_open_file(const struct workdir *w, const char *path, kiln_error_t *err);

/* Makes the directory PATH below DIR and its parents; one that exists
   already is fine.  -1 with ERR if a symlink or a file is in the way.  */
int wd_mkdir(const struct workdir *w, const char *path, kiln_error_t *err);

/* A file coming back into DIR: written to a temporary file beside its
   place and renamed over it once complete, so that a reader never sees
   half of it and a hard link to the old file is not written through.
   When the file's bytes are those already there, the file in DIR is left
   untouched (its time included).  */
struct wd_out {
  int parent; /* the directory it goes into */
  char *leaf; /* its name there, owned */
  char tmp[32];
  int fd;  /* the temporary file */
  int old; /* the file it replaces, for comparing; -1 if none */
  uint64_t old_size, written;
  bool same; /* the bytes so far are those of OLD */
};

/* Starts writing PATH below DIR, making its parent directories.  Refuses
   (-1 with ERR) when a symlink, a directory or a special file is in the
   way, so that nothing is written but regular files below DIR.  */
int wd_out_open(const struct workdir *w, const char *path, struct wd_out *o, kiln_error_t *err);

/* Appends LEN bytes of DATA.  */
int wd_out_write(struct wd_out *o, const uint8_t *data, size_t len, kiln_error_t *err);

/* Puts the complete file in place (COMMIT), or drops it; frees O's
   resources either way.  *CHANGED says whether DIR changed.  */
int wd_out_close(struct wd_out *o, bool commit, bool *changed, kiln_error_t *err);

#endif
