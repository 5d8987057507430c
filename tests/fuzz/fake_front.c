/* The fake front of the MCP harness (fake_front.h): kiln.h over a table
   of sessions and a queue of accepted requests, answered when the
   harness says, with replies drawn from the fuzzer's bytes.  A promise
   of kiln.h the fake would break aborts with "fake front broke kiln.h",
   never with an oracle's message.  */
#define _GNU_SOURCE
#include "fake_front.h"
#include "log.h"
#include "records.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FAKE_BROKE(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: fake front broke kiln.h: %s\n", __FILE__, __LINE__, #cond);          \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* Sessions open at once at most, and what each keeps.  */
#define MAX_SESSIONS  4
#define MAX_ARTIFACTS 8
#define MAX_KEPT      8
/* The largest write the fake accepts (the real front's frame limit).  */
#define MAX_WRITE (8u << 20)

/* ---------------------------------------------------------------- input */

uint8_t
fin_u8(struct fuzz_in *in)
{
  if (in->n == 0)
    return 0;
  in->n--;
  return *in->p++;
}

uint16_t
fin_u16(struct fuzz_in *in)
{
  uint16_t v = fin_u8(in);
  return (uint16_t)(v | fin_u8(in) << 8);
}

uint32_t
fin_u32(struct fuzz_in *in)
{
  uint32_t v = fin_u16(in);
  return v | (uint32_t)fin_u16(in) << 16;
}

uint64_t
fin_u64(struct fuzz_in *in)
{
  uint64_t v = fin_u32(in);
  return v | (uint64_t)fin_u32(in) << 32;
}

const uint8_t *
fin_bytes(struct fuzz_in *in, size_t n, size_t *len)
{
  const uint8_t *p = in->p;
  *len = n < in->n ? n : in->n;
  in->p += *len;
  in->n -= *len;
  return p;
}

/* Characters a byte outside printable ASCII stands for: controls, the
   widest and narrowest of each UTF-8 length, and those that JSON, URIs
   and the reply's text treat apart.  */
static const char *const odd_chars[] = {
  "\n",
  "\t",
  "\r",
  "\x01",
  "\x1b",
  "\x7f",
  "\xc2\x80",
  "\xc2\xb7",
  "\xc3\xa9",
  "\xdf\xbf",
  "\xe0\xa0\x80",
  "\xe2\x80\x8b",
  "\xe2\x80\xa8",
  "\xe2\x82\xac",
  "\xed\x9f\xbf",
  "\xee\x80\x80",
  "\xef\xbf\xbd",
  "\xef\xbf\xbf",
  "\xf0\x90\x80\x80",
  "\xf0\x9f\x98\x80",
  "\xf4\x8f\xbf\xbf",
  "%",
  "/",
  "\"",
  "\\",
  "[",
  "]",
  "\n\n",
};
#define NODD (sizeof odd_chars / sizeof odd_chars[0])

char *
fake_text(struct fuzz_in *in, size_t len, bool nul_ok, size_t *out_len)
{
  size_t k;
  const uint8_t *seed = fin_bytes(in, len < 64 ? len : 64, &k);
  size_t cap = 64, n = 0;
  char *s = xmalloc(cap);
  do {
    for (size_t i = 0; i < k; i++) {
      uint8_t b = seed[i];
      char one = (char)b;
      const char *c = &one;
      size_t cl = 1;
      if (b == 0 && nul_ok)
        ;
      else if (b < 0x20 || b > 0x7e) {
        c = odd_chars[b % NODD];
        cl = strlen(c);
      }
      if (n + cl + 1 > cap) {
        cap = 2 * (n + cl + 1);
        s = xrealloc(s, cap);
      }
      memcpy(s + n, c, cl);
      n += cl;
    }
  } while (k > 0 && n < len);
  s[n] = '\0';
  FAKE_BROKE(fake_utf8_valid(s, n));
  *out_len = n;
  return s;
}

bool
fake_utf8_valid(const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf)
      len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0)
        lo = 0xa0;
      if (c == 0xed)
        hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0)
        lo = 0x90;
      if (c == 0xf4)
        hi = 0x8f;
    } else
      return false;
    if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
      return false;
    for (size_t j = 2; j < len; j++)
      if (s[i + j] < 0x80 || s[i + j] > 0xbf)
        return false;
    i += len;
  }
  return true;
}

/* A copy of [S, S+N) in an allocation of exactly N bytes (one for N = 0),
   so that reading past what the API says is there is caught.  */
static void *
exact(const void *s, size_t n)
{
  void *p = xmalloc(n ? n : 1);
  if (n)
    memcpy(p, s, n);
  return p;
}

/* ---------------------------------------------------------------- state */

struct watch {
  front_output_cb cb;
  void *ctx;
  uint64_t interval_ms, last_ms;
  size_t max_bytes;
  char *pend[2]; /* valid UTF-8, at most MAX_BYTES each */
  size_t pend_len[2];
  uint64_t skipped[2];
};

struct artifact {
  char name[48];
  const char *mime; /* static */
  uint8_t *data;
  size_t len;
  uint32_t width, height;
};

/* A stream kept for front_cell_output_read.  */
struct kept {
  uint64_t cell;
  int stream;
  char *data; /* NUL-terminated past LEN */
  size_t len;
};

struct session {
  bool open;
  char id[40];
  uint64_t serial; /* creation order: newest is largest */
  uint64_t execution_count;
  struct artifact art[MAX_ARTIFACTS];
  size_t nart;
  struct kept kept[MAX_KEPT];
  size_t nkept;
};

struct request {
  int64_t handle;
  bool cell;
  size_t slot; /* its session's */
  bool new_session;
  front_reply_cb cell_cb;
  front_file_cb file_cb;
  void *ctx;
  enum front_file_op op;
  char *path; /* copied */
  uint8_t *data;
  size_t len;
  uint64_t max_bytes;
  struct watch *watch;
  /* Cancelled from inside one of its own callbacks: whoever made that
     call frees it, and calls nothing more for it.  */
  bool cancelled;
};

