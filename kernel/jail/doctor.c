#define _GNU_SOURCE
#include "mounts.h"
#include "namespaces.h"
#include "neutral.h"
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <linux/landlock.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Each probe runs in a forked child (sbx_in_child) and does the real
   thing, so the verdict is the host's, not a guess from version numbers.  */

static int
one_ns(const struct sbx_config *c, int flag, const char *name, kiln_error_t *err)
{
  int flags = flag | (c->userns ? CLONE_NEWUSER : 0);
  if (unshare(flags) < 0)
    return kiln_error_make(err, errno, "unshare(%s)", name);
  return 0;
}

#define NS_PROBE(fn, flag, name)                                                                   \
  static int fn(const struct sbx_config *c, kiln_error_t *err)                                     \
  {                                                                                                \
    return one_ns(c, flag, name, err);                                                             \
  }
NS_PROBE(probe_pid, CLONE_NEWPID, "CLONE_NEWPID")
NS_PROBE(probe_mnt, CLONE_NEWNS, "CLONE_NEWNS")
NS_PROBE(probe_net, CLONE_NEWNET, "CLONE_NEWNET")
NS_PROBE(probe_ipc, CLONE_NEWIPC, "CLONE_NEWIPC")
NS_PROBE(probe_uts, CLONE_NEWUTS, "CLONE_NEWUTS")
NS_PROBE(probe_cgroup, CLONE_NEWCGROUP, "CLONE_NEWCGROUP")

static int
probe_userns(const struct sbx_config *c, kiln_error_t *err)
{
  return ns_unshare(true, c->host_uid, c->host_gid, err);
}

static int
probe_seccomp(const struct sbx_config *c, kiln_error_t *err)
{
  struct scf_policy p;
  if (scf_build(&p, err) < 0)
    return -1;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return kiln_error_make(err, errno, "PR_SET_NO_NEW_PRIVS");
  if (scf_load(&p, err) < 0)
    return -1;
  if (syscall(SYS_mount, "none", "/", "tmpfs", 0, NULL) == 0 || errno != EPERM)
    return kiln_error_make(err, 0, "the filter let mount(2) through");
  if (socket(AF_PACKET, SOCK_RAW, 0) >= 0)
    return kiln_error_make(err, 0, "the filter let an AF_PACKET socket through");
  return 0;
}

static int
probe_no_new_privs(const struct sbx_config *c, kiln_error_t *err)
{
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
    return kiln_error_make(err, errno, "PR_SET_NO_NEW_PRIVS");
  return 0;
}

/* The whole sequence a worker goes through, without Python.  */
/* The parameters of the jailed test process (probe_jail sets them in
   the child that runs it, which is alone).  */
static const struct sbx_params *jail_params;

/* Runs in a child of its own: enters the jail and checks it from inside.  */
static int
enter_and_check(const struct sbx_config *c, kiln_error_t *err)
{
  if (sbx_enter(c, jail_params, err) < 0)
    return -1;
  /* Inside: the host's root is gone and / is read-only.  */
  if (access("/etc/shadow", F_OK) == 0)
    return kiln_error_make(err, 0, "the host's /etc/shadow is visible inside the jail");
  if (access("/work", W_OK) != 0)
    return kiln_error_make(err, errno, "/work is not writable inside the jail");
  return 0;
}

