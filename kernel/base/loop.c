#define _GNU_SOURCE
#include "loop.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
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
  /* Each owner of timers (the front, a transport) in the order added.  */
  struct {
    loop_deadline_cb deadline;
    loop_tick_cb tick;
    void *data;
  } timers[LOOP_MAX_TIMERS];
  size_t ntimers;
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
  for (size_t i = 0; i < loop->ntimers; i++)
    if (loop->timers[i].data == data) {
      loop->timers[i].deadline = deadline;
      loop->timers[i].tick = tick;
      return;
    }
  /* A fixed handful of owners, known at build time: more is a bug.  */
  if (loop->ntimers == LOOP_MAX_TIMERS)
    abort();
  loop->timers[loop->ntimers].deadline = deadline;
  loop->timers[loop->ntimers].tick = tick;
  loop->timers[loop->ntimers].data = data;
  loop->ntimers++;
}

int
loop_run(struct loop *loop, kiln_error_t *err)
{
  struct epoll_event evs[64];
  while (!loop->stop) {
    int timeout = -1;
    for (size_t i = 0; i < loop->ntimers; i++) {
      int64_t d = loop->timers[i].deadline ? loop->timers[i].deadline(loop->timers[i].data) : -1;
      if (d >= 0) {
        int64_t left = d - now_ns();
        /* Round up so a deadline is never polled for just early.  */
        int t = left <= 0                   ? 0
                : left / 1000000 >= INT_MAX ? INT_MAX
                                            : (int)((left + 999999) / 1000000);
        if (timeout < 0 || t < timeout)
          timeout = t;
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
    for (size_t i = 0; i < loop->ntimers && !loop->stop; i++)
      if (loop->timers[i].tick)
        loop->timers[i].tick(now_ns(), loop->timers[i].data);
  }
  return 0;
}

void
loop_resume(struct loop *loop)
{
  loop->stop = false;
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
