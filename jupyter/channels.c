/* ZeroMQ on kiln's loop.
 *
 * Why the loop watches ZMQ_FD rather than a thread running zmq_poll:
 * the kernel's every other event (the front's workers, signals, timers)
 * is already on this loop, and a second thread would need a queue and a
 * wake-up pipe to hand each message over, and locks around the front,
 * which is not thread-safe.  ZMQ_FD is cheap to watch but edge-like: it
 * becomes readable when the socket's state changes, not while messages
 * wait, and any zmq call on the socket (a send too) may consume that
 * edge.  So after every wake-up and after every send, pump() asks each
 * socket for ZMQ_EVENTS and reads until none has a message.  A send made
 * while pumping (a reply) makes the pump go round once more; one made
 * elsewhere (output a cell wrote, from the front's callbacks) asks the
 * loop for a pump before its next wait, rather than pumping there and
 * then: a message handled in the middle of the front's callback could
 * call back into the front.  */
#define _GNU_SOURCE
#include "channels.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <zmq.h>

/* More frames than this in one message (identities and buffers) and it
   is dropped: no Jupyter client routes through so many hops.  */
#define MAX_FRAMES 64
/* The largest frame on the channels that carry no code: anyone who can
   reach a port can send before a signature is checked, so each channel
   takes no more than it needs (the heartbeat echoes a few bytes, control
   and stdin carry small requests).  Shell takes the caller's limit.  */
#define SMALL_FRAME (1 << 20)
#define HB_FRAME    4096
/* Messages read from one socket before the others get their turn.  */
#define BATCH 32

struct jup_channels {
  struct loop *loop;
  void *ctx;
  void *sock[JUP_NCHANNELS];
  int fd[JUP_NCHANNELS];
  uint8_t *key;
  struct jup_key k;
  char session[37];
  jup_msg_cb cb;
  void *cb_ctx;
  struct jup_replay *replay; /* with a key: the signatures seen */
  bool pumping, again;
  bool need_pump; /* a send outside pump(): pump before the loop waits */
};

static const int socket_types[JUP_NCHANNELS] = {
  [JUP_SHELL] = ZMQ_ROUTER, [JUP_CONTROL] = ZMQ_ROUTER, [JUP_IOPUB] = ZMQ_PUB,
  [JUP_STDIN] = ZMQ_ROUTER, [JUP_HB] = ZMQ_REP,
};

/* Reads one message (every frame of it) from SOCK into MSGS (at most
   MAX_FRAMES; *N of them).  Returns 1 when one was read, 0 when none is
   waiting, -1 when it was too long and dropped.  */
static int
recv_frames(void *sock, zmq_msg_t *msgs, size_t *n)
{
  *n = 0;
  bool more = true, dropped = false;
  while (more) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    /* Only the first frame can be missing: ZeroMQ delivers a message's
       frames together.  */
    if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      if (*n == 0 && !dropped)
        return 0;
      break;
    }
    more = zmq_msg_more(&m);
    if (*n < MAX_FRAMES)
      msgs[(*n)++] = m;
    else {
      dropped = true;
      zmq_msg_close(&m);
    }
  }
  if (dropped) {
    for (size_t i = 0; i < *n; i++)
      zmq_msg_close(&msgs[i]);
    *n = 0;
    return -1;
  }
  return 1;
}

/* The heartbeat: whatever comes is sent back as it is.  */
static void
echo(void *sock, zmq_msg_t *msgs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (zmq_msg_send(&msgs[i], sock, ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0)) < 0)
      zmq_msg_close(&msgs[i]);
}

