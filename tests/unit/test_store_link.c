#define _GNU_SOURCE
/* A store owned by the daemon (kernel/store/link.c): every write a
   linked store makes reaches the daemon's store as it was made; a sync
   waits for the daemon; a malformed write, or one naming a path outside
   KILN_HOME, is refused; a failed link loses nothing.  The test plays
   the daemon on the other end of a socket pair, with a store of its own
   on the same directory.  */
#include "check.h"
#include "frame.h"
#include "store.h"
#include "store_dir.h"
#include "util.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void
answer(int fd, enum frame_type type, const char *msg)
{
  struct fbuf fb;
  fbuf_init(&fb, type);
  if (msg)
    fbuf_put_str(&fb, TAG_MESSAGE, msg);
  fbuf_finish(&fb);
  CHECK(frame_send(fd, &fb, NULL, 0, NULL) == 0);
  fbuf_free(&fb);
}

/* A linked store on DIR whose daemon end is *PEER, the daemon having
   answered its open; NULL on failure.  */
static struct store *
linked(const char *dir, int *peer)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return NULL;
  answer(sv[1], FRAME_STORE_READY, NULL);
  kiln_error_t err = NULL;
  struct store *st = store_open_linked(dir, sv[0], NULL, NULL, &err);
  if (st == NULL) {
    fprintf(stderr, "store_open_linked: %s\n", err->msg);
    kiln_error_release(&err);
    close(sv[1]);
    return NULL;
  }
  /* Its first frame asked for the store of DIR.  */
  struct frame f;
  uint8_t *payload = NULL;
  char *home = NULL;
  CHECK(frame_recv(sv[1], &f, &payload, 1 << 20, NULL) == 0 && f.type == FRAME_STORE_OPEN);
  CHECK(frame_get_str(&f, TAG_PATH, false, &home, NULL, NULL) == 0 && strcmp(home, dir) == 0);
  free(home);
  free(payload);
  *peer = sv[1];
  return st;
}

/* Plays the daemon: applies each write from PEER to DAEMON until the
   sync point; returns the writes applied, -1 if one was refused.  */
static int
serve_until_sync(int peer, struct store *daemon, const char *home)
{
  int n = 0;
  for (;;) {
    struct frame f;
    uint8_t *payload = NULL;
    kiln_error_t err = NULL;
    if (frame_recv(peer, &f, &payload, 1 << 20, &err) < 0) {
      fprintf(stderr, "frame_recv: %s\n", err->msg);
      kiln_error_release(&err);
      return -1;
    }
    if (f.type == FRAME_STORE_SYNC) {
      free(payload);
      return n;
    }
    int rc = store_apply(daemon, home, &f, &err);
    if (rc < 0) {
      fprintf(stderr, "store_apply: %s\n", err->msg);
      kiln_error_release(&err);
    }
    free(payload);
    if (rc < 0)
      return -1;
    n++;
  }
}

struct got {
  int n;
  char code[64];
  size_t code_len;
  double duration;
  char status[16], error_type[32], kind[16];
  uint64_t count, out, err;
};

static void
one_row(void *ctx, int64_t id, const struct history_row *row)
{
  (void)id;
  struct got *g = ctx;
  if (g->n++ > 0)
    return;
  g->code_len = row->code_len < sizeof g->code ? row->code_len : sizeof g->code;
  memcpy(g->code, row->code, g->code_len);
  g->duration = row->duration_ms;
  snprintf(g->status, sizeof g->status, "%s", row->status);
  snprintf(g->error_type, sizeof g->error_type, "%s", row->error_type ? row->error_type : "");
  snprintf(g->kind, sizeof g->kind, "%s", row->kind);
  g->count = row->execution_count;
  g->out = row->stdout_bytes;
  g->err = row->stderr_bytes;
}

