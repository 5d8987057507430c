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

/* In the worker: its own hostname, and loopback up in its empty network
   namespace (code talking to itself over 127.0.0.1 works; nothing else
   is reachable).  */
int ns_setup_uts_net(const char *hostname, kiln_error_t *err);

#endif
