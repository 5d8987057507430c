/* install_packages: wheels installed for one session without giving its
   cells the network.

   The front checks each requirement (a name, extras and version
   specifiers; nothing pip could take for an option, a URL or a path)
   and the allowlist, then runs `kiln __install` (kernel/pkg/installer.c:
   pip in a jail of its own, the package index its only destination)
   into a fresh staging directory.  One install runs at a time; the rest
   wait in order.  What pip installed is checked again (every
   distribution, dependencies included, must be allowed and within
   --max-package-size), made the front's own, and hard-linked into the
   session's packages directory, which its jail binds read-only at
   PACKAGES_PATH: nothing is copied, and the files appear in the running
   session.  The next cell puts the directory on sys.path.

   An install whose every requirement is pinned (name==version) is kept
   in KILN_HOME/packages/cache under a digest of the pins, the platform,
   Python's version and the index: another session asking for the same
   gets links to the same files without running pip.  */
#define _GNU_SOURCE
#include "install.h"
#include "installer.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SPECS 32
#define LOG_KEEP  (64u << 10) /* of pip's output: the end, where its errors are */
#define NOBODY    65534

struct install {
  struct install *next;
  int64_t handle;
  char session_id[40];
  char **specs;
  size_t nspecs;
  bool cacheable;
  char key[65]; /* hex digest, when cacheable */
  front_install_cb cb;
  void *ctx;
  int64_t started_ns;
  char *staging;
};

/* ---- the queue ---- */

static void
install_free(struct install *r)
{
  for (size_t i = 0; i < r->nspecs; i++)
    free(r->specs[i]);
  free(r->specs);
  if (r->staging) {
    install_rm_tree(r->staging);
    free(r->staging);
  }
  free(r);
}

static void
answer(struct front *f, struct install *r, const char *error, const char *log_tail,
       const char *installed, bool cached)
{
  struct install_reply rep = {
    .session_id = r->session_id,
    .ok = error == NULL,
    .message = error,
    .log = log_tail,
    .installed = installed ? installed : "",
    .cached = cached,
    .duration_ms = (double)(now_ns() - r->started_ns) / 1e6,
  };
  f->metrics.installs[r->cb == NULL ? FRONT_INSTALL_CANCELLED
                      : error       ? FRONT_INSTALL_FAILED
                      : cached      ? FRONT_INSTALL_CACHED
                                    : FRONT_INSTALL_INSTALLED]++;
  if (r->cb)
    r->cb(r->ctx, &rep);
}

/* "name version, ..." of D.  */
static char *
dists_text(const struct dists *d)
{
  struct buf b = { 0 };
  for (size_t i = 0; i < d->n; i++) {
    cleanup_free char *one = xasprintf("%s%s %s", i ? ", " : "", d->names[i], d->versions[i]);
    buf_append(&b, one, strlen(one));
  }
  buf_append(&b, "", 1);
  return (char *)b.data;
}

/* Links SITE's distributions into R's session and answers R.  */
static void
deliver(struct front *f, struct install *r, const char *site, bool cached)
{
  kiln_error_t err = NULL;
  struct session *s = session_find(f, r->session_id);
  struct dists d, have;
  dists_read(site, &d);
  cleanup_free char *sdir = install_session_dir(f, r->session_id);
  dists_read(sdir, &have);
  cleanup_free char *text = dists_text(&d);
  if (s == NULL || s->closed) {
    answer(f, r, "the session was closed during the install", NULL, NULL, false);
    goto out;
  }
  /* One version of a project per session: a second would be shadowed
     by the first on sys.path, or mixed with it file by file.  */
  for (size_t i = 0; i < d.n; i++)
    for (size_t k = 0; k < have.n; k++)
      if (strcmp(d.names[i], have.names[k]) == 0 && strcmp(d.versions[i], have.versions[k]) != 0) {
        cleanup_free char *msg = xasprintf(
            "%s %s is installed in this session already; it cannot also have %s %s (a session "
            "keeps one version of a package: start a new session for another)",
            have.names[k], have.versions[k], d.names[i], d.versions[i]);
        answer(f, r, msg, NULL, NULL, false);
        goto out;
      }
  if (install_session_make(f, r->session_id, &err) < 0 || install_link_tree(site, sdir, &err) < 0) {
    log_error(LOG_ERROR, &err, "install_packages");
    answer(f, r, "the packages could not be linked into the session's directory", NULL, NULL,
           false);
    goto out;
  }
  /* The next cell (of this worker or any later one) adds the directory
     to sys.path and drops the import system's caches.  */
  s->has_packages = true;
  s->packages_changed = true;
  answer(f, r, NULL, NULL, text, cached);
out:
  dists_free(&d);
  dists_free(&have);
}

