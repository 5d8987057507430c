/* kiln-conformance-fixture: mcp/ serving the fixture's tables (fixture.h)
   to one client on stdin and stdout, with no front: nothing it offers
   runs Python.  */
#define _GNU_SOURCE
#include "config.h"
#include "fixture.h"
#include "server.h"
#include "transport/stdio.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

struct loop *fixture_loop;

const struct mcp_method fixture_methods[] = {
  { "prompts/list", fixture_prompts_list, false },
  { "prompts/get", fixture_prompts_get, false },
  { "completion/complete", fixture_complete, false },
  { "resources/list", fixture_resources_list, false },
  { "resources/read", fixture_resources_read, false },
  { "resources/templates/list", fixture_templates_list, false },
  { "resources/subscribe", fixture_subscribe, false },
  { "resources/unsubscribe", fixture_subscribe, false },
};
const size_t fixture_nmethods = sizeof fixture_methods / sizeof fixture_methods[0];

static void
stop(void *ctx)
{
  loop_stop(ctx);
}

int
main(int argc, char **argv)
{
  if (argc > 1) {
    bool help = strcmp(argv[1], "--help") == 0;
    fprintf(help ? stdout : stderr,
            "usage: kiln-conformance-fixture  (serves MCP on stdin and stdout)\n");
    return help ? 0 : 2;
  }
  /* A client that goes away is seen as a failed write, not a signal.  */
  signal(SIGPIPE, SIG_IGN);
  kiln_error_t err = NULL;
  struct kiln_config cfg;
  if (config_init(&cfg, &err) < 0) {
    fprintf(stderr, "kiln-conformance-fixture: %s\n", err->msg);
    return 1;
  }
  fixture_loop = loop_new(&err);
  if (fixture_loop == NULL) {
    fprintf(stderr, "kiln-conformance-fixture: %s\n", err->msg);
    return 1;
  }
  struct mcp_server *s = mcp_server_new(&cfg, NULL);
  s->tools = fixture_tools;
  s->ntools = fixture_ntools;
  s->methods = fixture_methods;
  s->nmethods = fixture_nmethods;
  int status = 0;
  struct mcp_stdio *t = mcp_stdio_new(fixture_loop, s, stop, fixture_loop, &err);
  if (t == NULL || loop_run(fixture_loop, &err) < 0) {
    fprintf(stderr, "kiln-conformance-fixture: %s\n", err->msg);
    kiln_error_release(&err);
    status = 1;
  }
  if (t) {
    mcp_stdio_flush(t, 1000);
    mcp_stdio_free(t);
  }
  mcp_server_free(s);
  loop_free(fixture_loop);
  config_free(&cfg);
  return status;
}
