#define _GNU_SOURCE
#include "namespaces.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int
write_proc(const char *path, const char *text, kiln_error_t *err)
{
  cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, text, strlen(text)) < 0)
    return kiln_error_make(err, errno, "write %s", path);
  return 0;
}

int
ns_seccomp_mode(void)
{
  FILE *f = fopen("/proc/self/status", "re");
  if (f == NULL)
    return -1;
  char line[256];
  int mode = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Seccomp: %d", &mode) == 1)
      break;
  fclose(f);
  return mode;
}

int
ns_unshare(bool userns, uid_t host_uid, gid_t host_gid, kiln_error_t *err)
{
  int flags
      = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWPID;
  if (userns)
    flags |= CLONE_NEWUSER;
  if (unshare(flags) < 0) {
    /* A seccomp filter already on kiln itself is not kiln's (it loads
       its own only in workers): a container engine's profile.  */
    if (errno == EPERM && ns_seccomp_mode() == 2)
      return kiln_error_make(err, errno, "unshare(CLONE_NEWUSER|...): refused: " NS_SECCOMP_HINT);
    if (userns && (errno == EPERM || errno == EACCES || errno == ENOSPC))
      return kiln_error_make(
          err, errno,
          "unshare(CLONE_NEWUSER|...): this host does not let unprivileged users create user "
          "namespaces (check kernel.unprivileged_userns_clone, user.max_user_namespaces and "
          "AppArmor's restrict_unprivileged_userns), or run kiln as root");
    return kiln_error_make(err, errno, "unshare namespaces");
  }
  if (!userns)
    return 0;
  return ns_map_ids(host_uid, host_gid, err);
}

int
ns_map_ids(uid_t uid, gid_t gid, kiln_error_t *err)
{
  /* An unprivileged process may map only its own ids, and only after
     giving up setgroups in the namespace.  */
  char map[64];
  if (write_proc("/proc/self/setgroups", "deny", err) < 0)
    return -1;
  snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
  if (write_proc("/proc/self/uid_map", map, err) < 0)
    return -1;
  snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
  return write_proc("/proc/self/gid_map", map, err);
}

int
ns_setup_uts_net(const char *hostname, kiln_error_t *err)
{
  if (sethostname(hostname, strlen(hostname)) < 0)
    return kiln_error_make(err, errno, "sethostname");
  cleanup_close int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return kiln_error_make(err, errno, "socket for loopback");
  struct ifreq ifr = { 0 };
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
    return kiln_error_make(err, errno, "SIOCGIFFLAGS lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
    return kiln_error_make(err, errno, "SIOCSIFFLAGS lo");
  return 0;
}
