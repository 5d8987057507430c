/* How the HTTP transport answers: responses counted by status for
   /metrics, errors as JSON-RPC bodies, the headers it reads, and the
   endpoints beside MCP's: the 401 challenge, the protected resource
   metadata and /metrics.  */
#define _GNU_SOURCE
#include "http_internal.h"
#include "jsonrpc.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

void
http_count_status(struct mcp_http *h, unsigned code)
{
  mcp_http_count(&h->status, (int)code);
}

/* Queues a response of STATUS with BODY (copied) of type CTYPE; NAME and
   VALUE pairs (NULL-terminated) are extra headers.  */
enum MHD_Result
http_respond(struct mcp_http *h, struct MHD_Connection *c, unsigned status, const char *ctype,
             const char *body, size_t len, ...)
{
  struct MHD_Response *r
      = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (r == NULL)
    return MHD_NO;
  if (ctype)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  va_list ap;
  va_start(ap, len);
  for (const char *name; (name = va_arg(ap, const char *)) != NULL;) {
    const char *value = va_arg(ap, const char *);
    if (value)
      MHD_add_response_header(r, name, value);
  }
  va_end(ap);
  enum MHD_Result ok = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  http_count_status(h, status);
  return ok;
}

/* A JSON-RPC error as the body of an HTTP error, so that an MCP client
   shows the reason; ID (borrowed) or null.  */
enum MHD_Result
http_refuse(struct mcp_http *h, struct MHD_Connection *c, unsigned status, json_t *id, int code,
            const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *e = jrpc_error(id ? id : json_null(), code, msg, NULL);
  cleanup_free char *text = json_dumps(e, JSON_COMPACT);
  json_decref(e);
  return http_respond(h, c, status, "application/json", text, strlen(text), NULL);
}

const char *
http_header(struct MHD_Connection *c, const char *name)
{
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Whether the Accept header ACCEPT names TYPE, its family's wildcard or
   everything; an absent header accepts everything.  */
bool
http_accepts(const char *accept, const char *type)
{
  if (accept == NULL)
    return true;
  size_t family = strcspn(type, "/");
  for (const char *p = accept; *p;) {
    while (*p == ' ' || *p == ',')
      p++;
    size_t n = strcspn(p, ",;");
    while (n > 0 && p[n - 1] == ' ')
      n--;
    if ((n == strlen(type) && strncasecmp(p, type, n) == 0) || (n == 3 && memcmp(p, "*/*", 3) == 0)
        || (n == family + 2 && strncasecmp(p, type, family) == 0 && p[family] == '/'
            && p[family + 1] == '*'))
      return true;
    p += strcspn(p, ",");
  }
  return false;
}

void
http_peer_name(struct MHD_Connection *c, char *out, size_t n)
{
  const union MHD_ConnectionInfo *i
      = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  out[0] = '\0';
  if (i == NULL || i->client_addr == NULL)
    return;
  const struct sockaddr *sa = i->client_addr;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
              (socklen_t)n);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
              (socklen_t)n);
}

/* ----------------------------------------------------- the other paths */

enum MHD_Result
http_unauthorized(struct mcp_http *h, struct MHD_Connection *c, bool presented)
{
  /* The document's URL as the client reached kiln (its Host passed the
     checks), so that it is one the client can fetch.  */
  const char *host = http_header(c, "Host");
  cleanup_free char *where = host ? xasprintf("%s://%s/.well-known/oauth-protected-resource%s",
                                              h->tls ? "https" : "http", host, h->hc->path)
                                  : xstrdup(h->metadata_url);
  cleanup_free char *challenge = xasprintf(
      "Bearer resource_metadata=\"%s\"%s", where,
      presented ? ", error=\"invalid_token\", error_description=\"unknown bearer token\"" : "");
  static const char body[]
      = "{\"error\":\"invalid_token\",\"error_description\":\"a bearer token from kiln's "
        "--token-file is required\"}";
  return http_respond(h, c, MHD_HTTP_UNAUTHORIZED, "application/json", body, sizeof body - 1,
                      MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge, NULL);
}

/* RFC 9728's document: what this resource is and who issues its tokens.  */
enum MHD_Result
http_resource_metadata(struct mcp_http *h, struct MHD_Connection *c)
{
  const char *host = http_header(c, "Host");
  cleanup_free char *resource
      = xasprintf("%s://%s%s", h->tls ? "https" : "http", host ? host : "", h->hc->path);
  json_t *doc = json_pack("{s:s, s:[s], s:s}", "resource", resource, "bearer_methods_supported",
                          "header", "resource_name", "kiln");
  json_t *servers = json_array();
  if (h->hc->auth_server)
    json_array_append_new(servers, json_string(h->hc->auth_server));
  json_object_set_new(doc, "authorization_servers", servers);
  cleanup_free char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  return http_respond(h, c, MHD_HTTP_OK, "application/json", text, strlen(text), NULL);
}

enum MHD_Result
http_metrics(struct mcp_http *h, struct MHD_Connection *c)
{
  struct front_metrics m;
  front_metrics(h->server->front, &m);
  /* This response is counted before it is rendered, so that it is in it.  */
  http_count_status(h, MHD_HTTP_OK);
  struct buf out = { 0 };
  mcp_metrics_render(&out, &m, &h->status);
  struct MHD_Response *r
      = MHD_create_response_from_buffer(out.len, out.data, MHD_RESPMEM_MUST_COPY);
  buf_free(&out);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, MCP_METRICS_CONTENT_TYPE);
  enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ok;
}