/* Checks and hands on one message read from channel C.  */
static void
deliver(struct jup_channels *ch, enum jup_channel c, zmq_msg_t *msgs, size_t n)
{
  struct jup_frame frames[MAX_FRAMES];
  for (size_t i = 0; i < n; i++)
    frames[i] = (struct jup_frame){ zmq_msg_data(&msgs[i]), zmq_msg_size(&msgs[i]) };
  struct jup_msg *m = xzalloc(sizeof *m);
  kiln_error_t err = NULL;
  int rc = jup_msg_parse(&ch->k, frames, n, m, &err);
  /* The signature is the frame after the delimiter, which follows the
     routing ids.  */
  if (rc == 0 && ch->replay && !jup_replay_first(ch->replay, frames[m->nids + 1].data)) {
    jup_msg_free(m);
    rc = kiln_error_make(&err, 0, "a replay (its signature came before)");
  }
  for (size_t i = 0; i < n; i++)
    zmq_msg_close(&msgs[i]);
  if (rc < 0) {
    log_msg(LOG_WARN, "jupyter: a message on %s was dropped: %s", jup_channel_name(c), err->msg);
    kiln_error_release(&err);
    free(m);
    return;
  }
  ch->cb(ch->cb_ctx, c, m);
}

static void
pump(struct jup_channels *ch)
{
  if (ch->pumping) {
    ch->again = true;
    return;
  }
  ch->pumping = true;
  /* Control first: an interrupt or a shutdown is not kept waiting
     behind a burst on shell.  */
  static const enum jup_channel order[] = { JUP_CONTROL, JUP_HB, JUP_SHELL, JUP_STDIN, JUP_IOPUB };
  do {
    ch->again = false;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
      enum jup_channel c = order[i];
      for (int k = 0;; k++) {
        int events = 0;
        size_t sz = sizeof events;
        /* Asked of every socket, iopub too: it is this call that lets
           ZeroMQ process the socket's pending commands and re-arm its
           fd.  */
        if (zmq_getsockopt(ch->sock[c], ZMQ_EVENTS, &events, &sz) < 0 || !(events & ZMQ_POLLIN))
          break;
        if (k == BATCH) {
          ch->again = true;
          break;
        }
        zmq_msg_t msgs[MAX_FRAMES];
        size_t n;
        int rc = recv_frames(ch->sock[c], msgs, &n);
        if (rc == 0)
          break;
        if (rc < 0) {
          log_msg(LOG_WARN, "jupyter: a message on %s with more than %d frames was dropped",
                  jup_channel_name(c), MAX_FRAMES);
          continue;
        }
        if (c == JUP_HB)
          echo(ch->sock[c], msgs, n);
        else
          deliver(ch, c, msgs, n);
      }
    }
  } while (ch->again);
  ch->pumping = false;
}

static void
on_fd(struct loop *loop, int fd, uint32_t events, void *data)
{
  pump(data);
}

static int64_t
pump_deadline(void *data)
{
  struct jup_channels *ch = data;
  return ch->need_pump ? now_ns() : -1;
}

static void
pump_tick(int64_t now, void *data)
{
  struct jup_channels *ch = data;
  if (ch->need_pump) {
    ch->need_pump = false;
    pump(ch);
  }
}

struct jup_channels *
jup_channels_new(struct loop *loop, const struct jup_connection *conn, size_t max_frame,
                 jup_msg_cb cb, void *ctx, kiln_error_t *err)
{
  struct jup_channels *ch = xzalloc(sizeof *ch);
  ch->loop = loop;
  ch->cb = cb;
  ch->cb_ctx = ctx;
  ch->key = xmalloc(conn->key_len + 1);
  memcpy(ch->key, conn->key, conn->key_len);
  ch->k = (struct jup_key){ ch->key, conn->key_len };
  /* Unsigned messages (an empty key) cannot be told from their replays.  */
  if (conn->key_len > 0)
    ch->replay = jup_replay_new();
  jup_uuid(ch->session);
  loop_set_timers(loop, pump_deadline, pump_tick, ch);
  for (int c = 0; c < JUP_NCHANNELS; c++)
    ch->fd[c] = -1;
  ch->ctx = zmq_ctx_new();
  if (ch->ctx == NULL) {
    kiln_error_make(err, errno, "zmq_ctx_new");
    jup_channels_free(ch, 0);
    return NULL;
  }
  int64_t large = max_frame > INT64_MAX ? INT64_MAX : (int64_t)max_frame;
  int64_t small = large < SMALL_FRAME ? large : SMALL_FRAME;
  const int64_t limits[JUP_NCHANNELS] = {
    [JUP_SHELL] = large, [JUP_CONTROL] = small, [JUP_IOPUB] = small,
    [JUP_STDIN] = small, [JUP_HB] = HB_FRAME,
  };
  int ipv6 = strchr(conn->ip, ':') != NULL;
  for (int c = 0; c < JUP_NCHANNELS; c++) {
    cleanup_free char *ep = jup_connection_endpoint(conn, c);
    ch->sock[c] = zmq_socket(ch->ctx, socket_types[c]);
    if (ch->sock[c] == NULL
        || zmq_setsockopt(ch->sock[c], ZMQ_MAXMSGSIZE, &limits[c], sizeof limits[c]) < 0
        || zmq_setsockopt(ch->sock[c], ZMQ_IPV6, &ipv6, sizeof ipv6) < 0
        || zmq_bind(ch->sock[c], ep) < 0) {
      kiln_error_make(err, 0, "cannot bind the %s channel to %s: %s", jup_channel_name(c), ep,
                      zmq_strerror(zmq_errno()));
      jup_channels_free(ch, 0);
      return NULL;
    }
    size_t sz = sizeof ch->fd[c];
    if (zmq_getsockopt(ch->sock[c], ZMQ_FD, &ch->fd[c], &sz) < 0
        || loop_add(loop, ch->fd[c], EPOLLIN, on_fd, ch, err) < 0) {
      if (err && *err == NULL)
        kiln_error_make(err, 0, "ZMQ_FD: %s", zmq_strerror(zmq_errno()));
      ch->fd[c] = -1;
      jup_channels_free(ch, 0);
      return NULL;
    }
  }
  return ch;
}

