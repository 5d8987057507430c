#define _GNU_SOURCE
/* The frame codec: what the front accepts from a worker and what it
   refuses.  */
#include "check.h"
#include "frame.h"
#include "util.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static void
a_frame_round_trips_its_fields(void)
{
  struct fbuf fb;
  fbuf_init(&fb, FRAME_DONE);
  fbuf_put_u64(&fb, TAG_STATUS, 2);
  fbuf_put_str(&fb, TAG_RESULT, "'done'");
  fbuf_put(&fb, TAG_ERR_MESSAGE, "a\0b", 3);
  fbuf_finish(&fb);
  uint16_t type;
  int64_t len = frame_header_decode(fb.data, &type, FRAME_MAX_PAYLOAD);
  CHECK(type == FRAME_DONE);
  CHECK(len == (int64_t)(fb.len - FRAME_HDR_SIZE));
  struct frame f = { .type = type };
  CHECK(frame_parse_fields(&f, fb.data + FRAME_HDR_SIZE, (size_t)len, NULL) == 0);
  uint64_t status = 0;
  CHECK(frame_get_u64(&f, TAG_STATUS, false, &status, NULL) == 0 && status == 2);
  char *s = NULL;
  CHECK(frame_get_str(&f, TAG_RESULT, false, &s, NULL, NULL) == 0 && strcmp(s, "'done'") == 0);
  free(s);
  const struct field *m = frame_get(&f, TAG_ERR_MESSAGE);
  CHECK(m != NULL && m->len == 3 && memcmp(m->data, "a\0b", 3) == 0);
  fbuf_free(&fb);
}

static void
a_header_over_the_limit_is_refused(void)
{
  uint8_t hdr[FRAME_HDR_SIZE] = { 0xff, 0xff, 0xff, 0x7f, FRAME_DONE, 0, 0, 0 };
  uint16_t type;
  CHECK(frame_header_decode(hdr, &type, 1 << 20) == -1);
  uint8_t ok[FRAME_HDR_SIZE] = { 16, 0, 0, 0, FRAME_DONE, 0, 0, 0 };
  CHECK(frame_header_decode(ok, &type, 1 << 20) == 16);
  /* Reserved bytes must be zero.  */
  uint8_t reserved[FRAME_HDR_SIZE] = { 16, 0, 0, 0, FRAME_DONE, 0, 1, 0 };
  CHECK(frame_header_decode(reserved, &type, 1 << 20) == -1);
}

static void
a_field_running_past_the_payload_is_refused(void)
{
  /* tag 1, length 100, but only 2 bytes follow */
  uint8_t p[] = { 1, 0, 100, 0, 0, 0, 'h', 'i' };
  struct frame f = { .type = FRAME_DONE };
  kiln_error_t err = NULL;
  CHECK(frame_parse_fields(&f, p, sizeof p, &err) == -1);
  CHECK(err != NULL && strstr(err->msg, "past the end") != NULL);
  kiln_error_release(&err);
  uint8_t truncated[] = { 1, 0, 0 };
  CHECK(frame_parse_fields(&f, truncated, sizeof truncated, NULL) == -1);
}

static void
a_repeated_field_is_refused(void)
{
  struct fbuf fb;
  fbuf_init(&fb, FRAME_DONE);
  fbuf_put_u64(&fb, TAG_STATUS, 0);
  fbuf_put_u64(&fb, TAG_STATUS, 1);
  fbuf_finish(&fb);
  struct frame f = { .type = FRAME_DONE };
  CHECK(frame_parse_fields(&f, fb.data + FRAME_HDR_SIZE, fb.len - FRAME_HDR_SIZE, NULL) == -1);
  fbuf_free(&fb);
}

static void
typed_getters_check_sizes_and_nul_bytes(void)
{
  struct fbuf fb;
  fbuf_init(&fb, FRAME_SPAWN);
  fbuf_put(&fb, TAG_PID, "abc", 3);
  fbuf_put(&fb, TAG_SESSION_ID, "ab\0c", 4);
  fbuf_finish(&fb);
  struct frame f = { .type = FRAME_SPAWN };
  CHECK(frame_parse_fields(&f, fb.data + FRAME_HDR_SIZE, fb.len - FRAME_HDR_SIZE, NULL) == 0);
  uint64_t v;
  CHECK(frame_get_u64(&f, TAG_PID, false, &v, NULL) == -1);
  char *s;
  CHECK(frame_get_str(&f, TAG_SESSION_ID, false, &s, NULL, NULL) == -1);
  CHECK(frame_get_str(&f, TAG_UID, true, &s, NULL, NULL) == 0 && s == NULL);
  CHECK(frame_get_str(&f, TAG_UID, false, &s, NULL, NULL) == -1);
  fbuf_free(&fb);
}

static void
frames_and_fds_cross_a_socket(void)
{
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  int p[2];
  CHECK(pipe(p) == 0);
  struct fbuf fb;
  fbuf_init(&fb, FRAME_SPAWNED);
  fbuf_put_u64(&fb, TAG_PID, 4242);
  fbuf_finish(&fb);
  CHECK(frame_send(sv[0], &fb, p, 2, NULL) == 0);
  fbuf_free(&fb);
  struct frame f;
  uint8_t *payload;
  CHECK(frame_recv(sv[1], &f, &payload, 1024, NULL) == 0);
  uint64_t pid = 0;
  CHECK(f.type == FRAME_SPAWNED && frame_get_u64(&f, TAG_PID, false, &pid, NULL) == 0
        && pid == 4242);
  CHECK(f.nfds == 2);
  /* The received fds are the pipe: a byte written in one end comes out of
     the other.  */
  if (f.nfds == 2) {
    CHECK(write(f.fds[1], "x", 1) == 1);
    char c = 0;
    CHECK(read(p[0], &c, 1) == 1 && c == 'x');
    close(f.fds[0]);
    close(f.fds[1]);
  }
  free(payload);
  close(sv[0]);
  kiln_error_t err = NULL;
  CHECK(frame_recv(sv[1], &f, &payload, 1024, &err) == -1);
  CHECK(err != NULL && err->status == ECONNRESET);
  kiln_error_release(&err);
  free(payload);
  close(sv[1]);
  close(p[0]);
  close(p[1]);
}

static const struct test_case cases[] = {
  { "a frame round-trips its fields", a_frame_round_trips_its_fields },
  { "a header over the limit is refused", a_header_over_the_limit_is_refused },
  { "a field running past the payload is refused", a_field_running_past_the_payload_is_refused },
  { "a repeated field is refused", a_repeated_field_is_refused },
  { "typed getters check sizes and NUL bytes", typed_getters_check_sizes_and_nul_bytes },
  { "frames and fds cross a socket", frames_and_fds_cross_a_socket },
};

int
main(void)
{
  return RUN(cases);
}
