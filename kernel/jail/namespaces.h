/* Namespaces for a worker: created by the middle process of the spawn,
   before it forks kiln's init (init.c), which is PID 1 of the new pid
   namespace; the worker is the init's child, PID 2, born inside all of
   them.  */
#ifndef KILN_NAMESPACES_H
#define KILN_NAMESPACES_H

#include "error.h"

#include <stdbool.h>
#include <sys/types.h>

/* Unshares mount, network, ipc, uts, cgroup and pid namespaces (the pid
   namespace applies to the next child).  With USERNS, a user namespace
   first, mapping HOST_UID/HOST_GID to themselves, which is how an
   unprivileged kiln gets the others.  */
int ns_unshare(bool userns, uid_t host_uid, gid_t host_gid, kiln_error_t *err);
/* In a user namespace just made: maps UID and GID to themselves.  */
int ns_map_ids(uid_t uid, gid_t gid, kiln_error_t *err);

/* This process's seccomp mode from /proc/self/status: 0 none, 2 a
   filter, -1 when it cannot be read.  kiln loads its own filters only in
   workers and their init, so a 2 in the front or the doctor is somebody
   else's: a container engine's profile.  */
int ns_seccomp_mode(void);

/* What an operator does about a foreign seccomp profile.  */
#define NS_SECCOMP_HINT                                                                            \
  "kiln runs under a seccomp filter it did not load (a container engine's default profile): run "  \
  "it with --security-opt seccomp=docker/seccomp.json, or in Kubernetes with seccompProfile "      \
  "Localhost kiln-seccomp.json; see docker/README.md"

/* In the worker: its own hostname, and loopback up in its empty network
   namespace (code talking to itself over 127.0.0.1 works; nothing else
   is reachable).  */
int ns_setup_uts_net(const char *hostname, kiln_error_t *err);

#endif
