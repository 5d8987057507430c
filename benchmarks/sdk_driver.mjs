// kiln through the official MCP TypeScript SDK client: what an agent sees.
//
// Two ways to use it:
//
//   node sdk_driver.mjs --kiln build/kiln [--calls 1000] [--code 'x = x + 1'] [-- SERVE-OPTIONS]
//       starts `kiln serve`, opens one session (`x = 0`), times N calls of
//       CODE in it and prints {"sdk_version", "calls", "times_ns": [...]} as JSON.
//
//   node sdk_driver.mjs --commands --kiln build/kiln [-- SERVE-OPTIONS]
//       the suite's mode: one JSON command per line on stdin, one JSON
//       answer per line on stdout, so that the suite can interleave this
//       client with the other systems.  Commands:
//         {"op": "run", "code": C, "session_id"?: S, "n"?: 1, "pause_ms"?: 0}
//             N calls one after another, each after PAUSE_MS (not timed);
//             -> {"times_ns": [...], "replies": [...]}
//         {"op": "pipeline", "session_ids": [...], "code": C, "seconds": T}
//             one call in flight per session, the next sent as soon as the
//             previous reply arrives, for T seconds;
//             -> {"done_ns": [...], "latency_ns": [...], "ok": {S: n}, "errors": [...]}
//         {"op": "close", "session_ids": [...]}    -> {}
//         {"op": "list"}                           -> {"sessions": [...]}
//         {"op": "quit"}
//
// Every call goes through Client.callTool, which validates the reply's
// structuredContent against run_python's advertised outputSchema, as an
// agent's client does.  Replies are returned condensed: stdout and stderr
// as their length, first and last 200 characters; the content's images as
// their MIME type, size in bytes and whether they are PNGs.

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const here = dirname(fileURLToPath(import.meta.url));
const REQUEST_TIMEOUT = 600_000;
const EDGE = 200;

function sdkVersion() {
  const pkg = join(here, 'node_modules', '@modelcontextprotocol', 'sdk', 'package.json');
  return JSON.parse(readFileSync(pkg, 'utf8')).version;
}

