/* The deadline's interrupt, tagged with the cell it is meant for.  The
   front queues SIGINT to the session's init with the cell's number as
   the signal's value (sigqueue); the init passes it on as it came; here,
   a C handler drops an interrupt meant for an earlier cell (one that
   ended just as its deadline passed, the signal still on its way) and
   hands the rest to Python's SIGINT handler.  */
#ifndef KILN_INTERRUPT_H
#define KILN_INTERRUPT_H

#include <stdint.h>

/* Registers the _kiln_interrupt module (arm()), before CPython starts.  */
int intr_register(void);

/* Installs the handler for cell CELL_NO.  Python's signal.signal()
   replaces it; the runtime calls _kiln_interrupt.arm() after each such
   call of its own.  */
void intr_arm(uint64_t cell_no);

/* While a shell command runs (shell.c) the interrupt is not Python's:
   the handler writes a byte to WAKE_FD instead, on whichever thread
   takes the signal, and the worker passes the interrupt on to the
   command's process group.  WAKE_FD -1 gives it back to Python.  */
void intr_redirect(int wake_fd);

#endif
