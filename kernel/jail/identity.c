#define _GNU_SOURCE
#include "identity.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static int
set_limit(int resource, rlim_t v, const char *name, kiln_error_t *err)
{
  /* Never above the hard limit kiln was given: raising it needs a
     privilege the jail does not keep, and the operator's limit stands.  */
  struct rlimit cur;
  if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && v > cur.rlim_max)
    v = cur.rlim_max;
  struct rlimit rl = { v, v };
  if (setrlimit(resource, &rl) < 0)
    return kiln_error_make(err, errno, "setrlimit %s", name);
  return 0;
}

int
id_slot_take(struct id_slots *s)
{
  for (size_t i = 0; i < ID_SLOTS; i++) {
    size_t k = (s->next + i) % ID_SLOTS;
    if (!(s->used[k / 8] & (1u << (k % 8)))) {
      s->used[k / 8] |= (uint8_t)(1u << (k % 8));
      s->next = (k + 1) % ID_SLOTS;
      return (int)k;
    }
  }
  return -1;
}

void
id_slot_release(struct id_slots *s, int slot)
{
  if (slot >= 0 && slot < ID_SLOTS)
    s->used[slot / 8] &= (uint8_t) ~(1u << (slot % 8));
}

int
id_set_rlimits(const struct id_limits *l, kiln_error_t *err)
{
  /* RLIMIT_AS only when asked (no cgroups): OpenBLAS retries a failed
     allocation forever under it instead of raising MemoryError, so the
     cgroup's memory limit is the real one where there is a cgroup.  */
  if (set_limit(RLIMIT_CORE, 0, "CORE", err) < 0
      || set_limit(RLIMIT_NOFILE, l->nofile, "NOFILE", err) < 0
      || set_limit(RLIMIT_FSIZE, l->fsize, "FSIZE", err) < 0
      || set_limit(RLIMIT_CPU, l->cpu_s, "CPU", err) < 0)
    return -1;
  if (l->nproc && set_limit(RLIMIT_NPROC, l->nproc, "NPROC", err) < 0)
    return -1;
  if (l->address_space && set_limit(RLIMIT_AS, l->address_space, "AS", err) < 0)
    return -1;
  return 0;
}

int
id_drop_privileges(bool switch_ids, uid_t uid, gid_t gid, kiln_error_t *err)
{
  /* The bounding set can only shrink while CAP_SETPCAP is still held,
     so before the uid change.  */
  for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      return kiln_error_make(err, errno, "drop capability %d from the bounding set", cap);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return kiln_error_make(err, errno, "clear ambient capabilities");
  if (switch_ids) {
    if (setgroups(0, NULL) < 0)
      return kiln_error_make(err, errno, "setgroups");
    if (setresgid(gid, gid, gid) < 0)
      return kiln_error_make(err, errno, "setresgid %u", (unsigned)gid);
    if (setresuid(uid, uid, uid) < 0)
      return kiln_error_make(err, errno, "setresuid %u", (unsigned)uid);
  }
  /* A uid change from root clears permitted and effective, but not
     inheritable; in a user namespace nothing is cleared by itself.  */
  struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2] = { { 0 } };
  if (syscall(SYS_capset, &hdr, data) < 0)
    return kiln_error_make(err, errno, "capset");
  return 0;
}
