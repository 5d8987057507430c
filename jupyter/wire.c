/* Messages to and from frames, and their signatures.  Every frame comes
   from a client we trust only as far as its key: nothing is parsed
   before the signature is checked, and every part must be what the
   protocol says it is.  */
#define _GNU_SOURCE
#include "wire.h"
#include "util.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

void
jup_sign(const struct jup_key *key, const struct jup_frame *parts, size_t n, char hex[65])
{
  crypto_auth_hmacsha256_state st;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&st, key->data, key->len);
  for (size_t i = 0; i < n; i++)
    crypto_auth_hmacsha256_update(&st, parts[i].data, parts[i].len);
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_bin2hex(hex, 65, mac, sizeof mac);
  sodium_memzero(&st, sizeof st);
}

/* Two generations of open-addressed sets of the first 16 bytes of each
   signature: when the newer holds a window's worth, it becomes the older
   and the older is emptied.  An HMAC is uniformly random, so its first
   bytes are its hash.  */
#define REPLAY_SLOTS (2 * JUP_REPLAY_WINDOW)

struct jup_replay {
  uint8_t (*gen[2])[16];
  size_t count; /* in gen[0] */
};

struct jup_replay *
jup_replay_new(void)
{
  struct jup_replay *r = xzalloc(sizeof *r);
  r->gen[0] = xzalloc(REPLAY_SLOTS * sizeof *r->gen[0]);
  r->gen[1] = xzalloc(REPLAY_SLOTS * sizeof *r->gen[1]);
  return r;
}

void
jup_replay_free(struct jup_replay *r)
{
  if (r == NULL)
    return;
  free(r->gen[0]);
  free(r->gen[1]);
  free(r);
}

/* The slot of MAC in SET: where it is, or the empty one where it would be.  */
static size_t
replay_slot(uint8_t (*set)[16], const uint8_t mac[16])
{
  static const uint8_t empty[16];
  uint32_t h;
  memcpy(&h, mac, sizeof h);
  size_t i = h & (REPLAY_SLOTS - 1);
  while (memcmp(set[i], mac, 16) != 0 && memcmp(set[i], empty, 16) != 0)
    i = (i + 1) & (REPLAY_SLOTS - 1);
  return i;
}

bool
jup_replay_first(struct jup_replay *r, const char *sig)
{
  uint8_t mac[16];
  size_t got = 0;
  if (sodium_hex2bin(mac, sizeof mac, sig, 32, NULL, &got, NULL) != 0 || got != sizeof mac)
    return true; /* not a signature of ours: its check refuses it */
  for (int g = 0; g < 2; g++)
    if (memcmp(r->gen[g][replay_slot(r->gen[g], mac)], mac, 16) == 0)
      return false;
  if (r->count == JUP_REPLAY_WINDOW) {
    uint8_t(*older)[16] = r->gen[1];
    r->gen[1] = r->gen[0];
    memset(older, 0, REPLAY_SLOTS * sizeof *older);
    r->gen[0] = older;
    r->count = 0;
  }
  memcpy(r->gen[0][replay_slot(r->gen[0], mac)], mac, 16);
  r->count++;
  return true;
}

void
jup_uuid(char out[37])
{
  uint8_t b[16];
  random_bytes(b, sizeof b);
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
}

void
jup_now_iso(char out[32])
{
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%06uZ", (unsigned)(ts.tv_nsec / 1000) % 1000000u);
}

json_t *
jup_header_new(const char *msg_type, const char *session)
{
  char id[37], date[32];
  jup_uuid(id);
  jup_now_iso(date);
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "msg_id", id, "session", session, "username",
                   "kiln", "date", date, "msg_type", msg_type, "version", JUP_PROTOCOL_VERSION);
}

/* Parses part NAME of a message, which must be a JSON object.  */
static json_t *
parse_object(const struct jup_frame *f, const char *name, kiln_error_t *err)
{
  json_error_t je;
  json_t *o = json_loadb(f->data, f->len, JSON_REJECT_DUPLICATES, &je);
  if (o == NULL) {
    kiln_error_make(err, 0, "%s is not JSON: %s", name, je.text);
    return NULL;
  }
  if (!json_is_object(o)) {
    json_decref(o);
    kiln_error_make(err, 0, "%s is not a JSON object", name);
    return NULL;
  }
  return o;
}

