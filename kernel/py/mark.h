/* Where in a cell's output each thing it showed belongs.  When a cell
   shows a figure, an image or a display() form, the runtime flushes
   stdout and calls _kiln_mark.mark(): a FRAME_MARK goes to the front,
   which reads the stdout pipe, notes how much it has received by then
   and answers MARKED; the worker waits for the answer, so that nothing
   it prints after the mark is read before it.  The output carries the
   mark's number.  The front can then put what the cell
   showed between the lines it printed, in the order it happened.

   _kiln_mark.display() is such a mark that also carries what is shown
   (FRAME_DISPLAY), or an update of a named display, or a clear_output:
   the front passes it on to a notebook at once, after the output
   printed before it and before anything printed after.  */
#ifndef KILN_MARK_H
#define KILN_MARK_H

#include <stdbool.h>
#include <stddef.h>

/* Registers the _kiln_mark module (mark()), before CPython starts.  */
int mark_register(void);

/* Marks are numbered from 0 in each cell and sent on FD only while a
   cell runs (between these two calls).  A display frame
   (_kiln_mark.display) carries at most DISPLAY_MAX bytes of outputs, the
   bound the front holds a cell's outputs to.  */
void mark_cell_begin(int fd, size_t display_max);
void mark_cell_end(void);

/* input() in a cell (_kiln_mark.input_request) sends FRAME_INPUT and
   waits for the front's INPUT_REPLY: the line, or why there is none.
   An interrupt while it waits raises KeyboardInterrupt at once; the
   front still answers that FRAME_INPUT, and the answer, come later, is
   stale.  Whether F is such a stale answer, to be dropped (the count
   of those owed goes down).  */
struct frame;
bool mark_stale_input(const struct frame *f);

#endif
