/* The records carried inside frame fields, with their encoders (used by
   the worker) and decoders (used by the front, which trusts none of it):

     outputs  (TAG_OUTPUTS)  what a cell showed: images, rich text, files
     listing  (TAG_LISTING)  a directory listing under /work

   and the rule every path under /work must satisfy on both sides.  A
   decoder stops at the first malformed record and says so: a lying worker
   loses what it sent, nothing more.  */
#ifndef KILN_RECORDS_H
#define KILN_RECORDS_H

#include "error.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether PATH (LEN bytes) is acceptable as a path under /work: relative,
   no NUL, no "." or ".." or empty component, at most REC_PATH_MAX bytes.
   An empty path means /work itself (allowed only where ALLOW_ROOT).  The
   front checks this before asking; the worker checks again.  */
#define REC_PATH_MAX 4096
bool rec_path_ok(const char *path, size_t len, bool allow_root);

/* ---------------------------------------------------------------- outputs

   output := mime_len:u16 name_len:u16 data_len:u32 width:u32 height:u32
             mime name data                                  (little endian)

   MIME "image/png;inline" is the downscaled copy of the image before it;
   MIME REC_FILE_MIME is a file the cell wrote: NAME is its path under
   /work and WIDTH its size.  */
#define REC_OUTPUT_HDR 16
#define REC_FILE_MIME  "application/vnd.kiln.file"

struct rec_output {
  const char *mime; /* borrowed from the record, not NUL-terminated */
  size_t mime_len;
  const char *name;
  size_t name_len;
  const uint8_t *data;
  size_t data_len;
  uint32_t width, height;
};

/* Appends O to B unless B would then exceed MAX bytes: returns 0, or -1
   when it does not fit (B unchanged).  */
int rec_output_put(struct buf *b, const struct rec_output *o, size_t max);

/* Reads the record at *OFF in [P, P+N) into O (pointing into P) and
   advances *OFF.  Returns 1 for a record, 0 at the end, -1 for a
   malformed one.  */
int rec_output_next(const uint8_t *p, size_t n, size_t *off, struct rec_output *o);

/* ---------------------------------------------------------------- display

   FRAME_DISPLAY: one thing a running cell showed (display(), a figure's
   show()), a new content for a display it named (update_display), or
   clear_output.  */
enum display_kind {
  DISPLAY_SHOW = 0,
  DISPLAY_UPDATE = 1, /* needs a DISPLAY_ID */
  DISPLAY_CLEAR = 2,  /* no OUTPUTS */
  DISPLAY_KIND_MAX = 2,
};
/* A display id's bytes at most: IPython's are 32 hex digits; a name a
   cell chose is rarely long.  */
#define REC_DISPLAY_ID_MAX 256

struct frame;
struct rec_display {
  enum display_kind kind;
  const char *display_id; /* borrowed, not NUL-terminated; NULL when none */
  size_t display_id_len;
  bool wait;
  const uint8_t *outputs; /* packed output records, checked whole; NULL when none */
  size_t outputs_len;
};

/* Reads FRAME_DISPLAY F into D (pointing into F's payload).  Returns 0,
   or -1 with ERR when it is malformed: an unknown kind, an id that is
   too long, holds a NUL or is missing from an update, outputs on a
   clear or WAIT on anything else, or an output record that does not
   parse.  */
int rec_display_parse(const struct frame *f, struct rec_display *d, kiln_error_t *err);

/* ---------------------------------------------------------------- listing

   entry := kind:u8 size:u64 mtime_ns:u64 path_len:u16 path

   KIND is 'f' file, 'd' directory, 'l' symlink, 'o' other.  */
#define REC_ENTRY_HDR 19
/* Entries a listing holds at most, how deep it goes, and its bytes: a
   listing past any of them is cut short and says so.  */
#define REC_LIST_MAX_ENTRIES 10000
#define REC_LIST_MAX_DEPTH   16

struct rec_entry {
  char kind;
  uint64_t size;
  uint64_t mtime_ns;
  const char *path; /* borrowed, not NUL-terminated */
  size_t path_len;
};

void rec_entry_put(struct buf *b, const struct rec_entry *e);
/* As rec_output_next, for listing entries (a bad KIND is malformed).  */
int rec_entry_next(const uint8_t *p, size_t n, size_t *off, struct rec_entry *e);

#endif