struct front {
  /* Where replies are drawn from: the harness's input, or ONCE while a
     call is answered before it returns.  */
  struct fuzz_in *in;
  unsigned mood; /* FAKE_* for the next calls */
  size_t spent;  /* of REPLY_BUDGET, by the reply being drawn */
  uint8_t *once;
  size_t once_len;
  const struct kiln_config *cfg;
  struct fake_hooks hooks;
  struct session s[MAX_SESSIONS];
  struct request **q; /* accepted, in order */
  size_t nq;
  int64_t next_handle;
  uint64_t serial, now_ms;
  const char *packages;
  /* The request whose callback runs, out of the queue or not: a
     front_cancel of it from inside marks it cancelled.  */
  struct request *calling;
};

struct front *
fake_front_new(struct fuzz_in *in, const struct kiln_config *cfg, const struct fake_hooks *hooks)
{
  struct front *f = xzalloc(sizeof *f);
  f->in = in;
  f->cfg = cfg;
  f->hooks = *hooks;
  f->packages = fin_u8(in) & 1 ? "" : "numpy 2.1.3,pandas 2.2.3,matplotlib 3.9.2,pillow 11.0.0";
  return f;
}

static size_t
max_sessions(const struct front *f)
{
  return f->cfg->max_sessions < MAX_SESSIONS ? f->cfg->max_sessions : MAX_SESSIONS;
}

static size_t
open_sessions(const struct front *f)
{
  size_t n = 0;
  for (size_t i = 0; i < MAX_SESSIONS; i++)
    n += f->s[i].open;
  return n;
}

static struct session *
find(struct front *f, const char *id)
{
  for (size_t i = 0; i < MAX_SESSIONS; i++)
    if (f->s[i].open && strcmp(f->s[i].id, id) == 0)
      return &f->s[i];
  return NULL;
}

static size_t
queued_in(const struct front *f, size_t slot)
{
  size_t n = 0;
  for (size_t i = 0; i < f->nq; i++)
    n += f->q[i]->slot == slot;
  return n;
}

/* Makes a session in a free slot: its index, or -1 with ERR at the
   limit.  */
static int
open_session(struct front *f, kiln_error_t *err)
{
  if (open_sessions(f) >= max_sessions(f))
    return kiln_error_make(err, 0,
                           "%zu sessions are open, the limit (--max-sessions); close one with "
                           "close_session",
                           open_sessions(f));
  for (size_t i = 0; i < MAX_SESSIONS; i++)
    if (!f->s[i].open) {
      struct session *s = &f->s[i];
      memset(s, 0, sizeof *s);
      s->open = true;
      s->serial = ++f->serial;
      snprintf(s->id, sizeof s->id, "%016llx",
               (unsigned long long)(s->serial * 0x9e3779b97f4a7c15ull));
      return (int)i;
    }
  return kiln_error_make(err, 0, "no free session slot");
}

static void
free_session(struct session *s)
{
  for (size_t i = 0; i < s->nart; i++)
    free(s->art[i].data);
  for (size_t i = 0; i < s->nkept; i++)
    free(s->kept[i].data);
  memset(s, 0, sizeof *s);
}

static void
free_watch(struct watch *w)
{
  if (w == NULL)
    return;
  free(w->pend[0]);
  free(w->pend[1]);
  free(w);
}

static void
free_request(struct request *r)
{
  free_watch(r->watch);
  free(r->path);
  free(r->data);
  free(r);
}

/* Takes request I out of the queue: from here on nothing can reach it
   but its own answer.  */
static struct request *
unqueue(struct front *f, size_t i)
{
  struct request *r = f->q[i];
  memmove(f->q + i, f->q + i + 1, (f->nq - i - 1) * sizeof *f->q);
  f->nq--;
  return r;
}

static int64_t
enqueue(struct front *f, struct request *r)
{
  r->handle = ++f->next_handle;
  f->q = xrealloc(f->q, (f->nq + 1) * sizeof *f->q);
  f->q[f->nq++] = r;
  return r->handle;
}

/* Reads all of [P, P+N), as the real front copies it: a range that is
   not all there is caught here, in the call that was given it.  */
static void *
take_copy(const void *p, size_t n)
{
  return exact(p, n);
}

/* ---------------------------------------------------------------- watch */

/* Appends DATA to stream STREAM of W, dropping the oldest bytes past
   MAX_BYTES on a character boundary (counted as skipped).  */
static void
watch_feed(struct watch *w, int stream, const char *data, size_t n)
{
  int i = stream - 1;
  w->pend[i] = xrealloc(w->pend[i], w->pend_len[i] + n + 1);
  memcpy(w->pend[i] + w->pend_len[i], data, n);
  w->pend_len[i] += n;
  if (w->pend_len[i] > w->max_bytes) {
    size_t drop = w->pend_len[i] - w->max_bytes;
    while (drop < w->pend_len[i] && ((unsigned char)w->pend[i][drop] & 0xc0) == 0x80)
      drop++;
    memmove(w->pend[i], w->pend[i] + drop, w->pend_len[i] - drop);
    w->pend_len[i] -= drop;
    w->skipped[i] += drop;
  }
}

/* Passes the pending output of R's watch on, when it is due or FORCE
   (before the reply).  Returns false when R was cancelled from inside
   (the caller frees it).  */
