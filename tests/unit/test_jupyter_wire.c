#define _GNU_SOURCE
/* Jupyter's wire format: a message built here parses back with its
   identities and parts; a signature made with another key, a missing
   one, a tampered part or a malformed message is refused; with an empty
   key nothing is signed or checked; the signature is the HMAC-SHA256
   jupyter_client computes.  */
#include "check.h"
#include "connection.h"
#include "util.h"
#include "wire.h"

#include <sodium.h>
#include <stdlib.h>

static const struct jup_key key = { (const uint8_t *)"secret", 6 };

static struct jup_frame *
build(const struct jup_key *k, size_t *n)
{
  struct jup_frame ids[2] = { { "id-one", 6 }, { "\0\x01\x02", 3 } };
  json_t *h = jup_header_new("kernel_info_request", "sess");
  json_t *p = json_object(), *md = json_object(), *c = json_pack("{s:s}", "code", "1 + 1");
  struct jup_frame *f = jup_msg_build(k, ids, 2, h, p, md, c, n);
  json_decref(h);
  json_decref(p);
  json_decref(md);
  json_decref(c);
  return f;
}

static void
a_built_message_parses_back_with_its_identities_and_parts(void)
{
  size_t n;
  struct jup_frame *f = build(&key, &n);
  CHECK(n == 8);
  struct jup_msg m;
  CHECK(jup_msg_parse(&key, f, n, &m, NULL) == 0);
  CHECK(m.nids == 2);
  CHECK(m.ids[0].len == 6 && memcmp(m.ids[0].data, "id-one", 6) == 0);
  CHECK(m.ids[1].len == 3 && memcmp(m.ids[1].data, "\0\x01\x02", 3) == 0);
  CHECK(strcmp(m.msg_type, "kernel_info_request") == 0);
  CHECK(strlen(m.msg_id) == 36);
  CHECK(strcmp(json_string_value(json_object_get(m.content, "code")), "1 + 1") == 0);
  CHECK(strcmp(json_string_value(json_object_get(m.header, "version")), "5.4") == 0);
  jup_msg_free(&m);
  jup_frames_free(f, n);
}

static void
another_key_a_missing_signature_or_a_tampered_part_is_refused(void)
{
  size_t n;
  struct jup_frame *f = build(&key, &n);
  struct jup_msg m;
  kiln_error_t err = NULL;
  const struct jup_key other = { (const uint8_t *)"secreT", 6 };
  CHECK(jup_msg_parse(&other, f, n, &m, &err) < 0);
  CHECK(err && strstr(err->msg, "bad signature"));
  kiln_error_release(&err);
  /* The content changed after signing.  */
  char *tampered = xstrdup("{\"code\":\"1 + 2\"}");
  void *saved = f[7].data;
  size_t saved_len = f[7].len;
  f[7].data = tampered;
  f[7].len = strlen(tampered);
  CHECK(jup_msg_parse(&key, f, n, &m, NULL) < 0);
  f[7].data = saved;
  f[7].len = saved_len;
  free(tampered);
  /* No signature at all.  */
  char *sig = f[3].data;
  size_t sig_len = f[3].len;
  f[3].data = "";
  f[3].len = 0;
  CHECK(jup_msg_parse(&key, f, n, &m, NULL) < 0);
  f[3].data = sig;
  f[3].len = sig_len;
  /* One hex digit off.  */
  sig[63] = sig[63] == '0' ? '1' : '0';
  CHECK(jup_msg_parse(&key, f, n, &m, NULL) < 0);
  jup_frames_free(f, n);
}

static void
an_empty_key_neither_signs_nor_checks(void)
{
  const struct jup_key none = { (const uint8_t *)"", 0 };
  size_t n;
  struct jup_frame *f = build(&none, &n);
  CHECK(f[3].len == 0);
  struct jup_msg m;
  CHECK(jup_msg_parse(&none, f, n, &m, NULL) == 0);
  jup_msg_free(&m);
  /* A kernel with a key refuses what came unsigned.  */
  CHECK(jup_msg_parse(&key, f, n, &m, NULL) < 0);
  jup_frames_free(f, n);
}

static void
signature_is_hmac_sha256_hex_of_the_four_parts(void)
{
  /* hmac.new(b"key", b"{}" * 4, hashlib.sha256).hexdigest() */
  struct jup_frame parts[4] = { { "{}", 2 }, { "{}", 2 }, { "{}", 2 }, { "{}", 2 } };
  const struct jup_key k = { (const uint8_t *)"key", 3 };
  char hex[65];
  jup_sign(&k, parts, 4, hex);
  CHECK(strcmp(hex, "ca767b02c5bc061ed184a9a029e7f93a7f2f7ed4e8fe74120fc1212f0b008fa3") == 0);
}

