/* The store harness's seeds (fuzz_store.c): a front's writes as its
   linked store sends them to the daemon.  */
#define _GNU_SOURCE
#include "fuzz.h"
#include "seeds.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void
answer(int fd, enum frame_type type)
{
  struct fbuf fb;
  fbuf_init(&fb, type);
  fbuf_finish(&fb);
  if (frame_send(fd, &fb, NULL, 0, NULL) < 0)
    exit(1);
  fbuf_free(&fb);
}

/* A front's writes as its linked store sends them to the daemon: each
   kind of write made once on a store linked to this end of a socket
   pair, and each frame that arrives written as a seed.  */
void
seeds_store(void)
{
  if (mkdir(FUZZ_STORE_HOME, 0700) < 0 && errno != EEXIST)
    exit(1);
  cleanup_free char *home = realpath(FUZZ_STORE_HOME, NULL);
  int sv[2];
  if (home == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    exit(1);
  kiln_error_t err = NULL;
  struct store *own = store_open(home, STORE_DIRECT, &err);
  answer(sv[1], FRAME_STORE_READY);
  struct store *st = own ? store_open_linked(home, sv[0], NULL, NULL, &err) : NULL;
  if (st == NULL) {
    fprintf(stderr, "fuzz-seeds: %s\n", err->msg);
    exit(1);
  }
  struct history_row row = { .session_id = "0123456789abcdef",
                             .execution_count = 3,
                             .kind = "python",
                             .code = "x = 1\nx + 1",
                             .code_len = 11,
                             .started_ms = 1764800000000,
                             .duration_ms = 1.5,
                             .status = "error",
                             .error_type = "ValueError",
                             .stdout_bytes = 10,
                             .stderr_bytes = 2,
                             .artifacts = "fig-1.png" };
  store_history_add(st, &row);
  store_history_forget(st, "0123456789abcdef");
  const char *live[] = { "0123456789abcdef", "fedcba9876543210" };
  store_history_expire(st, 1764800000000, live, 2);
  const struct cache_salt salt
      = { .magic = { 0xcb, 0x0d, 0x0d, 0x0a }, .magic_len = 4, .runtime = "kiln-seed" };
  uint8_t key[STORE_KEY_BYTES];
  cache_key(&salt, "1 + 1", 5, key);
  const uint8_t code[] = { 0xe3, 0, 1, 2, 3 };
  cache_put(st, key, &salt, code, sizeof code, 1 << 20);
  cache_count_miss(st);
  cleanup_free char *tmp = xasprintf("%s/snapshot.tmp", home);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, "state", 5) != 5)
    exit(1);
  close(fd);
  struct session_row srow = { .id = "0123456789abcdef",
                              .created_ms = 1,
                              .last_used_ms = 2,
                              .hibernated_ms = 3,
                              .execution_count = 3,
                              .has_snapshot = true,
                              .snapshot_size = 5,
                              .lost = "fh (TextIOWrapper)",
                              .dropped = "",
                              .note = "",
                              .artifacts = "" };
  store_session_hibernated(st, &srow, tmp, home);
  store_session_forget(st, "0123456789abcdef", true);
  answer(sv[1], FRAME_STORE_SYNCED);
  store_sync(st);
  static const char *const names[]
      = { "open",      "history-add", "history-forget",     "history-expire",
          "cache-put", "cache-miss",  "session-hibernated", "session-forget",
          "sync" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    struct frame f;
    uint8_t *payload = NULL;
    if (frame_recv(sv[1], &f, &payload, 1 << 20, NULL) < 0)
      exit(1);
    struct fbuf fb;
    fbuf_init(&fb, f.type);
    for (size_t k = 0; k < f.nfields; k++)
      fbuf_put(&fb, f.fields[k].tag, f.fields[k].data, f.fields[k].len);
    write_frame("store", names[i], &fb);
    free(payload);
  }
  answer(sv[1], FRAME_STORE_SYNCED);
  store_close(st);
  store_close(own);
  close(sv[1]);
  unlink(tmp);
  static const char *const files[] = { STORE_FILE, STORE_FILE "-wal", STORE_FILE "-shm" };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    cleanup_free char *p = xasprintf("%s/%s", home, files[i]);
    unlink(p);
  }
  rmdir(home);
}