static bool
watch_flush(struct front *f, struct request *r, bool force)
{
  struct watch *w = r->watch;
  if (w == NULL || (w->pend_len[0] == 0 && w->pend_len[1] == 0))
    return true;
  if (!force && f->now_ms < w->last_ms + w->interval_ms)
    return true;
  w->last_ms = f->now_ms;
  for (int i = 0; i < 2 && !r->cancelled; i++) {
    if (w->pend_len[i] == 0)
      continue;
    size_t n = w->pend_len[i];
    char *data = exact(w->pend[i], n);
    uint64_t skipped = w->skipped[i];
    w->pend_len[i] = 0;
    w->skipped[i] = 0;
    FAKE_BROKE(n > 0 && n <= w->max_bytes && fake_utf8_valid(data, n));
    struct request *outer = f->calling;
    f->calling = r;
    w->cb(w->ctx, i + 1, data, n, skipped);
    f->calling = outer;
    free(data);
  }
  return !r->cancelled;
}

/* ---------------------------------------------------------------- replies */

/* The bytes of text and blobs one reply or one piece of progress may
   hold in all; past them every text is short.  The real front allows
   far more (megabytes), which would cost the fuzzer time and find
   nothing the sizes below do not.  */
#define REPLY_BUDGET (256u << 10)

/* A length for a text or a blob: mostly a few bytes, sometimes around
   the sizes the MCP layer cuts at (FRONT_OUTPUT_INLINE_MAX, the reply
   budget), sometimes large, within what is left of F's REPLY_BUDGET.  */
static size_t
some_size(struct front *f)
{
  static const size_t sizes[] = { 0, 1, 4095, 4096, 4097, 9000, 20000, 70000 };
  uint8_t b = fin_u8(f->in);
  size_t n = b < 0xf0 ? b % 48u : sizes[b % (sizeof sizes / sizeof sizes[0])];
  if (f->spent + n > REPLY_BUDGET)
    n = b % 48u;
  f->spent += n;
  return n;
}

/* The next bytes of the input as a C string of valid UTF-8
   (allocated).  */
static char *
some_text(struct front *f)
{
  size_t n;
  size_t want = some_size(f);
  return fake_text(f->in, want, false, &n);
}

/* What a reply points to, freed once its callback has returned.  */
struct owned {
  void **p;
  size_t n;
};

static void *
own(struct owned *o, void *p)
{
  o->p = xrealloc(o->p, (o->n + 1) * sizeof *o->p);
  o->p[o->n++] = p;
  return p;
}

static void
release(struct owned *o)
{
  for (size_t i = 0; i < o->n; i++)
    free(o->p[i]);
  free(o->p);
}

static const char *
owned_text(struct owned *o, struct front *f)
{
  return own(o, some_text(f));
}

/* A stream of a cell: valid UTF-8 in an allocation of its exact size.  */
static const char *
stream_text(struct owned *o, struct front *f, size_t *len)
{
  size_t want = some_size(f);
  bool nul_ok = fin_u8(f->in) & 1;
  cleanup_free char *t = fake_text(f->in, want, nul_ok, len);
  return own(o, exact(t, *len));
}

static uint32_t
be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
put_be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Bytes of a file or an image: raw bytes from the input, text, or the
   head of a PNG (with a right or a wrong CRC), JPEG, GIF or WebP; at
   most MAX bytes.  Allocated, of exactly *LEN bytes; NULL for none.  */
static uint8_t *
some_blob(struct front *f, size_t max, size_t *len)
{
  struct fuzz_in *in = f->in;
  uint8_t mode = fin_u8(in);
  if (mode % 8 == 0) {
    *len = 0;
    return NULL;
  }
  size_t want = some_size(f), k;
  const uint8_t *raw = fin_bytes(in, want < 256 ? want : 256, &k);
  uint8_t head[33];
  size_t hl = 0;
  switch (mode % 8) {
  case 1: {
    cleanup_free char *t = fake_text(in, want, false, len);
    if (*len > max)
      *len = max;
    return exact(t, *len);
  }
  case 3:
  case 4: {
    static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    memcpy(head, sig, 8);
    put_be32(head + 8, 13);
    memcpy(head + 12, "IHDR", 4);
    put_be32(head + 16, 1 + fin_u16(in) % 40000);
    put_be32(head + 20, 1 + fin_u16(in) % 40000);
    memcpy(head + 24, "\x08\x06\x00\x00\x00", 5);
    uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), head + 12, 17);
    put_be32(head + 29, mode % 8 == 3 ? crc : crc ^ 1);
    FAKE_BROKE(mode % 8 == 4 || be32(head + 29) == crc);
    hl = 33;
    break;
  }
  case 5:
    memcpy(head, "\xff\xd8\xff\xe0", 4);
    hl = 4;
    break;
  case 6:
    memcpy(head, "GIF89a", 6);
    hl = 6;
    break;
  case 7:
    memcpy(head, "RIFF\0\0\0\0WEBP", 12);
    hl = 12;
    break;
  default:
    break;
  }
  size_t n = hl + (want > hl ? want - hl : 0);
  if (n > max)
    n = max;
  uint8_t *b = xmalloc(n ? n : 1);
  for (size_t i = 0; i < n; i++)
    b[i] = i < hl ? head[i] : k ? raw[(i - hl) % k] : (uint8_t)i;
  *len = n;
  return b;
}

static const char *const image_mimes[] = { "image/png", "image/jpeg", "image/svg+xml" };
static const char *const text_mimes[]
    = { "text/plain", "text/markdown", "text/html", "text/latex", "application/json" };
static const char *const file_paths[]
    = { "data.csv", "out/plot.png", "a b#c?.txt", "%41.txt", "\xc3\xa9t\xc3\xa9/\xe2\x82\xac.md" };

/* Where an output was shown in a stream of N bytes (S): the end
   (SIZE_MAX), a character boundary within it, or past its end (beyond
   kiln.h, on purpose: fake_front.h).  */
static size_t
some_pos(struct fuzz_in *in, const char *s, size_t n)
{
  uint8_t mode = fin_u8(in);
  switch (mode % 6) {
  case 0:
    return SIZE_MAX;
  case 1:
    return 0;
  case 2:
    return n;
  case 3: {
    size_t p = fin_u16(in) % (n + 1);
    while (p > 0 && p < n && ((unsigned char)s[p] & 0xc0) == 0x80)
      p--;
    return p;
  }
  case 4:
    return n + 1 + fin_u16(in);
  default:
    return SIZE_MAX - 1 - fin_u8(in);
  }
}