/* pip's output, from its last lines: what a user needs to read.  */
static char *
explain(struct front *f, int code, const char *log)
{
  if (f->install.killed_at_deadline)
    return xasprintf("the install took longer than --install-timeout (%g s) and was stopped",
                     f->cfg->packages.timeout_s);
  if (code == INSTALL_EXIT_PROXY)
    return xasprintf("the download went over its limit (--max-package-size)");
  if (strstr(log, "refused a connection to"))
    return xasprintf("the installer tried to reach a host other than the package index: %s",
                     strstr(log, "refused a connection to"));
  if (strstr(log, "ResolutionImpossible") || strstr(log, "conflicting dependencies"))
    return xstrdup("the packages conflict with each other or with the preinstalled packages "
                   "(their versions are fixed); pip says why below");
  if (strstr(log, "No matching distribution found"))
    return xstrdup("no wheel of it for this platform and Python (or no such version) on the "
                   "package index: kiln installs wheels only, never source distributions");
  if (strstr(log, "trying to install outside the target directory"))
    return xstrdup("a wheel tried to write outside its directory (a path in its RECORD "
                   "escapes it); nothing of it was installed");
  if (code == INSTALL_EXIT_SETUP)
    return xstrdup("the installer's sandbox could not be set up (see kiln's log)");
  return xasprintf("pip failed (exit status %d)", code);
}

static void start_next(struct front *f);

static void
finish(struct front *f)
{
  struct install_link *l = &f->install;
  struct install *r = l->head;
  l->head = r->next;
  if (l->head == NULL)
    l->tail = NULL;
  l->running = false;
  l->pid = 0;
  buf_append(&l->log, "", 1);
  const char *log = (const char *)l->log.data;
  int code = WIFEXITED(l->status) ? WEXITSTATUS(l->status) : 128 + WTERMSIG(l->status);
  if (code != 0) {
    cleanup_free char *why = explain(f, code, log);
    answer(f, r, why, log, NULL, false);
  } else {
    cleanup_free char *site = install_find_site(r->staging, 4);
    struct dists d = { 0 };
    kiln_error_t err = NULL;
    if (site == NULL)
      answer(f, r, "pip installed nothing", log, NULL, false);
    else {
      dists_read(site, &d);
      if (install_check_dists(f, site, &d, &err) < 0) {
        answer(f, r, err->msg, NULL, NULL, false);
        kiln_error_release(&err);
      } else {
        /* The files become the front's: the installer's uid (which any
           later install runs as) cannot change them under a session.  */
        install_own_tree(r->staging);
        cleanup_free char *cached = NULL;
        if (r->cacheable) {
          cleanup_free char *cache = install_packages_dir(f, "cache");
          cached = xasprintf("%s/%s", cache, r->key);
          if (mkdir_p(cache, 0700) < 0 || rename(site, cached) < 0) {
            log_msg(LOG_WARN, "install_packages: cannot keep %s in the cache: %s", r->key,
                    strerror(errno));
            free(cached);
            cached = NULL;
          }
        }
        deliver(f, r, cached ? cached : site, false);
      }
      dists_free(&d);
    }
  }
  buf_free(&l->log);
  install_free(r);
  start_next(f);
}

