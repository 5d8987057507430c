#define _GNU_SOURCE
#include "owners.h"
#include "conn.h"
#include "server.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct mcp_owned {
  struct mcp_owned *next;
  char *session_id;
  char *owner;
};

void
mcp_owner_claim(struct mcp_conn *c, const char *session_id)
{
  if (c->owner == NULL || session_id == NULL)
    return;
  struct mcp_server *s = c->server;
  for (struct mcp_owned *o = s->owned; o; o = o->next)
    if (strcmp(o->session_id, session_id) == 0)
      return;
  /* Sessions that ended without close_session (a lost worker the front
     dropped) would stay here forever: drop what the front no longer
     has before adding.  */
  if (s->front) {
    size_t n;
    cleanup_free struct session_info *all = front_list_sessions(s->front, &n);
    for (struct mcp_owned **pp = &s->owned; *pp;) {
      bool live = false;
      for (size_t i = 0; i < n && !live; i++)
        live = strcmp(all[i].session_id, (*pp)->session_id) == 0;
      if (live) {
        pp = &(*pp)->next;
        continue;
      }
      struct mcp_owned *dead = *pp;
      *pp = dead->next;
      free(dead->session_id);
      free(dead->owner);
      free(dead);
    }
  }
  struct mcp_owned *o = xzalloc(sizeof *o);
  o->session_id = xstrdup(session_id);
  o->owner = xstrdup(c->owner);
  o->next = s->owned;
  s->owned = o;
}

bool
mcp_owner_may(const struct mcp_conn *c, const char *session_id)
{
  if (c->owner == NULL)
    return true;
  for (const struct mcp_owned *o = c->server->owned; o; o = o->next)
    if (strcmp(o->session_id, session_id) == 0)
      return strcmp(o->owner, c->owner) == 0;
  return false;
}

int
mcp_owner_check(const struct mcp_conn *c, const char *session_id, bool long_form, kiln_error_t *err)
{
  if (session_id == NULL || mcp_owner_may(c, session_id))
    return 0;
  if (long_form)
    return kiln_error_make(err, 0,
                           "unknown session '%s' (closed, or never created); omit session_id "
                           "to start a new session",
                           session_id);
  return kiln_error_make(err, 0, "unknown session '%s'", session_id);
}

void
mcp_owner_forget(struct mcp_server *s, const char *session_id)
{
  for (struct mcp_owned **pp = &s->owned; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->session_id, session_id) == 0) {
      struct mcp_owned *o = *pp;
      *pp = o->next;
      free(o->session_id);
      free(o->owner);
      free(o);
      return;
    }
}

void
mcp_owner_close_all(struct mcp_server *s, const char *owner)
{
  for (struct mcp_owned **pp = &s->owned; *pp;) {
    struct mcp_owned *o = *pp;
    if (strcmp(o->owner, owner) != 0) {
      pp = &o->next;
      continue;
    }
    *pp = o->next;
    kiln_error_t err = NULL;
    if (s->front && front_close_session(s->front, o->session_id, &err) < 0)
      kiln_error_release(&err);
    free(o->session_id);
    free(o->owner);
    free(o);
  }
}

void
mcp_owner_free_all(struct mcp_server *s)
{
  while (s->owned) {
    struct mcp_owned *o = s->owned;
    s->owned = o->next;
    free(o->session_id);
    free(o->owner);
    free(o);
  }
}
