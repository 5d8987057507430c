/* A Jupyter connection file: where the kernel's five sockets are bound
   and the key its messages are signed with.  */
#ifndef KILN_JUP_CONNECTION_H
#define KILN_JUP_CONNECTION_H

#include "error.h"

#include <stddef.h>
#include <stdint.h>

/* The channels, in the order their ports are kept.  */
enum jup_channel {
  JUP_SHELL,
  JUP_CONTROL,
  JUP_IOPUB,
  JUP_STDIN,
  JUP_HB,
  JUP_NCHANNELS,
};

struct jup_connection {
  char *transport; /* "tcp" or "ipc" */
  char *ip;        /* an address for tcp; a path prefix for ipc */
  int ports[JUP_NCHANNELS];
  uint8_t *key; /* the HMAC-SHA256 key; empty (KEY_LEN 0): messages are not signed */
  size_t key_len;
};

/* Reads the connection file PATH into *C (its strings allocated; free
   them with jup_connection_free).  Refuses, with ERR saying which field
   and why, a file that is not JSON, a transport other than tcp or ipc,
   a missing or out-of-range port (Jupyter always names the port: 0 is
   refused), and a signature_scheme other than hmac-sha256.  */
int jup_connection_read(const char *path, struct jup_connection *c, kiln_error_t *err);
void jup_connection_free(struct jup_connection *c);

/* The ZeroMQ endpoint of channel CH: "tcp://IP:PORT", or, as
   jupyter_client names them, "ipc://IP-PORT".  Allocated; the caller
   frees it.  */
char *jup_connection_endpoint(const struct jup_connection *c, enum jup_channel ch);

/* "shell", "control", ... for messages.  */
const char *jup_channel_name(enum jup_channel ch);

#endif