static void
on_output(struct loop *loop, int fd, uint32_t events, void *data)
{
  (void)events;
  struct front *f = data;
  struct install_link *l = &f->install;
  char chunk[8192];
  ssize_t n = read(fd, chunk, sizeof chunk);
  if (n > 0) {
    buf_append(&l->log, chunk, (size_t)n);
    if (l->log.len > 2 * LOG_KEEP) {
      memmove(l->log.data, l->log.data + l->log.len - LOG_KEEP, LOG_KEEP);
      l->log.len = LOG_KEEP;
    }
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  loop_del(loop, fd);
  close(fd);
  l->watching = false;
  if (l->reaped)
    finish(f);
}

void
install_reaped(struct front *f, int status)
{
  struct install_link *l = &f->install;
  l->status = status;
  l->reaped = true;
  if (!l->watching)
    finish(f);
}

static const char *
index_host(const char *url, char *host, size_t cap, int *port)
{
  const char *p = url;
  *port = 80;
  if (strncmp(p, "https://", 8) == 0) {
    p += 8;
    *port = 443;
  } else if (strncmp(p, "http://", 7) == 0)
    p += 7;
  else
    return NULL;
  size_t n = strcspn(p, ":/");
  if (n == 0 || n >= cap)
    return NULL;
  memcpy(host, p, n);
  host[n] = '\0';
  if (p[n] == ':')
    *port = atoi(p + n + 1);
  return host;
}

static int
spawn_installer(struct front *f, struct install *r, kiln_error_t *err)
{
  struct install_link *l = &f->install;
  const struct sbx_config *sbx = f->cfg->sbx;
  if (sbx == NULL || !sbx->jail)
    return kiln_error_make(err, 0, "packages are installed only with the sandbox on");
  if (l->constraints == NULL && (l->constraints = install_write_constraints(f, err)) == NULL)
    return -1;
  cleanup_free char *staging_root = install_packages_dir(f, "staging");
  if (mkdir_p(staging_root, 0700) < 0)
    return kiln_error_make(err, errno, "mkdir %s", staging_root);
  r->staging = xasprintf("%s/XXXXXX", staging_root);
  if (mkdtemp(r->staging) == NULL) {
    free(r->staging);
    r->staging = NULL;
    return kiln_error_make(err, errno, "mkdtemp for an install");
  }
  if (!sbx->userns && chown(r->staging, NOBODY, NOBODY) < 0)
    return kiln_error_make(err, errno, "chown %s", r->staging);
  /* The staging tree is under a 0700 directory: only its own uid and
     the front reach it, through the bind.  */
  char host[256];
  int port;
  if (index_host(f->cfg->packages.index, host, sizeof host, &port) == NULL)
    return kiln_error_make(err, 0, "--package-index '%s' is not an http(s) URL",
                           f->cfg->packages.index);

  const char *argv[64];
  size_t n = 0;
  cleanup_free char *python = xasprintf("%s/bin/python3", f->cfg->venv);
  cleanup_free char *max = xasprintf("%zu", f->cfg->packages.max_size * 4 + (64u << 20));
  cleanup_free char *allow1 = xasprintf("%s:%d", host, port);
  cleanup_free char *ids = xasprintf("%u:%u", (unsigned)sbx->host_uid, (unsigned)sbx->host_gid);
  argv[n++] = "kiln-install";
  argv[n++] = INSTALLER_COMMAND;
  argv[n++] = "--python";
  argv[n++] = python;
  argv[n++] = "--index";
  argv[n++] = f->cfg->packages.index;
  argv[n++] = "--target";
  argv[n++] = r->staging;
  argv[n++] = "--root";
  argv[n++] = sbx->root_dir;
  argv[n++] = "--constraints";
  argv[n++] = l->constraints;
  argv[n++] = "--max-bytes";
  argv[n++] = max;
  argv[n++] = "--allow";
  argv[n++] = allow1;
  /* The public index serves its files from another host.  */
  if (strcmp(host, "pypi.org") == 0) {
    argv[n++] = "--allow";
    argv[n++] = "files.pythonhosted.org:443";
  }
  if (sbx->userns) {
    argv[n++] = "--userns";
    argv[n++] = ids;
  }
  for (size_t i = 0; i < sbx->nexpose; i++) {
    argv[n++] = "--expose";
    argv[n++] = sbx->expose[i];
  }
  argv[n++] = "--";
  for (size_t i = 0; i < r->nspecs && n < sizeof argv / sizeof argv[0] - 1; i++)
    argv[n++] = r->specs[i];
  argv[n] = NULL;

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0)
    return kiln_error_make(err, errno, "pipe");
  /* Exec'd as the zygote is (link_exec_self); its output is one pipe.  */
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  int rc = link_exec_self(&l->pid, &fa, (char *const *)argv);
  posix_spawn_file_actions_destroy(&fa);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    l->pid = 0;
    return kiln_error_make(err, rc, "start the installer");
  }
  set_nonblock(pipefd[0], true);
  l->out = pipefd[0];
  if (loop_add(f->loop, l->out, EPOLLIN, on_output, f, err) < 0) {
    kill(l->pid, SIGKILL);
    close(l->out);
    /* Reaped as usual: its exit answers it.  */
    return -1;
  }
  l->watching = true;
  return 0;
}