static struct got
history_of(struct store *st, const char *session)
{
  struct got g = { 0 };
  CHECK(store_history_page(st, session, 0, 100, one_row, &g, NULL) >= 0);
  return g;
}

/* The test's daemon store on a new directory, and a store linked to it
   (the test's end of the link in *PEER).  False, with nothing left
   open, when either cannot be made.  */
static bool
open_pair(char **dir, struct store **daemon, struct store **st, int *peer)
{
  *dir = make_dir();
  kiln_error_t err = NULL;
  *daemon = store_open(*dir, STORE_DIRECT, &err);
  CHECK(*daemon != NULL);
  *st = *daemon ? linked(*dir, peer) : NULL;
  CHECK(*st != NULL);
  if (*st == NULL) {
    kiln_error_release(&err);
    store_close(*daemon);
    remove_dir(*dir);
    return false;
  }
  return true;
}

static const struct cache_salt salt = { .magic = { 0xcb, 0x0d, 0x0d, 0x0a },
                                        .magic_len = 4,
                                        .runtime = "kiln-test",
                                        .flags = 0,
                                        .optimize = 0 };

static void
every_write_reaches_the_daemons_store_as_it_was_made(void)
{
  char *dir;
  struct store *daemon, *st;
  int peer = -1;
  if (!open_pair(&dir, &daemon, &st, &peer))
    return;

  /* A cell whose source holds a NUL is recorded whole.  */
  const char code[] = "x = 1\0y";
  struct history_row row = { .session_id = "sess-a",
                             .execution_count = 7,
                             .kind = "shell",
                             .code = code,
                             .code_len = sizeof code - 1,
                             .started_ms = 1700000000123,
                             .duration_ms = 1.0 / 3.0,
                             .status = "error",
                             .error_type = "ValueError",
                             .stdout_bytes = 11,
                             .stderr_bytes = 22,
                             .artifacts = "a.png" };
  store_history_add(st, &row);
  row.session_id = "sess-gone";
  store_history_add(st, &row);
  store_history_forget(st, "sess-gone");
  uint8_t key[STORE_KEY_BYTES];
  cache_key(&salt, "1 + 1", 5, key);
  const uint8_t marshalled[] = { 0xe3, 1, 2, 3, 0, 4 };
  cache_put(st, key, &salt, marshalled, sizeof marshalled, 1 << 20);
  cache_count_miss(st);
  /* A small snapshot: the daemon keeps it inline and removes the file.  */
  char *tmp = xasprintf("%s/snapshot.tmp", dir);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  CHECK(fd >= 0 && write(fd, "pickled", 7) == 7);
  close(fd);
  struct session_row srow = { .id = "sess-h",
                              .created_ms = 1,
                              .last_used_ms = 2,
                              .hibernated_ms = 3,
                              .execution_count = 9,
                              .has_snapshot = true,
                              .snapshot_size = 7,
                              .lost = "fh (file)",
                              .dropped = "big",
                              .note = "",
                              .artifacts = "p.png" };
  memset(srow.snapshot_hash, 0xab, sizeof srow.snapshot_hash);
  store_session_hibernated(st, &srow, tmp, dir);

  /* The daemon answers the sync once it has applied what came before.  */
  answer(peer, FRAME_STORE_SYNCED, NULL);
  store_sync(st);
  CHECK(serve_until_sync(peer, daemon, dir) == 6);
  /* The snapshot file was the daemon's to remove, not the front's.  */
  CHECK(access(tmp, F_OK) < 0);

  struct got g = history_of(daemon, "sess-a");
  CHECK(g.n == 1);
  CHECK(g.code_len == sizeof code - 1 && memcmp(g.code, code, g.code_len) == 0);
  CHECK(g.duration == 1.0 / 3.0);
  CHECK(strcmp(g.status, "error") == 0 && strcmp(g.error_type, "ValueError") == 0);
  CHECK(strcmp(g.kind, "shell") == 0);
  CHECK(g.count == 7 && g.out == 11 && g.err == 22);
  CHECK(history_of(daemon, "sess-gone").n == 0);
  /* The front reads what the daemon wrote.  */
  CHECK(history_of(st, "sess-a").n == 1);

  size_t len = 0;
  uint8_t *got = cache_get(st, key, &len);
  CHECK(got && len == sizeof marshalled && memcmp(got, marshalled, len) == 0);
  free(got);
  struct session_row back;
  char *strs = NULL, *file = NULL;
  uint8_t *blob = NULL;
  size_t blob_len = 0;
  CHECK(store_session_get(daemon, "sess-h", &back, &strs, &blob, &blob_len, &file, NULL) == 0);
  CHECK(blob && blob_len == 7 && memcmp(blob, "pickled", 7) == 0);
  CHECK(back.execution_count == 9 && back.hibernated_ms == 3);
  CHECK(strcmp(back.lost, "fh (file)") == 0 && strcmp(back.artifacts, "p.png") == 0);
  free(strs);
  free(blob);
  free(file);

  /* The hit the front had is counted by the daemon, with the miss.  */
  store_session_forget(st, "sess-h", false);
  answer(peer, FRAME_STORE_SYNCED, NULL);
  store_sync(st);
  CHECK(serve_until_sync(peer, daemon, dir) == 2);
  struct cache_stats cs;
  CHECK(cache_stats(daemon, "kiln-test", NULL, 0, &cs, NULL) == 0);
  CHECK(cs.entries == 1 && cs.hits == 1 && cs.misses == 1);
  CHECK(store_session_get(daemon, "sess-h", &back, &strs, &blob, &blob_len, &file, NULL) == 1);
  free(strs);

  /* Closing waits for the daemon to confirm.  */
  answer(peer, FRAME_STORE_SYNCED, NULL);
  store_close(st);
  close(peer);
  store_close(daemon);
  unlink(tmp);
  free(tmp);
  remove_dir(dir);
}