/* Stores an image of session S as the real front does (the oldest goes
   when the session has too many); returns its name.  */
static const char *
store_artifact(struct front *f, struct session *s, const char *mime, const uint8_t *data,
               size_t len, uint32_t w, uint32_t h)
{
  if (s->nart == MAX_ARTIFACTS) {
    free(s->art[0].data);
    memmove(s->art, s->art + 1, (MAX_ARTIFACTS - 1) * sizeof *s->art);
    s->nart--;
  }
  struct artifact *a = &s->art[s->nart++];
  const char *ext = strcmp(mime, "image/jpeg") == 0      ? "jpg"
                    : strcmp(mime, "image/svg+xml") == 0 ? "svg"
                                                         : "png";
  snprintf(a->name, sizeof a->name, "cell%llu-%llu.%s", (unsigned long long)s->execution_count,
           (unsigned long long)++f->serial, ext);
  a->mime = mime;
  a->data = exact(data, len);
  a->len = len;
  a->width = w;
  a->height = h;
  return a->name;
}

static void
keep(struct session *s, uint64_t cell, int stream, const char *data, size_t len, struct fuzz_in *in)
{
  if (s->nkept == MAX_KEPT) {
    free(s->kept[0].data);
    memmove(s->kept, s->kept + 1, (MAX_KEPT - 1) * sizeof *s->kept);
    s->nkept--;
  }
  /* The kept stream is the whole of it, of which the reply may show
     less; kiln.h does not say it is UTF-8, so a few raw bytes may
     follow.  */
  size_t k;
  const uint8_t *raw = fin_bytes(in, fin_u8(in) % 8, &k);
  struct kept *kp = &s->kept[s->nkept++];
  kp->cell = cell;
  kp->stream = stream;
  kp->len = len + k;
  kp->data = xmalloc(kp->len + 1);
  memcpy(kp->data, data, len);
  memcpy(kp->data + len, raw, k);
  kp->data[kp->len] = '\0';
}

static void
one_output(struct front *f, struct session *s, struct owned *o, struct cell_output *out,
           const char *stdout_text, size_t stdout_len)
{
  struct fuzz_in *in = f->in;
  uint8_t kind = fin_u8(in);
  memset(out, 0, sizeof *out);
  out->out_pos = some_pos(in, stdout_text, stdout_len);
  if (kind % 3 == 0) {
    out->mime = image_mimes[kind / 3 % 3];
    size_t len;
    uint8_t *data = own(o, some_blob(f, SIZE_MAX, &len));
    out->data = data ? data : (const uint8_t *)"";
    out->len = len;
    out->width = fin_u16(in);
    out->height = fin_u16(in);
    out->name
        = own(o, xstrdup(store_artifact(f, s, out->mime, out->data, len, out->width, out->height)));
    out->uri = own(o, xasprintf("kiln://sessions/%s/artifacts/%s", s->id, out->name));
    if (fin_u8(in) & 1) {
      out->inline_data = out->data;
      out->inline_len = len / 2;
      out->inline_width = out->width / 2;
      out->inline_height = out->height / 2;
    }
  } else if (kind % 3 == 1) {
    out->mime = text_mimes[kind / 3 % 5];
    out->name = "";
    size_t len;
    size_t want = some_size(f);
    cleanup_free char *t = fake_text(in, want, true, &len);
    out->data = own(o, exact(t, len));
    out->len = len;
  } else {
    /* A file the cell wrote: its path and size, as the real front
       gives them.  */
    out->mime = FILE_MIME;
    uint8_t which = fin_u8(in) % 8;
    char *path = which < 5 ? xstrdup(file_paths[which]) : some_text(f);
    if (!rec_path_ok(path, strlen(path), false)) {
      free(path);
      path = xstrdup("out.txt");
    }
    out->name = own(o, path);
    out->uri = own(o, xasprintf("kiln://sessions/%s/files/%s", s->id, path));
    out->data = (const uint8_t *)"";
    out->len = fin_u32(in);
  }
}

static bool
valid_cstr(const char *s)
{
  return s == NULL || fake_utf8_valid(s, strlen(s));
}

static void
check_cell_reply(const struct cell_reply *r)
{
  FAKE_BROKE(r->session_id && valid_cstr(r->session_id));
  FAKE_BROKE(r->status <= REPLY_CRASHED && (r->status == REPLY_OK) <= (r->err_type == NULL));
  FAKE_BROKE(valid_cstr(r->result) && valid_cstr(r->err_type) && valid_cstr(r->err_message)
             && valid_cstr(r->err_traceback) && valid_cstr(r->notice));
  FAKE_BROKE(r->out && fake_utf8_valid(r->out, r->out_len));
  FAKE_BROKE(r->err && fake_utf8_valid(r->err, r->err_len));
  for (size_t i = 0; i < r->noutputs; i++) {
    const struct cell_output *o = &r->outputs[i];
    FAKE_BROKE(o->mime && valid_cstr(o->mime) && o->name && valid_cstr(o->name)
               && valid_cstr(o->uri) && o->data);
    if (o->uri == NULL)
      FAKE_BROKE(fake_utf8_valid((const char *)o->data, o->len));
  }
}

/* Answers cell R (out of the queue) and frees it: as a session closed
   under it when CLOSED, else with a reply drawn from the input.  */