static int
probe_jail(const struct sbx_config *c, kiln_error_t *err)
{
  struct scf_policy p;
  if (scf_build(&p, err) < 0)
    return -1;
  struct sbx_params sp
      = { .session_id = "doctor", .uid = c->uid_base, .gid = c->uid_base, .scf = &p };
  struct sbx_config nocg = *c;
  nocg.cg.version = 0; /* cgroups are probed on their own */
  if (sbx_prepare(&nocg, &sp, err) < 0)
    return -1;
  jail_params = &sp;
  /* The jailed process's own words reach the row through sbx_in_child's
     pipe: "mount /proc: Operation not permitted" says what a bare exit
     status cannot.  */
  if (sbx_in_child(enter_and_check, &nocg, err) < 0) {
    /* Any step may be the one a foreign filter refuses (unshare,
       mount, sethostname): the refusal is the same EPERM.  */
    if (strstr((*err)->msg, strerror(EPERM)) && ns_seccomp_mode() == 2
        && strstr((*err)->msg, "seccomp=") == NULL) {
      cleanup_free char *why = xstrdup((*err)->msg);
      kiln_error_make(err, 0, "%s (%s)", why, NS_SECCOMP_HINT);
    }
    return kiln_error_wrap(err, "a jailed test process failed");
  }
  return 0;
}

static void
row(FILE *out, const char *what, const char *status, const char *detail)
{
  fprintf(out, "  %-36s %-12s %s\n", what, status, detail ? detail : "");
}

static void
line(FILE *out, const char *what, bool ok, const char *detail)
{
  row(out, what, ok ? "active" : "UNAVAILABLE", detail);
}

int
sbx_doctor(const struct sbx_config *c, FILE *out)
{
  struct {
    const char *name;
    int (*fn)(const struct sbx_config *, kiln_error_t *);
  } probes[] = {
    { "pid namespace", probe_pid },
    { "mount namespace", probe_mnt },
    { "network namespace (no network)", probe_net },
    { "ipc namespace", probe_ipc },
    { "uts namespace (own hostname)", probe_uts },
    { "cgroup namespace", probe_cgroup },
    { "no-new-privs", probe_no_new_privs },
    { "seccomp allowlist", probe_seccomp },
  };
  int bad = 0;
  fprintf(out, "kiln doctor: the worker sandbox on this host\n\n");
  if (c->userns) {
    kiln_error_t e = NULL;
    int r = sbx_in_child(probe_userns, c, &e);
    line(out, "user namespace (unprivileged kiln)", r == 0, r ? e->msg : "kiln runs unprivileged");
    bad |= r != 0;
    kiln_error_release(&e);
  } else
    line(out, "identity", true, "root: each session gets its own uid");
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
    kiln_error_t e = NULL;
    int r = sbx_in_child(probes[i].fn, c, &e);
    line(out, probes[i].name, r == 0, r ? e->msg : NULL);
    bad |= r != 0;
    kiln_error_release(&e);
  }
  char detail[160];
  snprintf(detail, sizeof detail, "%zu of the %zu refused by name are known to this libseccomp",
           scf_known(scf_refused, scf_nrefused), scf_nrefused);
  line(out, "seccomp names", true, detail);
  cleanup_free char *cg
      = c->userns ? sbx_unprivileged_bound(c) : cg_host_describe(&c->cg, &c->cg_limits);
  line(out, "cgroups (memory, pids, cpu)", !c->userns && c->cg.version != 0, cg);
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
  snprintf(detail, sizeof detail,
           abi > 0 ? "ABI %ld available; not used (the mount namespace is the filesystem jail)"
                   : "not available",
           abi);
  row(out, "landlock", abi > 0 ? "not used" : "unavailable", detail);
  kiln_error_t e = NULL;
  int r = sbx_in_child(neutral_check, c, &e);
  row(out, "kiln's trees at " NEUTRAL_DIR, r == 0 ? "active" : "unavailable",
      r ? e->msg : "no host path of kiln's Python, venv or runtime in the jail");
  kiln_error_release(&e);
  r = sbx_in_child(probe_jail, c, &e);
  line(out, "complete jail (read-only root, ...)", r == 0,
       r ? e->msg : "a test process was jailed and checked");
  bad |= r != 0;
  kiln_error_release(&e);
  fprintf(out, "\n%s\n",
          bad ? "kiln cannot jail workers on this host: `kiln serve` refuses to start unless "
                "given --insecure-no-sandbox."
              : "kiln can jail workers on this host.");
  return bad ? -1 : 0;
}