static int
apply_one(struct store *daemon, const char *home, const struct fbuf *fb)
{
  struct frame f = { .type = FRAME_STORE_WRITE };
  uint16_t type;
  int64_t n = frame_header_decode(fb->data, &type, 1 << 20);
  f.type = type;
  if (n < 0 || frame_parse_fields(&f, fb->data + FRAME_HDR_SIZE, (size_t)n, NULL) < 0)
    return -2;
  kiln_error_t err = NULL;
  int rc = store_apply(daemon, home, &f, &err);
  kiln_error_release(&err);
  return rc;
}

static void
a_malformed_write_or_one_outside_kiln_home_is_refused(void)
{
  char *dir = make_dir();
  kiln_error_t err = NULL;
  struct store *daemon = store_open(dir, STORE_DIRECT, &err);
  CHECK(daemon != NULL);
  if (daemon == NULL) {
    kiln_error_release(&err);
    remove_dir(dir);
    return;
  }
  struct fbuf fb;
  uint64_t times[3] = { 1, 2, 3 };
  const char *paths[] = { "/etc/passwd", "HOME/../elsewhere", "HOMEx/snapshot" };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    char *tmp = strncmp(paths[i], "HOME", 4) == 0 ? xasprintf("%s%s", dir, paths[i] + 4)
                                                  : xstrdup(paths[i]);
    fbuf_init(&fb, FRAME_STORE_WRITE);
    fbuf_put_u64(&fb, TAG_KIND, 7); /* a hibernated session */
    fbuf_put_str(&fb, TAG_SESSION_ID, "s");
    fbuf_put(&fb, TAG_TIMES, times, sizeof times);
    fbuf_put_u64(&fb, TAG_CELL_NO, 1);
    fbuf_put_str(&fb, TAG_LOST, "");
    fbuf_put_str(&fb, TAG_DROPPED, "");
    fbuf_put_str(&fb, TAG_NOTE, "");
    fbuf_put_str(&fb, TAG_ARTIFACTS, "");
    fbuf_put_str(&fb, TAG_PATH, tmp);
    fbuf_put_str(&fb, TAG_DIR, dir);
    fbuf_finish(&fb);
    CHECK(apply_one(daemon, dir, &fb) == -1);
    fbuf_free(&fb);
    free(tmp);
  }
  /* The same write inside KILN_HOME, without a snapshot, is taken, also
     when the front names KILN_HOME through a symbolic link.  */
  char *alias = xasprintf("%s-alias", dir);
  CHECK(symlink(dir, alias) == 0);
  fbuf_init(&fb, FRAME_STORE_WRITE);
  fbuf_put_u64(&fb, TAG_KIND, 7);
  fbuf_put_str(&fb, TAG_SESSION_ID, "s");
  fbuf_put(&fb, TAG_TIMES, times, sizeof times);
  fbuf_put_u64(&fb, TAG_CELL_NO, 1);
  fbuf_put_str(&fb, TAG_LOST, "");
  fbuf_put_str(&fb, TAG_DROPPED, "");
  fbuf_put_str(&fb, TAG_NOTE, "none taken");
  fbuf_put_str(&fb, TAG_ARTIFACTS, "");
  fbuf_put_str(&fb, TAG_DIR, alias);
  fbuf_finish(&fb);
  CHECK(apply_one(daemon, dir, &fb) == 0);
  fbuf_free(&fb);
  unlink(alias);
  free(alias);

  /* An unknown write, one without its fields, a history row without
     its code, a cache entry without code.  */
  uint64_t bad_ops[] = { 99, 1, 6 };
  for (size_t i = 0; i < sizeof bad_ops / sizeof bad_ops[0]; i++) {
    fbuf_init(&fb, FRAME_STORE_WRITE);
    fbuf_put_u64(&fb, TAG_KIND, bad_ops[i]);
    fbuf_put_str(&fb, TAG_SESSION_ID, "s");
    fbuf_finish(&fb);
    CHECK(apply_one(daemon, dir, &fb) == -1);
    fbuf_free(&fb);
  }
  fbuf_init(&fb, FRAME_STORE_SYNC);
  fbuf_finish(&fb);
  CHECK(apply_one(daemon, dir, &fb) == -1);
  fbuf_free(&fb);
  CHECK(history_of(daemon, "s").n == 0);
  struct session_row back;
  char *strs = NULL, *file = NULL;
  uint8_t *blob = NULL;
  size_t blob_len = 0;
  CHECK(store_session_get(daemon, "s", &back, &strs, &blob, &blob_len, &file, NULL) == 0);
  CHECK(strcmp(back.note, "none taken") == 0 && !back.has_snapshot);
  free(strs);
  store_close(daemon);
  remove_dir(dir);
}