static void
answer_cell(struct front *f, struct request *r, bool closed)
{
  struct fuzz_in *in = f->in;
  f->spent = 0;
  struct session *s = &f->s[r->slot];
  struct owned o = { 0 };
  struct cell_reply cr = {
    .session_id = s->id,
    .execution_count = s->execution_count,
    .out = "",
    .err = "",
    .err_lineno = -1,
    .err_offset = -1,
    .new_session = r->new_session,
  };
  if (closed) {
    cr.status = REPLY_ERROR;
    cr.err_type = "SessionClosed";
    cr.err_message = "the session was closed before this cell ran";
    cr.err_traceback = "";
  } else {
    uint8_t d = fin_u8(in);
    cr.status = (enum reply_status)((d & 7) % 5);
    cr.execution_count = ++s->execution_count;
    if (d & 0x08)
      cr.result = owned_text(&o, f);
    cr.out = stream_text(&o, f, &cr.out_len);
    cr.err = stream_text(&o, f, &cr.err_len);
    uint8_t e = fin_u8(in);
    if (e & 1)
      cr.out_dropped = fin_u64(in);
    if (e & 2)
      cr.err_dropped = fin_u64(in);
    if (cr.status != REPLY_OK && !(e & 4)) {
      static const char *const types[]
          = { "ZeroDivisionError", "KeyboardInterrupt", "WorkerCrashed", "SessionClosed" };
      cr.err_type = e & 0x80 ? owned_text(&o, f) : types[e >> 5 & 3];
      cr.err_message = e & 0x10 ? "" : owned_text(&o, f);
      cr.err_traceback = e & 0x08 ? "" : owned_text(&o, f);
      if (e & 0x20)
        cr.err_lineno = fin_u32(in);
      if (e & 0x40)
        cr.err_offset = fin_u16(in);
    }
    uint8_t g = fin_u8(in);
    cr.state_lost = g & 1;
    if (g & 2)
      cr.notice = owned_text(&o, f);
    if (g & 4)
      cr.outputs_dropped = fin_u64(in);
    cr.duration_ms = fin_u32(in) / 1000.0;
    uint8_t n = fin_u8(in);
    cr.noutputs = (n & 0xc0) == 0xc0 ? 58 + n % 12 : n % 4;
    struct cell_output *outs = own(&o, xzalloc((cr.noutputs + 1) * sizeof *outs));
    for (size_t i = 0; i < cr.noutputs; i++)
      one_output(f, s, &o, &outs[i], cr.out, cr.out_len);
    cr.outputs = outs;
    if (g & 8) {
      cr.out_kept = true;
      keep(s, cr.execution_count, 1, cr.out, cr.out_len, in);
    }
    if (g & 16) {
      cr.err_kept = true;
      keep(s, cr.execution_count, 2, cr.err, cr.err_len, in);
    }
  }
  check_cell_reply(&cr);
  /* All the output is passed on before the reply, which a cancel from
     inside the output's callback forgoes.  */
  if (watch_flush(f, r, true)) {
    if (f->hooks.cell_reply)
      f->hooks.cell_reply(f->hooks.hctx, r->ctx, &cr);
    struct request *outer = f->calling;
    f->calling = r;
    r->cell_cb(r->ctx, &cr);
    f->calling = outer;
  }
  release(&o);
  free_request(r);
}

/* Answers file operation R (out of the queue) and frees it: cut short
   by a closed session when CLOSED, else as drawn from the input.  */
static void
answer_file(struct front *f, struct request *r, bool closed)
{
  struct fuzz_in *in = f->in;
  f->spent = 0;
  struct session *s = &f->s[r->slot];
  struct owned o = { 0 };
  struct file_reply fr = { .session_id = s->id, .new_session = r->new_session };
  if (closed) {
    fr.status = EIO;
    fr.message = "the session was closed before this cell ran";
  } else {
    uint8_t d = fin_u8(in);
    if ((d & 3) == 3) {
      static const int errnos[] = { ENOENT, ENOTDIR, EISDIR, EACCES, EFBIG, EIO, ELOOP, EEXIST };
      fr.status = d & 4 ? errnos[d >> 3 & 7] : 1 + fin_u16(in) % 4096;
    }
    if (d & 0x40)
      fr.message = owned_text(&o, f);
    bool read = r->op == FRONT_FILE_READ || r->op == FRONT_FILE_READ_PART;
    if (fr.status == 0 && read) {
      uint8_t *data = own(&o, some_blob(f, r->max_bytes, &fr.len));
      fr.data = data;
      fr.size = d & 0x80 ? fr.len + fin_u32(in) : fr.len;
    }
    if (fr.status == 0 && r->op == FRONT_FILE_LIST) {
      uint8_t n = fin_u8(in);
      fr.nentries = (n & 0xc0) == 0xc0 ? 40 : n % 6;
      struct file_entry *e = own(&o, xzalloc((fr.nentries + 1) * sizeof *e));
      for (size_t i = 0; i < fr.nentries; i++) {
        e[i].kind = "fdlo"[fin_u8(in) % 4];
        e[i].size = fin_u64(in);
        e[i].mtime_ns = (int64_t)fin_u64(in);
        e[i].path = owned_text(&o, f);
      }
      fr.entries = e;
      fr.truncated = n & 0x20;
    }
  }
  FAKE_BROKE(valid_cstr(fr.session_id) && valid_cstr(fr.message));
  FAKE_BROKE(fr.len <= r->max_bytes || fr.data == NULL);
  for (size_t i = 0; i < fr.nentries; i++)
    FAKE_BROKE(strchr("fdlo", fr.entries[i].kind) && fr.entries[i].path
               && valid_cstr(fr.entries[i].path));
  if (f->hooks.file_reply)
    f->hooks.file_reply(f->hooks.hctx, r->ctx, &fr);
  struct request *outer = f->calling;
  f->calling = r;
  r->file_cb(r->ctx, &fr);
  f->calling = outer;
  release(&o);
  free_request(r);
}

static void
answer(struct front *f, struct request *r, bool closed)
{
  if (r->cell)
    answer_cell(f, r, closed);
  else
    answer_file(f, r, closed);
}

/* ---------------------------------------------------------------- kiln.h */

/* Whether the mood says so for this call, and then no longer.  */
static bool
mood(struct front *f, unsigned m)
{
  bool on = f->mood & m;
  f->mood &= ~m;
  return on;
}