int
jup_msg_parse(const struct jup_key *key, const struct jup_frame *frames, size_t n,
              struct jup_msg *m, kiln_error_t *err)
{
  memset(m, 0, sizeof *m);
  size_t d = 0;
  static const size_t dlen = sizeof JUP_DELIMITER - 1;
  while (d < n && !(frames[d].len == dlen && memcmp(frames[d].data, JUP_DELIMITER, dlen) == 0))
    d++;
  if (d == n)
    return kiln_error_make(err, 0, "no %s delimiter", JUP_DELIMITER);
  if (n - d - 1 < 5)
    return kiln_error_make(err, 0, "%zu parts after the delimiter, not at least 5", n - d - 1);
  const struct jup_frame *sig = &frames[d + 1], *parts = &frames[d + 2];
  if (key->len > 0) {
    char want[65];
    jup_sign(key, parts, 4, want);
    /* sodium_memcmp takes the same time wherever the first difference
       is: a forger learns nothing from how long a refusal takes.  */
    if (sig->len != 64 || sodium_memcmp(want, sig->data, 64) != 0)
      return kiln_error_make(err, 0, "bad signature");
  }
  static const char *const names[] = { "header", "parent_header", "metadata", "content" };
  json_t *o[4] = { NULL };
  for (size_t i = 0; i < 4; i++)
    if ((o[i] = parse_object(&parts[i], names[i], err)) == NULL)
      goto fail;
  json_t *type = json_object_get(o[0], "msg_type"), *id = json_object_get(o[0], "msg_id");
  if (!json_is_string(type) || !json_is_string(id)) {
    kiln_error_make(err, 0, "the header has no msg_type or msg_id string");
    goto fail;
  }
  m->header = o[0];
  m->parent = o[1];
  m->metadata = o[2];
  m->content = o[3];
  m->msg_type = json_string_value(type);
  m->msg_id = json_string_value(id);
  for (size_t i = 0; i < n; i++)
    m->wire_len += frames[i].len;
  m->nids = d;
  m->ids = d ? xmalloc(d * sizeof *m->ids) : NULL;
  for (size_t i = 0; i < d; i++) {
    m->ids[i].len = frames[i].len;
    m->ids[i].data = xmalloc(frames[i].len ? frames[i].len : 1);
    memcpy(m->ids[i].data, frames[i].data, frames[i].len);
  }
  return 0;
fail:
  for (size_t i = 0; i < 4; i++)
    json_decref(o[i]);
  return -1;
}

void
jup_msg_free(struct jup_msg *m)
{
  if (m == NULL)
    return;
  jup_frames_free(m->ids, m->nids);
  json_decref(m->header);
  json_decref(m->parent);
  json_decref(m->metadata);
  json_decref(m->content);
  memset(m, 0, sizeof *m);
}

void
jup_frames_free(struct jup_frame *frames, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(frames[i].data);
  free(frames);
}

struct jup_frame *
jup_msg_build(const struct jup_key *key, const struct jup_frame *ids, size_t nids, json_t *header,
              json_t *parent, json_t *metadata, json_t *content, size_t *n)
{
  struct jup_frame *f = xzalloc((nids + 6) * sizeof *f);
  for (size_t i = 0; i < nids; i++) {
    f[i].len = ids[i].len;
    f[i].data = xmalloc(ids[i].len ? ids[i].len : 1);
    memcpy(f[i].data, ids[i].data, ids[i].len);
  }
  f[nids].data = xstrdup(JUP_DELIMITER);
  f[nids].len = sizeof JUP_DELIMITER - 1;
  json_t *parts[4] = { header, parent, metadata, content };
  for (size_t i = 0; i < 4; i++) {
    /* Every string kiln puts in a message is valid UTF-8 (the front's
       output is, and the rest is ours), so a dump cannot fail but for
       memory.  */
    char *s = json_dumps(parts[i], JSON_COMPACT);
    if (s == NULL)
      xoom();
    f[nids + 2 + i].data = s;
    f[nids + 2 + i].len = strlen(s);
  }
  char *hex = xzalloc(65);
  if (key->len > 0)
    jup_sign(key, &f[nids + 2], 4, hex);
  f[nids + 1].data = hex;
  f[nids + 1].len = strlen(hex);
  *n = nids + 6;
  return f;
}
