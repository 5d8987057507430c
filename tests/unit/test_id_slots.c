/* The session uids a front or the daemon hands out (identity.h): two
   live sessions never hold one slot; a slot just released is the last to
   come back; with every slot held there is none.  */
#include "check.h"
#include "identity.h"
#include "util.h"

#include <stdlib.h>

static void
slots_are_distinct_until_released(void)
{
  struct id_slots *s = xzalloc(sizeof *s);
  CHECK(id_slot_take(s) == 0);
  CHECK(id_slot_take(s) == 1);
  CHECK(id_slot_take(s) == 2);
  id_slot_release(s, 1);
  /* Not the released one: it comes back only after the rest.  */
  CHECK(id_slot_take(s) == 3);
  id_slot_release(s, -1);
  free(s);
}

static void
with_every_slot_held_there_is_none(void)
{
  struct id_slots *s = xzalloc(sizeof *s);
  for (int i = 0; i < ID_SLOTS; i++)
    CHECK(id_slot_take(s) == i);
  CHECK(id_slot_take(s) == -1);
  id_slot_release(s, 41);
  CHECK(id_slot_take(s) == 41);
  CHECK(id_slot_take(s) == -1);
  free(s);
}

int
main(void)
{
  static const struct test_case cases[] = {
    { "slots are distinct until released", slots_are_distinct_until_released },
    { "with every slot held there is none", with_every_slot_held_there_is_none },
  };
  return RUN(cases);
}
