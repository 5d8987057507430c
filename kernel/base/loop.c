#define _GNU_SOURCE
#include "loop.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

struct watch {
  int fd;
  loop_fd_cb cb;
  void *data;
  bool live;
};

struct loop {
  int epfd;
  bool stop;
  /* Indexed by fd: fds are small and dense in a process that closes
     what it does not use.  */
  struct watch *watches;
  size_t nwatches;
  loop_deadline_cb deadline;
  loop_tick_cb tick;
  void *timer_data;
};

struct loop *
loop_new(kiln_error_t *err)
{
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    kiln_error_make(err, errno, "epoll_create1");
    return NULL;
  }
  struct loop *loop = xzalloc(sizeof *loop);
  loop->epfd = epfd;
  return loop;
}

void
loop_free(struct loop *loop)
{
  if (loop == NULL)
    return;
  close(loop->epfd);
  free(loop->watches);
  free(loop);
}

int
loop_add(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *data, kiln_error_t *err)
{
  if ((size_t)fd >= loop->nwatches) {
    size_t n = loop->nwatches ? loop->nwatches : 64;
    while (n <= (size_t)fd)
      n *= 2;
    loop->watches = xrealloc(loop->watches, n * sizeof *loop->watches);
    memset(loop->watches + loop->nwatches, 0, (n - loop->nwatches) * sizeof *loop->watches);
    loop->nwatches = n;
  }
  struct epoll_event ev = { .events = events, .data.fd = fd };
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    return kiln_error_make(err, errno, "epoll_ctl add fd %d", fd);
  loop->watches[fd] = (struct watch){ .fd = fd, .cb = cb, .data = data, .live = true };
  return 0;
}

int
loop_mod(struct loop *loop, int fd, uint32_t events, kiln_error_t *err)
{
  struct epoll_event ev = { .events = events, .data.fd = fd };
  if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
    return kiln_error_make(err, errno, "epoll_ctl mod fd %d", fd);
  return 0;
}

void
loop_del(struct loop *loop, int fd)
{
  if (fd < 0 || (size_t)fd >= loop->nwatches || !loop->watches[fd].live)
    return;
  epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
  loop->watches[fd].live = false;
}

void
loop_set_timers(struct loop *loop, loop_deadline_cb deadline, loop_tick_cb tick, void *data)
{
  loop->deadline = deadline;
  loop->tick = tick;
  loop->timer_data = data;
}

int
loop_run(struct loop *loop, kiln_error_t *err)
{
  struct epoll_event evs[64];
  while (!loop->stop) {
    int timeout = -1;
    if (loop->deadline) {
      int64_t d = loop->deadline(loop->timer_data);
      if (d >= 0) {
        int64_t left = d - now_ns();
        /* Round up so a deadline is never polled for just early.  */
        timeout = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
      }
    }
    int n = epoll_wait(loop->epfd, evs, 64, timeout);
    if (n < 0 && errno != EINTR)
      return kiln_error_make(err, errno, "epoll_wait");
    for (int i = 0; i < n && !loop->stop; i++) {
      int fd = evs[i].data.fd;
      /* A callback earlier in this batch may have removed this fd.  */
      if ((size_t)fd >= loop->nwatches || !loop->watches[fd].live)
        continue;
      struct watch w = loop->watches[fd];
      w.cb(loop, fd, evs[i].events, w.data);
    }
    if (loop->tick && !loop->stop)
      loop->tick(now_ns(), loop->timer_data);
  }
  return 0;
}

void
loop_stop(struct loop *loop)
{
  loop->stop = true;
}

bool
loop_stopping(const struct loop *loop)
{
  return loop->stop;
}