/* Answers R, out of the queue, from inside a call of kiln.h, with a
   reply drawn from the bytes fake_front_mood gave.  */
static void
answer_at_once(struct front *f, struct request *r)
{
  struct fuzz_in once = { f->once, f->once_len }, *saved = f->in;
  f->in = &once;
  answer(f, r, false);
  f->in = saved;
}

/* What the real front may do inside any of its calls: log, which its
   log sink tells the clients (notifications/message).  */
static void
enter(struct front *f, const char *fn)
{
  if (mood(f, FAKE_LOGS))
    log_msg(LOG_WARN, "the front logs from inside %s", fn);
}

/* Just after accepting request R (the last queued): the real front may
   answer another request first (a worker found dead when R was sent
   to it answers the cell that was running), or R itself.  */
static void
accepted(struct front *f)
{
  if (f->nq > 1 && mood(f, FAKE_ANSWER_OTHER))
    answer_at_once(f, unqueue(f, 0));
  if (mood(f, FAKE_AT_ONCE))
    answer_at_once(f, unqueue(f, f->nq - 1));
}

int64_t
front_run_cell(struct front *f, const char *session_id, const char *code, size_t len,
               double timeout_s, front_reply_cb cb, void *ctx, kiln_error_t *err)
{
  enter(f, "front_run_cell");
  free(take_copy(code, len));
  if (len > f->cfg->max_code)
    return kiln_error_make(err, 0, "the code is %zu bytes, over the %zu-byte limit (--max-code)",
                           len, f->cfg->max_code);
  if (timeout_s > f->cfg->max_timeout_s)
    return kiln_error_make(err, 0, "timeout_s %g is over the %g s limit (--max-timeout)", timeout_s,
                           f->cfg->max_timeout_s);
  struct session *s = NULL;
  if (session_id) {
    if ((s = find(f, session_id)) == NULL)
      return kiln_error_make(
          err, 0,
          "unknown session '%s' (closed, or never created); omit session_id to start a new "
          "session",
          session_id);
    if (queued_in(f, (size_t)(s - f->s)) >= f->cfg->max_queued)
      return kiln_error_make(err, 0, "session %s already has %zu cells waiting (--max-queued)",
                             s->id, queued_in(f, (size_t)(s - f->s)));
  }
  if (mood(f, FAKE_REFUSE))
    return kiln_error_make(err, 0, "the front is out of workers: try again later");
  int slot = s ? (int)(s - f->s) : open_session(f, err);
  if (slot < 0)
    return -1;
  struct request *r = xzalloc(sizeof *r);
  r->cell = true;
  r->slot = (size_t)slot;
  r->new_session = s == NULL;
  r->cell_cb = cb;
  r->ctx = ctx;
  int64_t h = enqueue(f, r);
  accepted(f);
  return h;
}

int64_t
front_run_shell(struct front *f, const char *session_id, const char *command, size_t len,
                const char *workdir, double timeout_s, front_reply_cb cb, void *ctx,
                kiln_error_t *err)
{
  /* As a cell, for the server: the same queue, the same replies.  A
     workdir that leaves /work is refused, as the real front refuses it.  */
  if (workdir && (workdir[0] == '/' || strstr(workdir, "..")))
    return kiln_error_make(err, 0, "workdir '%s' is not a directory under /work", workdir);
  return front_run_cell(f, session_id, command, len, timeout_s, cb, ctx, err);
}

int64_t
front_history(struct front *f, const char *session_id, int64_t before, size_t limit,
              front_history_cb cb, void *ctx, kiln_error_t *err)
{
  enter(f, "front_history");
  struct session *s = find(f, session_id);
  if (s == NULL || mood(f, FAKE_REFUSE))
    return kiln_error_make(err, 0, "no history for '%s'", session_id);
  /* One row per cell run, ids 1..N, newest first below BEFORE.  */
  int64_t top = before > 0 && (uint64_t)before <= s->execution_count + 1
                    ? before - 1
                    : (int64_t)s->execution_count;
  size_t n = 0;
  for (int64_t id = top; id >= 1 && n < limit; id--, n++) {
    struct history_entry e = {
      .id = id,
      .session_id = s->id,
      .execution_count = (uint64_t)id,
      .kind = id % 3 ? "python" : "shell",
      .code = "print(1)\n\xc3\xa9",
      .code_len = 11,
      .started_ms = 1700000000000 + id,
      .duration_ms = 1.5,
      .status = id % 2 ? "ok" : "error",
      .error_type = id % 2 ? NULL : "ValueError",
      .stdout_bytes = 2,
      .artifacts = id % 4 ? "" : "cell1-1.png,cell1-2.png",
    };
    cb(ctx, &e);
  }
  return top - (int64_t)n >= 1 ? top - (int64_t)n + 1 : 0;
}

int64_t
front_install_packages(struct front *f, const char *session_id, const char *const *specs, size_t n,
                       front_install_cb cb, void *ctx, kiln_error_t *err)
{
  /* Answered at once, alternately a success naming every requirement
     and a failure with a log, so that both replies are built from
     whatever the fuzzer sent.  */
  enter(f, "front_install_packages");
  struct session *s = find(f, session_id);
  if (s == NULL || mood(f, FAKE_REFUSE))
    return kiln_error_make(err, 0, "unknown session '%s'", session_id ? session_id : "");
  struct buf b = { 0 };
  for (size_t i = 0; i < n; i++) {
    if (i)
      buf_append(&b, ", ", 2);
    buf_append(&b, specs[i], strlen(specs[i]));
  }
  buf_append(&b, "", 1);
  bool ok = n % 2 == 1;
  struct install_reply r = {
    .session_id = s->id,
    .ok = ok,
    .message = ok ? NULL : "pip failed (exit status 1)",
    .log = ok ? NULL : (const char *)b.data,
    .installed = ok ? (const char *)b.data : "",
    .duration_ms = 3.5,
  };
  cb(ctx, &r);
  buf_free(&b);
  return ++f->next_handle;
}