void
jup_channels_free(struct jup_channels *ch, int linger_ms)
{
  if (ch == NULL)
    return;
  loop_set_timers(ch->loop, NULL, NULL, ch);
  for (int c = 0; c < JUP_NCHANNELS; c++) {
    if (ch->fd[c] >= 0)
      loop_del(ch->loop, ch->fd[c]);
    if (ch->sock[c]) {
      zmq_setsockopt(ch->sock[c], ZMQ_LINGER, &linger_ms, sizeof linger_ms);
      zmq_close(ch->sock[c]);
    }
  }
  /* Waits, at most the linger, for what the sockets still hold.  */
  if (ch->ctx)
    zmq_ctx_term(ch->ctx);
  if (ch->key)
    memset(ch->key, 0, ch->k.len);
  free(ch->key);
  jup_replay_free(ch->replay);
  free(ch);
}

const char *
jup_channels_session(const struct jup_channels *ch)
{
  return ch->session;
}

void
jup_send(struct jup_channels *ch, enum jup_channel to, const struct jup_msg *parent,
         const char *msg_type, json_t *content)
{
  if (content == NULL) {
    /* Only text that is not UTF-8 makes json_pack fail, and the front
       gives none: a bug, said rather than sent half-made.  */
    log_msg(LOG_ERROR, "jupyter: a %s message could not be made, not sent", msg_type);
    return;
  }
  json_t *header = jup_header_new(msg_type, ch->session);
  json_t *empty = json_object();
  /* On iopub the first frame is a topic for subscribers to filter on,
     named as ipykernel names them.  */
  cleanup_free char *topic = xasprintf("kernel.%s.%s", ch->session, msg_type);
  struct jup_frame topic_frame = { topic, strlen(topic) };
  const struct jup_frame *ids = to == JUP_IOPUB ? &topic_frame : parent ? parent->ids : NULL;
  size_t nids = to == JUP_IOPUB ? 1 : parent ? parent->nids : 0;
  size_t n;
  struct jup_frame *f = jup_msg_build(&ch->k, ids, nids, header, parent ? parent->header : empty,
                                      empty, content, &n);
  json_decref(header);
  json_decref(empty);
  json_decref(content);
  for (size_t i = 0; i < n; i++)
    if (zmq_send(ch->sock[to], f[i].data, f[i].len, ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0))
        < 0) {
      /* Only the first frame can be refused (a full queue); the rest of
         a message always follows it.  */
      log_msg(LOG_WARN, "jupyter: a %s message on %s was dropped: %s", msg_type,
              jup_channel_name(to), zmq_strerror(zmq_errno()));
      break;
    }
  jup_frames_free(f, n);
  if (ch->pumping)
    ch->again = true;
  else
    ch->need_pump = true;
}
