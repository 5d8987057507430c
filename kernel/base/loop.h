/* A small epoll event loop in the manner of redis's ae: fds with callbacks,
   plus one "next deadline" query so that timers stay with their owners.  */
#ifndef KILN_LOOP_H
#define KILN_LOOP_H

#include "error.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct loop;
typedef void (*loop_fd_cb)(struct loop *loop, int fd, uint32_t events, void *data);
/* Returns the monotonic time (now_ns) of the next deadline, or -1 for none;
   called before every wait.  */
typedef int64_t (*loop_deadline_cb)(void *data);
/* Called after every wait with the current time.  */
typedef void (*loop_tick_cb)(int64_t now, void *data);

/* Returns a new loop the caller frees with loop_free, or NULL with ERR.  */
struct loop *loop_new(kiln_error_t *err);
void loop_free(struct loop *loop);

/* Watches FD for EVENTS (EPOLLIN, EPOLLOUT...).  The loop does not own FD:
   the caller removes it with loop_del before closing it.  */
int loop_add(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *data,
             kiln_error_t *err);
int loop_mod(struct loop *loop, int fd, uint32_t events, kiln_error_t *err);
void loop_del(struct loop *loop, int fd);

/* The most owners of timers one loop has.  */
#define LOOP_MAX_TIMERS 4

/* Adds (or, for a DATA already added, replaces) an owner of timers:
   DEADLINE and TICK are called with DATA around every wait.  */
void loop_set_timers(struct loop *loop, loop_deadline_cb deadline, loop_tick_cb tick, void *data);

/* Runs until loop_stop; returns 0, or -1 if epoll itself fails.  */
int loop_run(struct loop *loop, kiln_error_t *err);
void loop_stop(struct loop *loop);
/* Lets loop_run run again after loop_stop.  */
void loop_resume(struct loop *loop);
bool loop_stopping(const struct loop *loop);

#ifdef __cplusplus
}
#endif

#endif
