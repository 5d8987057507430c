/* The stores the daemon owns: one per KILN_HOME its fronts name, opened
   when the first front links to it and closed once no front has used it
   for the daemon's idle time.  A
   front's writes are queued on it as they come (store_apply); a front's
   sync is answered once its writer has committed every write before it,
   told through a pipe, so the loop never waits for a commit.  */
#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Told on the writer thread once a sync point is committed.  */
struct synced {
  int fd;
  uint64_t conn_id;
};

static void
on_committed(void *ctx)
{
  struct synced *s = ctx;
  /* Eight bytes to a pipe go whole; the loop reads them.  */
  ssize_t r;
  do
    r = write(s->fd, &s->conn_id, sizeof s->conn_id);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    log_msg(LOG_WARN, "store: a front's sync could not be answered: %s", strerror(errno));
  free(s);
}

static struct conn *
conn_by_id(struct daemon *d, uint64_t id)
{
  for (struct conn *c = d->conns; c; c = c->next)
    if (c->id == id)
      return c;
  return NULL;
}

static void
on_synced(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)loop;
  (void)events;
  struct daemon *d = data;
  uint64_t ids[64];
  ssize_t r;
  while ((r = read(fd, ids, sizeof ids)) > 0) {
    for (size_t i = 0; i < (size_t)r / sizeof ids[0]; i++) {
      struct conn *c = conn_by_id(d, ids[i]);
      if (c == NULL)
        continue; /* gone since it asked */
      struct fbuf fb;
      fbuf_init(&fb, FRAME_STORE_SYNCED);
      fbuf_finish(&fb);
      int rc = dmn_send_raw(c->fd, fb.data, fb.len, NULL, 0);
      fbuf_free(&fb);
      if (rc < 0)
        dmn_conn_drop(c);
    }
  }
}

/* Closes DS: its queued writes are committed first.  */
static void
store_free(struct daemon *d, struct dmn_store *ds)
{
  struct dmn_store **pp = &d->stores;
  while (*pp != ds)
    pp = &(*pp)->next;
  *pp = ds->next;
  store_close(ds->st);
  free(ds->home);
  free(ds);
}

int
dmn_stores_init(struct daemon *d, kiln_error_t *err)
{
  if (pipe2(d->synced, O_CLOEXEC) < 0)
    return kiln_error_make(err, errno, "a pipe for the store's writers");
  /* Neither end blocks: the loop may be joining a writer thread (the
     last front of its store gone) while that thread tells it of a sync.
     An answer the pipe has no room for (8,192 unread) is lost, and its
     front gives up on the link after its timeout and writes the store
     itself.  */
  fcntl(d->synced[0], F_SETFL, O_NONBLOCK);
  fcntl(d->synced[1], F_SETFL, O_NONBLOCK);
  return loop_add(d->loop, d->synced[0], EPOLLIN, on_synced, d, err);
}

void
dmn_stores_free(struct daemon *d)
{
  while (d->stores)
    store_free(d, d->stores);
  if (d->synced[0] >= 0) {
    loop_del(d->loop, d->synced[0]);
    close(d->synced[0]);
    close(d->synced[1]);
    d->synced[0] = d->synced[1] = -1;
  }
}

void
dmn_store_open(struct conn *c, const struct frame *fr)
{
  struct daemon *d = c->d;
  cleanup_free char *home = NULL;
  char real[PATH_MAX];
  if (frame_get_str(fr, TAG_PATH, false, &home, NULL, NULL) < 0 || home[0] != '/'
      || realpath(home, real) == NULL) {
    dmn_send_message(c, FRAME_STORE_FAILED, "the store's KILN_HOME is not a directory here");
    dmn_conn_drop(c);
    return;
  }
  struct dmn_store *ds = d->stores;
  while (ds && strcmp(ds->home, real) != 0)
    ds = ds->next;
  if (ds)
    ds->unused_since = 0;
  else {
    kiln_error_t err = NULL;
    struct store *st = store_open(real, STORE_THREADED, &err);
    if (st == NULL) {
      log_msg(LOG_ERROR, "open the store of %s: %s", real, err->msg);
      dmn_send_message(c, FRAME_STORE_FAILED, err->msg);
      kiln_error_release(&err);
      dmn_conn_drop(c);
      return;
    }
    ds = xzalloc(sizeof *ds);
    ds->home = xstrdup(real);
    ds->st = st;
    ds->next = d->stores;
    d->stores = ds;
    log_msg(LOG_INFO, "the store of %s is open", real);
  }
  ds->links++;
  c->store = ds;
  struct fbuf fb;
  fbuf_init(&fb, FRAME_STORE_READY);
  fbuf_finish(&fb);
  if (dmn_send_raw(c->fd, fb.data, fb.len, NULL, 0) < 0)
    dmn_conn_drop(c);
  fbuf_free(&fb);
}