size_t
front_hibernate_all(struct front *f, double timeout_s)
{
  return 0;
}

int
front_watch_output(struct front *f, int64_t handle, int interval_ms, size_t max_bytes,
                   front_output_cb cb, void *ctx)
{
  enter(f, "front_watch_output");
  for (size_t i = 0; i < f->nq; i++) {
    struct request *r = f->q[i];
    if (r->handle != handle)
      continue;
    if (!r->cell || r->watch)
      return -1;
    struct watch *w = xzalloc(sizeof *w);
    w->cb = cb;
    w->ctx = ctx;
    w->interval_ms = interval_ms > 0 ? (uint64_t)interval_ms : 0;
    w->max_bytes = max_bytes > 0 ? max_bytes : 1;
    w->last_ms = f->now_ms;
    r->watch = w;
    return 0;
  }
  return -1;
}

int64_t
front_file_op(struct front *f, const char *session_id, enum front_file_op op, const char *path,
              size_t path_len, const uint8_t *data, size_t len, uint64_t max_bytes,
              front_file_cb cb, void *ctx, kiln_error_t *err)
{
  return front_file_op_at(f, session_id, op, path, path_len, 0, data, len, max_bytes, cb, ctx, err);
}

int64_t
front_file_op_at(struct front *f, const char *session_id, enum front_file_op op, const char *path,
                 size_t path_len, uint64_t offset, const uint8_t *data, size_t len,
                 uint64_t max_bytes, front_file_cb cb, void *ctx, kiln_error_t *err)
{
  enter(f, "front_file_op_at");
  char *p = take_copy(path, path_len);
  uint8_t *copy = take_copy(data, len);
  struct session *s = NULL;
  int64_t h = -1;
  if (session_id) {
    if ((s = find(f, session_id)) == NULL) {
      kiln_error_make(err, 0, "unknown session '%s'", session_id);
      goto refused;
    }
  } else if (op != FRONT_FILE_WRITE && op != FRONT_FILE_MKDIR) {
    kiln_error_make(err, 0, "a session_id is needed to list or read files");
    goto refused;
  }
  if (!rec_path_ok(path, path_len, op == FRONT_FILE_LIST)) {
    kiln_error_make(err, 0,
                    "a path that is not under /work: use a relative path without '..', '.' or "
                    "empty parts");
    goto refused;
  }
  if (offset > 0 && op != FRONT_FILE_WRITE && op != FRONT_FILE_READ_PART) {
    kiln_error_make(err, 0, "an offset is only for writing or reading part of a file");
    goto refused;
  }
  if (op == FRONT_FILE_WRITE && len > MAX_WRITE) {
    kiln_error_make(err, 0, "%zu bytes is over the %u-byte limit of one write", len, MAX_WRITE);
    goto refused;
  }
  if (s && queued_in(f, (size_t)(s - f->s)) >= f->cfg->max_queued) {
    kiln_error_make(err, 0, "session %s already has %zu requests waiting (--max-queued)", s->id,
                    queued_in(f, (size_t)(s - f->s)));
    goto refused;
  }
  if (mood(f, FAKE_REFUSE)) {
    kiln_error_make(err, 0, "the front is out of workers: try again later");
    goto refused;
  }
  int slot = s ? (int)(s - f->s) : open_session(f, err);
  if (slot < 0)
    goto refused;
  struct request *r = xzalloc(sizeof *r);
  r->slot = (size_t)slot;
  r->new_session = s == NULL;
  r->file_cb = cb;
  r->ctx = ctx;
  r->op = op;
  r->path = p;
  r->data = copy;
  r->len = len;
  r->max_bytes = max_bytes;
  h = enqueue(f, r);
  accepted(f);
  return h;
refused:
  free(p);
  free(copy);
  return -1;
}

const char *
front_packages(const struct front *f)
{
  return f->packages;
}

void
front_cancel(struct front *f, int64_t handle)
{
  enter(f, "front_cancel");
  if (f->calling && f->calling->handle == handle)
    f->calling->cancelled = true;
  for (size_t i = 0; i < f->nq; i++)
    if (f->q[i]->handle == handle) {
      struct request *r = unqueue(f, i);
      if (r != f->calling)
        free_request(r);
      return;
    }
}

int
front_close_session(struct front *f, const char *session_id, kiln_error_t *err)
{
  enter(f, "front_close_session");
  struct session *s = find(f, session_id);
  if (s == NULL)
    return kiln_error_make(err, 0, "unknown session '%s'", session_id);
  size_t slot = (size_t)(s - f->s);
  /* Its requests are answered from inside this call, one at a time, so
     that whatever a callback does to the queue is seen by the next.  */
  for (;;) {
    size_t i = 0;
    while (i < f->nq && f->q[i]->slot != slot)
      i++;
    if (i == f->nq)
      break;
    answer(f, unqueue(f, i), true);
  }
  free_session(s);
  return 0;
}

uint8_t *
front_artifact_read(struct front *f, const char *session_id, const char *name, const char **mime,
                    size_t *len, kiln_error_t *err)
{
  enter(f, "front_artifact_read");
  struct session *s = find(f, session_id);
  if (s == NULL) {
    kiln_error_make(err, 0, "unknown session '%s'", session_id);
    return NULL;
  }
  for (size_t i = 0; i < s->nart; i++)
    if (strcmp(s->art[i].name, name) == 0) {
      if (mood(f, FAKE_UNREADABLE)) {
        kiln_error_make(err, EIO, "cannot read image %s", name);
        return NULL;
      }
      *mime = s->art[i].mime;
      *len = s->art[i].len;
      return exact(s->art[i].data, s->art[i].len);
    }
  kiln_error_make(err, 0, "session %s has no artifact '%s'; it may have been evicted", session_id,
                  name);
  return NULL;
}

