/* The package installer's only way to the network.  pip runs in a jail
   whose network namespace holds nothing but loopback; it is pointed at
   this proxy (--proxy http://127.0.0.1:PORT), which runs in the trusted
   parent on a listening socket created inside that namespace, and relays
   to the few destinations the package index needs and to nothing else.
   What pip sends is treated as hostile: every request is bounded, checked
   against the allow list before anything is dialled, and a client
   connection carries exactly one request or one tunnel.  */
#ifndef KILN_PROXY_H
#define KILN_PROXY_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A destination the proxy relays to.  HOST is a DNS name or an IP
   literal (an IPv6 one with or without brackets), compared
   case-insensitively and exactly; PORT must match exactly too.  */
struct proxy_allow {
  const char *host;
  uint16_t port;
};

struct proxy;

/* Serves HTTP proxy requests on LISTEN_FD, a listening TCP socket, on
   threads of its own: one acceptor and one per connection, at most 32
   connections at once (more wait in the listen backlog).  LISTEN_FD is
   taken over, on failure too.  ALLOW is copied.  MAX_BYTES caps the bytes
   received from all origins together (0: no cap); past it every
   connection is cut, new ones are refused, and proxy_exceeded says so.
   Returns a proxy that proxy_stop frees, or NULL with ERR.  */
struct proxy *proxy_start(int listen_fd, const struct proxy_allow *allow, size_t nallow,
                          uint64_t max_bytes, kiln_error_t *err);

/* Stops accepting, cuts every connection, joins the threads and frees P.
   A connection waiting on DNS finishes that lookup first: getaddrinfo
   cannot be interrupted, only its own timeouts bound it.  */
void proxy_stop(struct proxy *p);

/* Whether MAX_BYTES was passed.  */
bool proxy_exceeded(const struct proxy *p);

/* The first destination refused, as "host:port" ("[v6]:port" for an IPv6
   literal), or "" when none was: for the message the user sees when pip
   fails.  The string belongs to P and lives until proxy_stop.  */
const char *proxy_first_refused(const struct proxy *p);

/* The bytes received from origins so far.  */
uint64_t proxy_bytes_in(const struct proxy *p);

#endif
