/* Spare workers: the daemon keeps DAEMON_SPARES workers of each zygote
   in use started ahead of demand, jailed and waiting, and hands one to
   the next front that asks for a fresh session.  A worker is the same
   for any session until its first cell (/work and /tmp are its own
   tmpfs; its cgroups and uid are the daemon's to name) but for one
   thing: the session's packages directory, bound into its jail so that
   packages installed later appear in it.  A spare is made with a
   directory of its own, which is renamed to the session's when a front
   takes it; the bind follows the directory, not its name.  */
#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where Z's sessions' packages directories are.  Allocated.  */
static char *
packages_root(const struct zygote *z)
{
  return xasprintf("%s/packages/sessions/", z->cfg.home);
}

void
dmn_spares_reap_stale(const struct zygote *z)
{
  cleanup_free char *root = packages_root(z);
  DIR *d = opendir(root);
  if (d == NULL)
    return;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    int pid = 0;
    if (sscanf(e->d_name, "spare-%d-", &pid) != 1 || pid <= 0 || pid == (int)getpid()
        || kill(pid, 0) == 0 || errno != ESRCH)
      continue;
    cleanup_free char *dir = xasprintf("%s%s", root, e->d_name);
    rmdir(dir);
  }
  closedir(d);
}

void
dmn_spares_refill(struct zygote *z)
{
  /* Only for a zygote some front uses (an unused one keeps nothing), and
     after the fronts' own requests: a spare never delays one.  */
  if (!z->ready || z->unused_since || z->nq > z->spares_asked)
    return;
  static unsigned serial;
  bool asked = false;
  while (z->nspares + z->spares_asked < DAEMON_SPARES) {
    char name[CG_NAME_MAX];
    snprintf(name, sizeof name, "spare-%d-%u", (int)getpid(), serial++);
    cleanup_free char *root = packages_root(z);
    char *dir = xasprintf("%s%s", root, name);
    if (mkdir_p(dir, 0755) < 0) {
      log_msg(LOG_WARN, "a spare worker's packages directory %s: %s", dir, strerror(errno));
      free(dir);
      break;
    }
    struct pending *p = dmn_pending_push(z, NULL, name, dir);
    p->spare = true;
    z->spares_asked++;
    asked = true;
  }
  if (asked)
    dmn_zygote_send_spawns(z);
}

void
dmn_spare_keep(struct zygote *z, struct child *ch, const uint8_t *raw, size_t rawlen,
               const int *four, char *packages)
{
  z->spares = xrealloc(z->spares, (z->nspares + 1) * sizeof *z->spares);
  struct spare *s = &z->spares[z->nspares++];
  memset(s, 0, sizeof *s);
  s->ch = ch;
  buf_append(&s->raw, raw, rawlen);
  memcpy(s->fds, four, sizeof s->fds);
  s->packages = packages;
}

/* Closes what the daemon holds of S, and removes its directory.  */
static void
spare_close(struct spare *s)
{
  for (size_t i = 0; i < 4; i++)
    close(s->fds[i]);
  buf_free(&s->raw);
  if (s->packages)
    rmdir(s->packages);
  free(s->packages);
  s->packages = NULL;
}

static void
spare_remove(struct zygote *z, size_t i)
{
  spare_close(&z->spares[i]);
  memmove(z->spares + i, z->spares + i + 1, (z->nspares - i - 1) * sizeof *z->spares);
  z->nspares--;
}

bool
dmn_spare_take(struct zygote *z, struct conn *c, const char *packages)
{
  if (z->nspares == 0)
    return false;
  /* The front matches workers to its requests in the order it sent
     them: one of its requests still with the zygote comes first.  */
  for (size_t i = 0; i < z->nq; i++)
    if (z->q[i].conn == c)
      return false;
  /* The session's directory, empty (nothing installed yet), becomes the
     spare's; a session with packages waits for a worker of its own.  */
  cleanup_free char *root = packages_root(z);
  if (strncmp(packages, root, strlen(root)) != 0 || strstr(packages, "/..")
      || rename(z->spares[0].packages, packages) < 0)
    return false;
  struct spare s = z->spares[0];
  memmove(z->spares, z->spares + 1, (z->nspares - 1) * sizeof *z->spares);
  z->nspares--;
  s.ch->spare = false;
  s.ch->conn = c;
  /* The hand-over passes the descriptors on and closes them.  */
  dmn_hand_over(z->d, s.ch, s.raw.data, s.raw.len, s.fds, false);
  buf_free(&s.raw);
  free(s.packages);
  dmn_spares_refill(z);
  return true;
}

void
dmn_spare_reaped(struct daemon *d, const struct child *ch)
{
  for (struct zygote *z = d->zygotes; z; z = z->next)
    for (size_t i = 0; i < z->nspares; i++)
      if (z->spares[i].ch == ch) {
        log_msg(LOG_WARN, "a spare worker died before it was used");
        spare_remove(z, i);
        return;
      }
}

void
dmn_spares_free(struct zygote *z)
{
  for (size_t i = 0; i < z->nspares; i++) {
    struct child *ch = z->spares[i].ch;
    if (ch->pid > 0)
      kill(ch->pid, SIGKILL);
    ch->spare = false;
    spare_close(&z->spares[i]);
  }
  free(z->spares);
  z->spares = NULL;
  z->nspares = 0;
}