static void
start_next(struct front *f)
{
  struct install_link *l = &f->install;
  while (l->head && !l->running) {
    struct install *r = l->head;
    r->started_ns = now_ns();
    if (r->cacheable) {
      cleanup_free char *cache = install_packages_dir(f, "cache");
      cleanup_free char *entry = xasprintf("%s/%s", cache, r->key);
      struct stat st;
      if (stat(entry, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* Installed before for another session: links, no pip.  */
        l->head = r->next;
        if (l->head == NULL)
          l->tail = NULL;
        deliver(f, r, entry, true);
        install_free(r);
        continue;
      }
    }
    kiln_error_t err = NULL;
    buf_free(&l->log);
    l->reaped = false;
    l->watching = false;
    l->killed_at_deadline = false;
    if (spawn_installer(f, r, &err) < 0) {
      if (l->pid > 0) {
        /* Started but not watched: its exit ends it.  */
        l->running = true;
        l->deadline_ns = now_ns();
        kiln_error_release(&err);
        return;
      }
      l->head = r->next;
      if (l->head == NULL)
        l->tail = NULL;
      log_error(LOG_ERROR, &err, "install_packages");
      answer(f, r, "the installer could not be started (see kiln's log)", NULL, NULL, false);
      install_free(r);
      continue;
    }
    l->running = true;
    l->deadline_ns = now_ns() + (int64_t)(f->cfg->packages.timeout_s * 1e9);
  }
}

/* The cache key of R's pins: BLAKE2b-256 over what decides the files.  */
static void
install_key(const struct front *f, struct install *r, char **names)
{
  struct utsname u;
  uname(&u);
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  const char *parts[] = { "kiln-packages-1", u.machine, f->python_version, f->cfg->packages.index };
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    crypto_generichash_update(&st, (const unsigned char *)(parts[i] ? parts[i] : ""),
                              strlen(parts[i] ? parts[i] : "") + 1);
  /* Sorted: the same set in another order is the same install.  */
  size_t n = r->nspecs;
  char **sorted = xmalloc(n * sizeof *sorted);
  for (size_t i = 0; i < n; i++) {
    const char *eq = strstr(r->specs[i], "==");
    sorted[i] = xasprintf("%s==%s", names[i], eq ? eq + 2 : "");
  }
  for (size_t i = 1; i < n; i++)
    for (size_t k = i; k > 0 && strcmp(sorted[k - 1], sorted[k]) > 0; k--) {
      char *t = sorted[k];
      sorted[k] = sorted[k - 1];
      sorted[k - 1] = t;
    }
  for (size_t i = 0; i < n; i++) {
    crypto_generichash_update(&st, (const unsigned char *)sorted[i], strlen(sorted[i]) + 1);
    free(sorted[i]);
  }
  free(sorted);
  unsigned char out[32];
  crypto_generichash_final(&st, out, sizeof out);
  sodium_bin2hex(r->key, sizeof r->key, out, sizeof out);
}

int64_t
front_install_packages(struct front *f, const char *session_id, const char *const *specs,
                       size_t nspecs, front_install_cb cb, void *ctx, kiln_error_t *err)
{
  struct session *s = session_id ? session_find(f, session_id) : NULL;
  if (s == NULL || s->closed)
    return kiln_error_make(err, 0, "unknown session '%s'", session_id ? session_id : "");
  if (nspecs == 0 || nspecs > MAX_SPECS)
    return kiln_error_make(err, 0, "give 1 to %d packages", MAX_SPECS);
  if (install_allow_load(f, err) < 0)
    return -1;
  char **names = xzalloc(nspecs * sizeof *names);
  bool pinned_all = true;
  int rc = 0;
  for (size_t i = 0; i < nspecs && rc == 0; i++) {
    bool pinned = false;
    rc = install_parse_spec(specs[i], &names[i], &pinned, err);
    if (rc == 0 && !install_allowed(&f->install, names[i]))
      rc = kiln_error_make(err, 0, "'%s' is not in the allowed packages (--allow-packages)",
                           names[i]);
    pinned_all = pinned_all && pinned;
  }
  struct install *r = NULL;
  if (rc == 0) {
    r = xzalloc(sizeof *r);
    r->handle = ++f->next_handle;
    snprintf(r->session_id, sizeof r->session_id, "%s", s->id);
    r->specs = xzalloc(nspecs * sizeof *r->specs);
    for (size_t i = 0; i < nspecs; i++)
      r->specs[i] = xstrdup(specs[i]);
    r->nspecs = nspecs;
    r->cacheable = pinned_all;
    if (r->cacheable)
      install_key(f, r, names);
    r->cb = cb;
    r->ctx = ctx;
  }
  for (size_t i = 0; i < nspecs; i++)
    free(names[i]);
  free(names);
  if (rc < 0)
    return -1;
  struct install_link *l = &f->install;
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
  int64_t handle = r->handle;
  start_next(f);
  return handle;
}

bool
install_cancel(struct front *f, int64_t handle)
{
  struct install_link *l = &f->install;
  for (struct install **pp = &l->head; *pp; pp = &(*pp)->next) {
    struct install *r = *pp;
    if (r->handle != handle)
      continue;
    if (r == l->head && l->running) {
      /* Its exit ends it, unanswered.  */
      r->cb = NULL;
      kill(l->pid, SIGKILL);
      return true;
    }
    f->metrics.installs[FRONT_INSTALL_CANCELLED]++;
    *pp = r->next;
    if (l->tail == r) {
      l->tail = NULL;
      for (struct install *t = l->head; t; t = t->next)
        l->tail = t;
    }
    install_free(r);
    return true;
  }
  return false;
}

int64_t
install_deadline(const struct front *f)
{
  return f->install.running && f->install.pid > 0 ? f->install.deadline_ns : -1;
}

void
install_tick(struct front *f, int64_t now)
{
  struct install_link *l = &f->install;
  if (l->running && l->pid > 0 && now >= l->deadline_ns && !l->killed_at_deadline) {
    l->killed_at_deadline = true;
    kill(l->pid, SIGKILL);
  }
}

void
install_free_all(struct front *f)
{
  struct install_link *l = &f->install;
  if (l->running && l->pid > 0) {
    kill(l->pid, SIGKILL);
    waitpid(l->pid, NULL, 0);
  }
  if (l->watching) {
    loop_del(f->loop, l->out);
    close(l->out);
    l->watching = false;
  }
  while (l->head) {
    struct install *r = l->head;
    l->head = r->next;
    install_free(r);
  }
  for (size_t i = 0; i < l->nallow; i++)
    free(l->allow[i]);
  free(l->allow);
  free(l->constraints);
  buf_free(&l->log);
}
