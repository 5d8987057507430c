/* complete_request, inspect_request, is_complete_request and
   history_request.  */
#ifndef KILN_JUP_INTROSPECT_H
#define KILN_JUP_INTROSPECT_H

#include "state.h"

#include <stdbool.h>

/* Starts complete_request, inspect_request or is_complete_request M
   (taken): the session's interpreter answers between its cells.  Returns
   true when M was answered at once (no session, a refusal), false while
   the answer is awaited (K->asking has it).  */
bool introspect_start(struct jup_kernel *k, struct jup_msg *m);

/* Forgets the question awaited, if any: its answer never comes (the
   kernel is going).  */
void introspect_forget(struct jup_kernel *k);

/* Answers history_request M (borrowed) from the session's history:
   "tail" (the last N cells), "range" (execution counts START to STOP)
   and "search" (a glob PATTERN, UNIQUE), oldest first.  */
void history_reply(struct jup_kernel *k, const struct jup_msg *m);

#endif