function parseArgs(argv) {
  const opts = { kiln: null, calls: 1000, code: 'x = x + 1', commands: false, serveArgs: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (a === '--') {
      opts.serveArgs = argv.slice(i + 1);
      break;
    } else if (a === '--kiln') opts.kiln = argv[++i];
    else if (a === '--calls') opts.calls = Number(argv[++i]);
    else if (a === '--code') opts.code = argv[++i];
    else if (a === '--commands') opts.commands = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (!opts.kiln) opts.kiln = join(here, '..', 'build', 'kiln');
  return opts;
}

function condenseText(text) {
  if (text.length <= 2 * EDGE) return { len: text.length, head: text, tail: '' };
  return { len: text.length, head: text.slice(0, EDGE), tail: text.slice(-EDGE) };
}

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function condense(sc, content = []) {
  const out = { ...sc };
  out.images = [];
  for (const block of content) {
    if (block.type === 'image') {
      const data = Buffer.from(block.data, 'base64');
      out.images.push({ mime: block.mimeType, bytes: data.length, png: data.subarray(0, 8).equals(PNG) });
    }
  }
  for (const key of ['stdout', 'stderr']) {
    const c = condenseText(sc[key] ?? '');
    out[`${key}_len`] = c.len;
    out[`${key}_head`] = c.head;
    out[`${key}_tail`] = c.tail;
    delete out[key];
  }
  return out;
}

async function connect(opts) {
  const transport = new StdioClientTransport({
    command: opts.kiln,
    args: ['serve', ...opts.serveArgs],
    env: { ...process.env },
    stderr: 'inherit',
  });
  const client = new Client({ name: 'kiln-benchmarks', version: '0.0.0' });
  await client.connect(transport);
  // As an agent's client does: the tool list, so that structuredContent is
  // validated against the advertised outputSchema.
  await client.listTools();
  return client;
}

async function callTool(client, name, args) {
  const r = await client.callTool({ name, arguments: args }, undefined, { timeout: REQUEST_TIMEOUT });
  if (r.isError && !r.structuredContent) {
    throw new Error(`${name} failed: ${JSON.stringify(r.content)}`);
  }
  return r;
}

async function runPython(client, code, sessionId) {
  const args = { code };
  if (sessionId) args.session_id = sessionId;
  const t0 = process.hrtime.bigint();
  const r = await callTool(client, 'run_python', args);
  // A stream too long for the reply is read whole from the resource it
  // names, and that read is timed too: the client then has all of it, as
  // a peer's client has.
  const sc = r.structuredContent;
  for (const key of ['stdout', 'stderr']) {
    if (sc && sc[key] === undefined && sc[`${key}_uri`]) {
      const read = await client.readResource({ uri: sc[`${key}_uri`] }, { timeout: REQUEST_TIMEOUT });
      sc[key] = read.contents[0].text;
    }
  }
  const t1 = process.hrtime.bigint();
  return { ns: Number(t1 - t0), sc, content: r.content };
}

async function opRun(client, cmd) {
  const n = cmd.n ?? 1;
  const times = [];
  const replies = [];
  for (let i = 0; i < n; i += 1) {
    if (cmd.pause_ms) await sleep(cmd.pause_ms);
    const { ns, sc, content } = await runPython(client, cmd.code, cmd.session_id);
    times.push(ns);
    replies.push(condense(sc, content));
  }
  // Long series keep only the replies needed to check them: first and last.
  if (replies.length > 2) {
    const bad = replies.filter((r) => r.status !== 'ok');
    return {
      times_ns: times,
      replies: [replies[0], replies[replies.length - 1]],
      not_ok: bad.slice(0, 5),
      n_not_ok: bad.length,
    };
  }
  return { times_ns: times, replies, not_ok: [], n_not_ok: replies.filter((r) => r.status !== 'ok').length };
}

async function opPipeline(client, cmd) {
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(cmd.seconds * 1e9));
  const done = [];
  const latency = [];
  const ok = {};
  const errors = [];
  async function loop(sid) {
    ok[sid] = 0;
    while (process.hrtime.bigint() < end) {
      const { ns, sc } = await runPython(client, cmd.code, sid);
      done.push(Number(process.hrtime.bigint() - start));
      latency.push(ns);
      if (sc.status === 'ok') ok[sid] += 1;
      else if (errors.length < 5) errors.push(condense(sc));
    }
  }
  await Promise.all(cmd.session_ids.map(loop));
  return { done_ns: done, latency_ns: latency, ok, errors };
}

async function commandMode(opts) {
  const client = await connect(opts);
  const write = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
  write({ ready: true, sdk_version: sdkVersion() });
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    try {
      if (cmd.op === 'run') write(await opRun(client, cmd));
      else if (cmd.op === 'pipeline') write(await opPipeline(client, cmd));
      else if (cmd.op === 'close') {
        for (const sid of cmd.session_ids) await callTool(client, 'close_session', { session_id: sid });
        write({});
      } else if (cmd.op === 'list') {
        const r = await callTool(client, 'list_sessions', {});
        write({ sessions: r.structuredContent.sessions });
      } else if (cmd.op === 'quit') break;
      else write({ error: `unknown op ${cmd.op}` });
    } catch (err) {
      write({ error: String(err && err.stack ? err.stack : err) });
    }
  }
  await client.close();
}

async function standalone(opts) {
  const client = await connect(opts);
  const first = await runPython(client, 'x = 0', undefined);
  const sid = first.sc.session_id;
  const times = [];
  for (let i = 0; i < opts.calls; i += 1) {
    const { ns, sc } = await runPython(client, opts.code, sid);
    if (sc.status !== 'ok') throw new Error(`call ${i}: ${JSON.stringify(condense(sc))}`);
    times.push(ns);
  }
  await client.close();
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
  process.stdout.write(
    `${JSON.stringify({
      sdk_version: sdkVersion(),
      code: opts.code,
      calls: opts.calls,
      median_ns: at(0.5),
      p99_ns: at(0.99),
      times_ns: times,
    })}\n`,
  );
}

const opts = parseArgs(process.argv.slice(2));
(opts.commands ? commandMode(opts) : standalone(opts)).catch((err) => {
  process.stderr.write(`sdk_driver: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
