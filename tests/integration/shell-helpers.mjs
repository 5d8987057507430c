// run_shell for the tests: the call, its structuredContent with the whole
// of each stream (read from its resource when the reply only names it),
// and the reply's text.

import { REQUEST_TIMEOUT } from './helpers.mjs';

/**
 * Calls run_shell with COMMAND and OPTS ({ session_id, timeout_s, workdir,
 * ... }: undefined ones are left out) and returns the full CallToolResult.
 * EXTRA is the SDK's request options (onprogress, say).
 */
export async function shellFull(client, command, opts = {}, extra = {}) {
  const args = { command };
  for (const [key, value] of Object.entries(opts)) {
    if (value !== undefined) args[key] = value;
  }
  return client.callTool({ name: 'run_shell', arguments: args }, undefined, {
    timeout: REQUEST_TIMEOUT,
    ...extra,
  });
}

/** Calls run_shell and returns its structuredContent, each stream whole. */
export async function shell(client, command, opts = {}) {
  const result = await shellFull(client, command, opts);
  const sc = result.structuredContent;
  if (sc === undefined || sc === null) {
    throw new Error(`run_shell returned no structuredContent: ${JSON.stringify(result).slice(0, 2000)}`);
  }
  for (const stream of ['stdout', 'stderr']) {
    if (sc[stream] === undefined && sc[`${stream}_uri`]) {
      const read = await client.readResource({ uri: sc[`${stream}_uri`] }, { timeout: REQUEST_TIMEOUT });
      sc[stream] = read.contents[0].text;
    }
  }
  return sc;
}

/** The text blocks of a tool result, joined. */
export function textOf(result) {
  return (result.content ?? []).filter((b) => b.type === 'text').map((b) => b.text).join('\n');
}