static void
malformed_messages_are_refused(void)
{
  struct jup_msg m;
  const struct jup_key none = { (const uint8_t *)"", 0 };
  struct jup_frame no_delim[6]
      = { { "a", 1 }, { "", 0 }, { "{}", 2 }, { "{}", 2 }, { "{}", 2 }, { "{}", 2 } };
  CHECK(jup_msg_parse(&none, no_delim, 6, &m, NULL) < 0);
  struct jup_frame short_msg[4] = { { "<IDS|MSG>", 9 }, { "", 0 }, { "{}", 2 }, { "{}", 2 } };
  CHECK(jup_msg_parse(&none, short_msg, 4, &m, NULL) < 0);
  /* A header without msg_type, a content that is not an object, text
     that is not JSON.  */
  struct jup_frame no_type[6] = { { "<IDS|MSG>", 9 }, { "", 0 },   { "{\"msg_id\":\"1\"}", 14 },
                                  { "{}", 2 },        { "{}", 2 }, { "{}", 2 } };
  CHECK(jup_msg_parse(&none, no_type, 6, &m, NULL) < 0);
  static const char h[] = "{\"msg_id\":\"1\",\"msg_type\":\"x\"}";
  struct jup_frame list[6] = { { "<IDS|MSG>", 9 }, { "", 0 },   { (void *)h, sizeof h - 1 },
                               { "{}", 2 },        { "{}", 2 }, { "[1]", 3 } };
  CHECK(jup_msg_parse(&none, list, 6, &m, NULL) < 0);
  struct jup_frame junk[6] = { { "<IDS|MSG>", 9 }, { "", 0 },  { (void *)h, sizeof h - 1 },
                               { "{}", 2 },        { "{", 1 }, { "{}", 2 } };
  CHECK(jup_msg_parse(&none, junk, 6, &m, NULL) < 0);
  struct jup_frame ok[6] = { { "<IDS|MSG>", 9 }, { "", 0 },   { (void *)h, sizeof h - 1 },
                             { "{}", 2 },        { "{}", 2 }, { "{}", 2 } };
  CHECK(jup_msg_parse(&none, ok, 6, &m, NULL) == 0);
  CHECK(m.nids == 0);
  jup_msg_free(&m);
}

static void
headers_have_a_uuid_and_an_iso_date_in_utc_with_microseconds(void)
{
  json_t *h = jup_header_new("status", "s");
  const char *id = json_string_value(json_object_get(h, "msg_id"));
  CHECK(id && strlen(id) == 36 && id[8] == '-' && id[14] == '4');
  const char *date = json_string_value(json_object_get(h, "date"));
  /* 2024-01-31T12:34:56.123456Z */
  CHECK(date && strlen(date) == 27 && date[10] == 'T' && date[19] == '.' && date[26] == 'Z');
  json_decref(h);
}

static void
connection_endpoints_follow_jupyter_client(void)
{
  struct jup_connection c = { .transport = "tcp", .ip = "127.0.0.1", .ports = { 5001, 5002 } };
  char *e = jup_connection_endpoint(&c, JUP_CONTROL);
  CHECK(strcmp(e, "tcp://127.0.0.1:5002") == 0);
  free(e);
  c.transport = "ipc";
  c.ip = "/tmp/kernel";
  e = jup_connection_endpoint(&c, JUP_SHELL);
  CHECK(strcmp(e, "ipc:///tmp/kernel-5001") == 0);
  free(e);
}

/* A signature in hex from a counter: distinct for each N, as HMACs are.  */
static void
fake_sig(unsigned n, char out[65])
{
  uint8_t mac[32];
  crypto_generichash(mac, sizeof mac, (const uint8_t *)&n, sizeof n, NULL, 0);
  sodium_bin2hex(out, 65, mac, sizeof mac);
}

static void
a_signature_seen_before_is_a_replay_within_the_window(void)
{
  struct jup_replay *r = jup_replay_new();
  char sig[65];
  fake_sig(0, sig);
  CHECK(jup_replay_first(r, sig));
  CHECK(!jup_replay_first(r, sig));
  /* Every one of the window's messages after it is remembered with it.  */
  for (unsigned i = 1; i < JUP_REPLAY_WINDOW; i++) {
    fake_sig(i, sig);
    CHECK(jup_replay_first(r, sig));
  }
  fake_sig(0, sig);
  CHECK(!jup_replay_first(r, sig));
  fake_sig(JUP_REPLAY_WINDOW - 1, sig);
  CHECK(!jup_replay_first(r, sig));
  /* Two windows later the first is forgotten: the memory is bounded.  */
  for (unsigned i = JUP_REPLAY_WINDOW; i < 3 * JUP_REPLAY_WINDOW; i++) {
    fake_sig(i, sig);
    CHECK(jup_replay_first(r, sig));
  }
  fake_sig(0, sig);
  CHECK(jup_replay_first(r, sig));
  jup_replay_free(r);
}

int
main(void)
{
  if (sodium_init() < 0)
    return 1;
  static const struct test_case cases[] = {
    { "a built message parses back with its identities and parts",
      a_built_message_parses_back_with_its_identities_and_parts },
    { "another key, a missing signature or a tampered part is refused",
      another_key_a_missing_signature_or_a_tampered_part_is_refused },
    { "an empty key neither signs nor checks", an_empty_key_neither_signs_nor_checks },
    { "the signature is HMAC-SHA256 hex of the four parts",
      signature_is_hmac_sha256_hex_of_the_four_parts },
    { "malformed messages are refused", malformed_messages_are_refused },
    { "headers have a uuid and an ISO date in UTC with microseconds",
      headers_have_a_uuid_and_an_iso_date_in_utc_with_microseconds },
    { "connection endpoints follow jupyter_client", connection_endpoints_follow_jupyter_client },
    { "a signature seen before is a replay within the window",
      a_signature_seen_before_is_a_replay_within_the_window },
  };
  return RUN(cases);
}
