/* kiln as a Jupyter kernel: one kiln session served over the Jupyter
   messaging protocol, on the caller's loop and front.  */
#ifndef KILN_JUP_KERNEL_H
#define KILN_JUP_KERNEL_H

#include "config.h"
#include "connection.h"
#include "error.h"
#include "kiln.h"
#include "loop.h"

struct jup_kernel;

/* Binds the channels of CONN and opens the kernel's session on FRONT.
   CFG, LOOP and FRONT are borrowed and must outlive the kernel; FRONT
   must have been made (front_new) before this call, which starts
   ZeroMQ's threads.  Returns NULL with ERR when a channel cannot be
   bound.  */
struct jup_kernel *jup_kernel_new(const struct kiln_config *cfg, struct loop *loop,
                                  struct front *front, const struct jup_connection *conn,
                                  kiln_error_t *err);

/* The front's ready callback, passed on: INFO (borrowed) names the
   Python the kernel reports; ERR (borrowed) that the zygote could not
   start, and the kernel stops the loop.  Messages that need the
   interpreter's version (kernel_info, execute) wait until this call.  */
void jup_kernel_ready(struct jup_kernel *k, const struct front_info *info, kiln_error_t err);

/* What the process should exit with once the loop has stopped.  */
int jup_kernel_exit_code(const struct jup_kernel *k);

/* Closes the kernel's session, sends what is still queued (bounded
   wait) and frees K.  Call before front_free.  */
void jup_kernel_free(struct jup_kernel *k);

#endif