static void
when_the_link_fails_the_writes_are_made_here_and_none_is_lost(void)
{
  char *dir;
  struct store *daemon, *st;
  int peer = -1;
  if (!open_pair(&dir, &daemon, &st, &peer))
    return;
  close(peer); /* the daemon is gone */
  struct history_row row = { .session_id = "sess-b",
                             .execution_count = 1,
                             .code = "1",
                             .code_len = 1,
                             .status = "ok",
                             .artifacts = "" };
  store_history_add(st, &row);
  row.execution_count = 2;
  store_history_add(st, &row);
  store_sync(st);
  CHECK(history_of(daemon, "sess-b").n == 2);
  /* And after it, still here.  */
  row.execution_count = 3;
  store_history_add(st, &row);
  store_close(st);
  CHECK(history_of(daemon, "sess-b").n == 3);
  store_close(daemon);
  remove_dir(dir);
}

/* A new daemon's end of a socket pair, its open and the next sync
   answered, for a linked store to reconnect to; the test's end in
   *CTX.  */
static int
reconnect(void *ctx)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return -1;
  answer(sv[1], FRAME_STORE_READY, NULL);
  answer(sv[1], FRAME_STORE_SYNCED, NULL);
  *(int *)ctx = sv[1];
  return sv[0];
}

