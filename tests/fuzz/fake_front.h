/* A fake front for fuzzing the MCP layer: every function of kiln.h that
   mcp/ calls, over a small table of sessions and a queue of the requests
   it accepted, with no zygote or worker behind it and a clock of its
   own that only the harness moves.  What it
   decides — refuse a call, answer one at once, what a reply holds — the
   harness draws from the fuzzer's bytes.

   It keeps kiln.h's promises exactly, so that a failed oracle is mcp/'s
   doing and never the fake's: a callback at most once per accepted
   request and never after front_cancel of its handle (even one called
   from inside the request's own progress callback); refused calls
   call nothing back and make no session; every string it hands over is
   valid UTF-8 where kiln.h says so (checked before it is handed over);
   progress output no longer than the watch's MAX_BYTES, at most once per
   stream per INTERVAL_MS of the fake's clock, all of it before the
   reply; borrowed pointers freed once the callback returns, so that a
   pointer kept past it is a use after free.

   One thing it does beyond kiln.h, on purpose: an output's out_pos may
   lie past the end of the reply's stdout (kiln.h says "into OUT"), as a
   place mcp/ must clamp rather than trust; within stdout it is always
   on a character boundary, as kiln.h says.  */
#ifndef KILN_FUZZ_FAKE_FRONT_H
#define KILN_FUZZ_FAKE_FRONT_H

#include "kiln.h"

#include <stddef.h>
#include <stdint.h>

/* The fuzzer's bytes, read front to back; past the end every read is
   zero, so that an input cut anywhere is still a whole one.  */
struct fuzz_in {
  const uint8_t *p;
  size_t n;
};

uint8_t fin_u8(struct fuzz_in *in);
uint16_t fin_u16(struct fuzz_in *in);
uint32_t fin_u32(struct fuzz_in *in);
uint64_t fin_u64(struct fuzz_in *in);
/* Up to N bytes (fewer at the end), borrowed from IN; their number in
 *LEN.  */
const uint8_t *fin_bytes(struct fuzz_in *in, size_t n, size_t *len);

/* Valid UTF-8 made from the next bytes of IN, one character per byte
   (ASCII, two-, three- and four-byte characters, controls, and NUL when
   NUL_OK), at least MIN and about LEN bytes long (a short input gives
   fewer; a long LEN repeats the bytes read).  Allocated, NUL-terminated
   (past *OUT_LEN); the caller frees it.  */
char *fake_text(struct fuzz_in *in, size_t len, bool nul_ok, size_t *out_len);

/* Whether [S, S+N) is valid UTF-8: checked here apart from
   kernel/base/utf8.c, so that a bug there is not taken for one in mcp/.  */
bool fake_utf8_valid(const char *s, size_t n);

/* What the harness learns as the fake answers: called with the CTX the
   request was made with, just before its callback.  */
struct fake_hooks {
  void (*cell_reply)(void *hctx, void *ctx, const struct cell_reply *r);
  void (*file_reply)(void *hctx, void *ctx, const struct file_reply *r);
  void *hctx;
};

/* A front on IN (borrowed) and CFG (borrowed: max_code, max_timeout_s,
   max_sessions and max_queued apply).  IN is read by fake_front_new (one
   byte) and the fake_front_* calls below, never by a call of kiln.h, so
   that the messages around those calls keep their place in the input:
   what such a call does beyond the real front's rules is set beforehand
   with fake_front_mood.  Free it with front_free.  */
struct front *fake_front_new(struct fuzz_in *in, const struct kiln_config *cfg,
                             const struct fake_hooks *hooks);

/* What the front does in its next calls, each flag once: refuse one it
   would take (as at a limit); answer one it takes before returning its
   handle; answer the oldest other pending request from inside one it
   takes; fail the read of an artifact it has; log from inside the next
   call.  Answers given from inside a call draw their reply from REPLY
   (LEN bytes, copied).  */
enum {
  FAKE_REFUSE = 1,
  FAKE_AT_ONCE = 2,
  FAKE_UNREADABLE = 4,
  FAKE_LOGS = 8,
  FAKE_ANSWER_OTHER = 16,
};
void fake_front_mood(struct front *f, unsigned mood, const uint8_t *reply, size_t len);

/* Requests accepted and neither answered nor cancelled.  */
size_t fake_front_pending(const struct front *f);

/* Answers the pending request I (modulo their number; nothing when none
   is pending) with a reply drawn from the input.  */
void fake_front_answer(struct front *f, size_t i);

/* Output for the watched cell I (modulo their number), drawn from the
   input, after MS milliseconds of the fake's clock.  */
void fake_front_output(struct front *f, size_t i, uint32_t ms);

/* The id of open session I (modulo their number; NULL when none is open)
   and the name of its artifact J (NULL when it has none); borrowed.  */
const char *fake_front_session(const struct front *f, size_t i);
const char *fake_front_artifact(const struct front *f, size_t i, size_t j);
/* The execution count of session I (0 when none is open).  */
uint64_t fake_front_cells(const struct front *f, size_t i);

#endif
