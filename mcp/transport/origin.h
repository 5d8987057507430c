/* Who may talk to kiln's HTTP endpoint from a browser's point of view:
   the Origin and Host checks MCP's Streamable HTTP transport requires
   against DNS rebinding.  Pure functions of the header values and the
   configured lists, so that they are tested on their own.  */
#ifndef KILN_MCP_ORIGIN_H
#define KILN_MCP_ORIGIN_H

#include <stdbool.h>

/* Whether a request with Origin ORIGIN (NULL: no such header, as from
   any non-browser client) may be served.  ALLOW is the comma-separated
   --allow-origin list (NULL: empty; "*" allows any); LOOPBACK says kiln
   is bound to a loopback address, where loopback origins
   (http://localhost:3000, http://127.0.0.1, http://[::1]:8080) are
   allowed too.  "null" and anything that is not scheme://host[:port]
   are refused.  */
bool http_origin_ok(const char *origin, const char *allow, bool loopback);

/* Whether Host HOST may be served: an IP address (a rebinding page can
   only put a name there) or "localhost", any port; or a name in the
   comma-separated --allow-host list ALLOW ("*" allows any).  NULL (no
   Host: HTTP/1.0) is refused.  */
bool http_host_ok(const char *host, const char *allow);

/* Whether the textual address ADDR is a loopback address.  */
bool http_addr_is_loopback(const char *addr);

#endif