static void
forget_live(struct conn *c)
{
  for (size_t i = 0; i < c->nlive; i++)
    free(c->live[i]);
  free(c->live);
  c->live = NULL;
  c->nlive = 0;
}

/* C's front expires the history older than BEFORE of sessions other
   than its N LIVE ones.  Every front on the store says which sessions it
   has open when it expires history; none of them loses its history to
   another's expiry.  */
static void
expire_history(struct conn *c, int64_t before, const char *const *live, size_t n)
{
  forget_live(c);
  c->live = xmalloc((n ? n : 1) * sizeof *c->live);
  for (size_t i = 0; i < n; i++)
    c->live[i] = xstrdup(live[i]);
  c->nlive = n;
  size_t all = 0;
  for (struct conn *k = c->d->conns; k; k = k->next)
    if (k->store == c->store)
      all += k->nlive;
  cleanup_free const char **ids = xmalloc((all ? all : 1) * sizeof *ids);
  size_t m = 0;
  for (struct conn *k = c->d->conns; k; k = k->next)
    if (k->store == c->store)
      for (size_t i = 0; i < k->nlive; i++)
        ids[m++] = k->live[i];
  store_history_expire(c->store->st, before, ids, m);
}

void
dmn_store_frame(struct conn *c, const struct frame *fr)
{
  struct dmn_store *ds = c->store;
  if (fr->type == FRAME_STORE_SYNC) {
    struct synced *s = xmalloc(sizeof *s);
    s->fd = c->d->synced[1];
    s->conn_id = c->id;
    store_notify(ds->st, on_committed, s);
    return;
  }
  kiln_error_t err = NULL;
  int64_t before;
  cleanup_free const char **live = NULL;
  size_t n = 0;
  int expire = store_expire_parse(fr, &before, &live, &n, &err);
  if (expire == 1) {
    expire_history(c, before, live, n);
    return;
  }
  if (expire < 0 || store_apply(ds->st, ds->home, fr, &err) < 0)
    log_error(LOG_WARN, &err, "a front's store write was malformed; dropped");
}

void
dmn_store_release(struct conn *c)
{
  struct dmn_store *ds = c->store;
  forget_live(c);
  /* Kept open for the next front on the same KILN_HOME (a kernel's
     restart, the next kernel), as a zygote is kept warm.  */
  if (ds && --ds->links == 0)
    ds->unused_since = now_ns();
}

int64_t
dmn_stores_deadline(const struct daemon *d)
{
  int64_t t = -1;
  for (const struct dmn_store *ds = d->stores; ds; ds = ds->next) {
    int64_t expiry = ds->unused_since + (int64_t)(d->idle_s * 1e9);
    if (ds->unused_since && (t < 0 || expiry < t))
      t = expiry;
  }
  return t;
}

void
dmn_stores_tick(struct daemon *d, int64_t now)
{
  for (struct dmn_store *ds = d->stores, *next; ds; ds = next) {
    next = ds->next;
    if (ds->unused_since && now - ds->unused_since >= (int64_t)(d->idle_s * 1e9)) {
      log_msg(LOG_INFO, "the store of %s, unused for %.0f s, is closed", ds->home, d->idle_s);
      store_free(d, ds);
    }
  }
}
