/* kiln-conformance-fixture: mcp/ serving the fixture's tables (fixture.h)
   with no front (nothing it offers runs Python), over Streamable HTTP as
   kiln serve --http does, or to one client on stdin and stdout.  */
#define _GNU_SOURCE
#include "config.h"
#include "fixture.h"
#include "server.h"
#include "transport/http.h"
#include "transport/stdio.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char usage[]
    = "usage: kiln-conformance-fixture [--http [ADDR:]PORT]\n"
      "Serves the MCP conformance suite's fixture tools, prompts and resources over\n"
      "Streamable HTTP at http://ADDR:PORT/mcp (ADDR defaults to 127.0.0.1; the\n"
      "--http flags of kiln serve and their KILN_* variables apply), or else on stdin\n"
      "and stdout.\n";

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

/* SIGTERM and SIGINT end the loop, so that the transport is freed (and
   its port closed) before exit.  */
static void
on_signal(int sig)
{
  loop_stop(fixture_loop);
}

static int
fail(kiln_error_t *err)
{
  fprintf(stderr, "kiln-conformance-fixture: %s\n", (*err)->msg);
  kiln_error_release(err);
  return 1;
}

int
main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "--help") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  bool http = argc == 3 && strcmp(argv[1], "--http") == 0;
  if (argc > 1 && !http) {
    fputs(usage, stderr);
    return 2;
  }
  /* A client that goes away is seen as a failed write, not a signal.  */
  signal(SIGPIPE, SIG_IGN);
  kiln_error_t err = NULL;
  struct kiln_config cfg;
  if (config_init(&cfg, &err) < 0 || (http && config_set(&cfg, "http", argv[2], &err) < 0))
    return fail(&err);
  fixture_loop = loop_new(&err);
  if (fixture_loop == NULL)
    return fail(&err);
  struct sigaction sa = { .sa_handler = on_signal };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  struct mcp_server *s = mcp_server_new(&cfg, NULL);
  s->tools = fixture_tools;
  s->ntools = fixture_ntools;
  s->methods = fixture_methods;
  s->nmethods = fixture_nmethods;
  int status = 0;
  struct mcp_http *h = NULL;
  struct mcp_stdio *t = NULL;
  if (http) {
    h = mcp_http_new(fixture_loop, s, &cfg, &err);
    if (h) {
      mcp_http_set_ready(h, true);
      fprintf(stderr, "kiln-conformance-fixture: serving MCP at %s\n", mcp_http_url(h));
    }
  } else
    t = mcp_stdio_new(fixture_loop, s, stop, fixture_loop, &err);
  if ((h == NULL && t == NULL) || loop_run(fixture_loop, &err) < 0)
    status = fail(&err);
  mcp_http_free(h);
  if (t) {
    mcp_stdio_flush(t, 1000);
    mcp_stdio_free(t);
  }
  mcp_server_free(s);
  loop_free(fixture_loop);
  config_free(&cfg);
  return status;
}