static void
a_store_whose_daemon_came_back_sends_it_its_writes_again(void)
{
  char *dir = make_dir();
  kiln_error_t err = NULL;
  struct store *daemon = store_open(dir, STORE_DIRECT, &err);
  CHECK(daemon != NULL);
  int sv[2], peer = -1;
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  answer(sv[1], FRAME_STORE_READY, NULL);
  struct store *st = daemon ? store_open_linked(dir, sv[0], reconnect, &peer, &err) : NULL;
  CHECK(st != NULL);
  if (st == NULL) {
    kiln_error_release(&err);
    store_close(daemon);
    remove_dir(dir);
    return;
  }
  close(sv[1]); /* the first daemon is gone */
  struct history_row row = { .session_id = "sess-c",
                             .execution_count = 1,
                             .code = "1",
                             .code_len = 1,
                             .status = "ok",
                             .artifacts = "" };
  store_history_add(st, &row);
  store_sync(st);
  CHECK(history_of(daemon, "sess-c").n == 1);
  CHECK(peer < 0); /* not asked at once */
  usleep((STORE_RELINK_MS + 100) * 1000);
  /* The next turn links again; the write goes to the new daemon.  */
  row.execution_count = 2;
  store_history_add(st, &row);
  store_sync(st);
  CHECK(peer >= 0);
  if (peer >= 0) {
    struct frame f;
    uint8_t *payload = NULL;
    CHECK(frame_recv(peer, &f, &payload, 1 << 20, NULL) == 0 && f.type == FRAME_STORE_OPEN);
    free(payload);
    CHECK(history_of(daemon, "sess-c").n == 1);
    CHECK(serve_until_sync(peer, daemon, dir) == 1);
    CHECK(history_of(daemon, "sess-c").n == 2);
    answer(peer, FRAME_STORE_SYNCED, NULL);
  }
  store_close(st);
  if (peer >= 0)
    close(peer);
  store_close(daemon);
  remove_dir(dir);
}

static void
a_daemon_that_cannot_open_the_store_says_why(void)
{
  char *dir = make_dir();
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  answer(sv[1], FRAME_STORE_FAILED, "kiln.db: disk I/O error");
  kiln_error_t err = NULL;
  struct store *st = store_open_linked(dir, sv[0], NULL, NULL, &err);
  CHECK(st == NULL);
  CHECK(err && strstr(err->msg, "disk I/O error") != NULL);
  /* It asked for the store of DIR.  */
  struct frame f;
  uint8_t *payload = NULL;
  char *home = NULL;
  CHECK(frame_recv(sv[1], &f, &payload, 1 << 20, NULL) == 0);
  CHECK(f.type == FRAME_STORE_OPEN);
  CHECK(frame_get_str(&f, TAG_PATH, false, &home, NULL, NULL) == 0 && strcmp(home, dir) == 0);
  free(home);
  free(payload);
  kiln_error_release(&err);
  close(sv[1]);
  remove_dir(dir);
}

static const struct test_case cases[] = {
  { "every write reaches the daemon's store as it was made",
    every_write_reaches_the_daemons_store_as_it_was_made },
  { "a malformed write, or one outside KILN_HOME, is refused",
    a_malformed_write_or_one_outside_kiln_home_is_refused },
  { "when the link fails, the writes are made here and none is lost",
    when_the_link_fails_the_writes_are_made_here_and_none_is_lost },
  { "a store whose daemon came back sends it its writes again",
    a_store_whose_daemon_came_back_sends_it_its_writes_again },
  { "a daemon that cannot open the store says why", a_daemon_that_cannot_open_the_store_says_why },
};

int
main(void)
{
  return RUN(cases);
}
