/* The proxy's request parser (proxy_request.c): the head of one request
   from the installer's pip, checked before anything is relayed.  */
#ifndef KILN_PROXY_REQUEST_H
#define KILN_PROXY_REQUEST_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOST_MAX    254
#define BAD_REQUEST "400 Bad Request"

/* One parsed request.  HOST is lowercased and without brackets.  */
struct request {
  bool connect;
  char method[16];
  char host[HOST_MAX];
  uint16_t port;
  const char *path, *version;
  size_t path_len;
  uint64_t content_length;
  bool has_host;
  struct buf headers; /* the header lines to pass on, each with its CRLF */
};

/* Parses HEAD (HEAD_LEN bytes, up to its blank line) into RQ.  Returns
   NULL, or the status to answer with and a reason in *WHY.  */
const char *parse_request(const char *head, size_t head_len, struct request *rq, const char **why);

#endif
