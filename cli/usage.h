/* `kiln --help` (usage.c).  */
#ifndef KILN_CLI_USAGE_H
#define KILN_CLI_USAGE_H

#include <stdio.h>

/* Prints kiln's usage, its options with their defaults, to OUT.  */
void kiln_usage(FILE *out);

#endif
