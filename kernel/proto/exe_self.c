/* The kiln command starts its zygote, compile helper and installer by
   exec of itself: the same build on both sides of the configuration
   frame (handoff.h), whatever name or path the command was run by.  */
#include "link.h"

const char *
link_kiln_exe(void)
{
  return "/proc/self/exe";
}