char *
front_cell_output_read(struct front *f, const char *session_id, uint64_t cell, int stream,
                       size_t *len, kiln_error_t *err)
{
  enter(f, "front_cell_output_read");
  struct session *s = find(f, session_id);
  if (s == NULL)
    return kiln_error_make(err, 0, "unknown session '%s'", session_id), NULL;
  if (stream != 1 && stream != 2)
    return kiln_error_make(err, 0, "no such stream"), NULL;
  for (size_t i = 0; i < s->nkept; i++)
    if (s->kept[i].cell == cell && s->kept[i].stream == stream) {
      *len = s->kept[i].len;
      return exact(s->kept[i].data, s->kept[i].len + 1);
    }
  return kiln_error_make(err, 0, "cell %llu of session %s has no output kept",
                         (unsigned long long)cell, s->id),
         NULL;
}

void
front_each_artifact(struct front *f,
                    void (*fn)(void *ctx, const char *session_id, const char *name,
                               const char *mime, size_t size, uint32_t width, uint32_t height),
                    void *ctx)
{
  enter(f, "front_each_artifact");
  /* Newest session first.  */
  uint64_t below = UINT64_MAX;
  for (;;) {
    struct session *s = NULL;
    for (size_t i = 0; i < MAX_SESSIONS; i++)
      if (f->s[i].open && f->s[i].serial < below && (s == NULL || f->s[i].serial > s->serial))
        s = &f->s[i];
    if (s == NULL)
      return;
    below = s->serial;
    for (size_t i = 0; i < s->nart; i++)
      fn(ctx, s->id, s->art[i].name, s->art[i].mime, s->art[i].len, s->art[i].width,
         s->art[i].height);
  }
}

struct session_info *
front_list_sessions(struct front *f, size_t *n)
{
  enter(f, "front_list_sessions");
  struct session_info *v = xzalloc(MAX_SESSIONS * sizeof *v);
  size_t k = 0;
  for (size_t i = 0; i < MAX_SESSIONS; i++) {
    struct session *s = &f->s[i];
    if (!s->open)
      continue;
    size_t queued = queued_in(f, i);
    snprintf(v[k].session_id, sizeof v[k].session_id, "%s", s->id);
    v[k].state = queued ? "running" : "idle";
    v[k].pid = queued ? (pid_t)(1000 + i) : 0;
    v[k].execution_count = s->execution_count;
    v[k].queued = queued;
    v[k].created_at = (time_t)(1700000000 + s->serial);
    v[k].last_used_at = (time_t)(1700000000 + f->serial);
    k++;
  }
  *n = k;
  return v;
}

void
front_free(struct front *f)
{
  if (f == NULL)
    return;
  free(f->once);
  while (f->nq)
    free_request(unqueue(f, 0));
  free(f->q);
  for (size_t i = 0; i < MAX_SESSIONS; i++)
    free_session(&f->s[i]);
  free(f);
}

/* ---------------------------------------------------------------- harness */

void
fake_front_mood(struct front *f, unsigned m, const uint8_t *reply, size_t len)
{
  f->mood = m;
  free(f->once);
  f->once = exact(reply, len);
  f->once_len = len;
}

size_t
fake_front_pending(const struct front *f)
{
  return f->nq;
}

void
fake_front_answer(struct front *f, size_t i)
{
  if (f->nq)
    answer(f, unqueue(f, i % f->nq), false);
}

void
fake_front_output(struct front *f, size_t i, uint32_t ms)
{
  f->now_ms += ms;
  size_t nw = 0;
  for (size_t k = 0; k < f->nq; k++)
    nw += f->q[k]->watch != NULL;
  if (nw > 0) {
    struct request *r = NULL;
    for (size_t k = 0, seen = 0; k < f->nq && r == NULL; k++)
      if (f->q[k]->watch && seen++ == i % nw)
        r = f->q[k];
    int stream = 1 + (fin_u8(f->in) & 1);
    size_t len;
    f->spent = 0;
    size_t want = some_size(f);
    cleanup_free char *chunk = fake_text(f->in, want, true, &len);
    if (len)
      watch_feed(r->watch, stream, chunk, len);
  }
  /* Whatever is due is passed on, a request at a time: the queue is
     looked at again after each, as a callback may have changed it.  */
  for (size_t k = 0; k < f->nq; k++) {
    struct request *r = f->q[k];
    struct watch *w = r->watch;
    if (w && (w->pend_len[0] || w->pend_len[1]) && f->now_ms >= w->last_ms + w->interval_ms) {
      if (!watch_flush(f, r, false))
        free_request(r);
      k = (size_t)-1;
    }
  }
}

static size_t
open_slot(const struct front *f, size_t i)
{
  size_t n = open_sessions(f);
  if (n == 0)
    return MAX_SESSIONS;
  i %= n;
  for (size_t k = 0; k < MAX_SESSIONS; k++)
    if (f->s[k].open && i-- == 0)
      return k;
  return MAX_SESSIONS;
}

const char *
fake_front_session(const struct front *f, size_t i)
{
  size_t k = open_slot(f, i);
  return k < MAX_SESSIONS ? f->s[k].id : NULL;
}

const char *
fake_front_artifact(const struct front *f, size_t i, size_t j)
{
  size_t k = open_slot(f, i);
  if (k == MAX_SESSIONS || f->s[k].nart == 0)
    return NULL;
  return f->s[k].art[j % f->s[k].nart].name;
}

uint64_t
fake_front_cells(const struct front *f, size_t i)
{
  size_t k = open_slot(f, i);
  return k < MAX_SESSIONS ? f->s[k].execution_count : 0;
}

void
front_metrics(struct front *f, struct front_metrics *out)
{
  /* Nothing is counted here: /metrics renders zeros, which is all the
     HTTP harness needs of it.  */
  *out = (struct front_metrics){ 0 };
}
