/* What kiln has counted, as an operator's Prometheus scrapes it: the
   front's metrics and the HTTP transport's responses, written in the
   text exposition format 0.0.4.  */
#ifndef KILN_MCP_METRICS_H
#define KILN_MCP_METRICS_H

#include "kiln.h"
#include "util.h"

#include <stddef.h>
#include <stdint.h>

/* The Content-Type of what mcp_metrics_render writes.  */
#define MCP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* HTTP responses by status code, kept by the transport.  A plain value
   that owns no memory; zero it to start.  Code 0 stands for "other":
   the codes that found no slot of their own.  */
struct mcp_http_counts {
  size_t n;
  struct {
    int code;
    uint64_t count;
  } by_code[32];
};

/* Counts one response with status CODE in H.  Each code in 100..599 gets
   a slot of its own, up to 31 codes; the 32nd slot is "other" (code 0),
   which counts every code after those and any code outside 100..599, so
   that a client making up codes cannot grow the table or push a real
   code out.  */
void mcp_http_count(struct mcp_http_counts *h, int code);

/* Appends to OUT (the caller's, which it frees with buf_free) every
   metric of M, and of H unless H is NULL (a server without HTTP), in
   the text exposition format 0.0.4: each family with its # HELP and
   # TYPE lines, names prefixed kiln_.  M and H are only read.  */
void mcp_metrics_render(struct buf *out, const struct front_metrics *m,
                        const struct mcp_http_counts *h);

#endif
