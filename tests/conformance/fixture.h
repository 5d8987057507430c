/* The conformance fixture: an MCP server made of mcp/ (transport,
   connection, dispatch) with no front behind it, offering the tools,
   prompts and resources the MCP conformance suite
   (@modelcontextprotocol/conformance) asks a server for by name
   (test_simple_text, test_simple_prompt, test://static-text...), so that
   the suite's scenarios about those features can run against mcp/ even
   though kiln itself offers none of them.  Every text the suite compares
   is spelled here as its scenario's description gives it.  */
#ifndef KILN_CONFORMANCE_FIXTURE_H
#define KILN_CONFORMANCE_FIXTURE_H

#include "loop.h"
#include "methods.h"
#include "tools.h"

#include <stddef.h>

/* The loop the fixture's delayed answers are timed on (set by main).  */
extern struct loop *fixture_loop;

/* The tools (tools.c).  */
extern const struct mcp_tool *const fixture_tools[];
extern const size_t fixture_ntools;

/* The methods beyond kiln's (main.c): the prompts, the resources and
   the completion of their arguments.  */
extern const struct mcp_method fixture_methods[];
extern const size_t fixture_nmethods;

/* The handlers fixture_methods lists (mcp_method_fn).  */
int fixture_prompts_list(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);
int fixture_prompts_get(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);
int fixture_complete(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);
int fixture_resources_list(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);
int fixture_resources_read(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);
int fixture_templates_list(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);
int fixture_subscribe(struct mcp_call *c, json_t *params, json_t **result, kiln_error_t *err);

/* A 1x1 red PNG and a short silent WAV, base64-encoded.  */
extern const char fixture_png_b64[], fixture_wav_b64[];

#endif
