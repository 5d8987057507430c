// Shared helpers for the kiln integration tests and the security battery.
//
// Two ways of talking to `kiln serve` are provided:
//   * the official MCP TypeScript SDK client over stdio, used for
//     everything a well-behaved MCP client can express;
//   * a bare child process with newline-delimited JSON on stdin/stdout,
//     used for malformed input the SDK client refuses to send.
//
// Each comes as a fixture for a whole suite (useServer, useRawServer: the
// server starts before the suite's first test and stops after its last) and
// as a scope for one test (withServer, withRawServer).  All four take the
// same options:
//   args       extra arguments after `kiln serve`
//   env        variables added to the test's own environment
//   listTools  (SDK client) fetch the tool list once on connect, so that the
//              client checks every structuredContent against its outputSchema;
//              default true
//   initialize (raw stdio) perform the initialize handshake once started;
//              default true

import { before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

/** Absolute path of the kiln binary under test. */
export const KILN_BIN = (() => {
  const bin = process.env.KILN_BIN;
  if (!bin) {
    throw new Error(
      'KILN_BIN is not set: run the suite as `KILN_BIN=/abs/path/to/kiln node --test --test-concurrency=1 .`',
    );
  }
  return bin;
})();

/** Per-test timeout used throughout the suite (generous on purpose). */
export const TEST_TIMEOUT = 60_000;

/** Timeout for hooks that start or stop servers. */
export const HOOK_TIMEOUT = 60_000;

/** Request timeout handed to the SDK client for tool calls. */
export const REQUEST_TIMEOUT = 120_000;

export const PROTOCOL_VERSION = '2025-11-25';

/**
 * Every server under test gets its own state directory (KILN_HOME) so that
 * tests neither depend on nor touch the state of the user running them.  It
 * is also the server's working directory: a cell run without the sandbox
 * (--insecure-no-sandbox) writes its relative paths there, not into the
 * directory the tests were started from.
 * Returns the environment to start kiln with, its directory and a cleanup
 * function.
 */
function serverEnvironment(env) {
  if (env.KILN_HOME !== undefined) {
    return { env: { ...process.env, ...env }, cwd: env.KILN_HOME, cleanup: () => {} };
  }
  const home = mkdtempSync(join(tmpdir(), 'kiln-home-'));
  return {
    env: { ...process.env, ...env, KILN_HOME: home },
    cwd: home,
    cleanup: () => rmSync(home, { recursive: true, force: true }),
  };
}

/** Options as an object; a bare array is taken as `args`. */
function serverOptions(options) {
  return Array.isArray(options) ? { args: options } : options;
}

/**
 * Registers before/after hooks in the enclosing suite (or file) that start
 * and stop a server as START(options) does.  Returns a handle that is empty
 * until the before hook has run and then carries the server's fields.
 */
export function useFixture(start, options) {
  const handle = {};
  let server;
  before(async () => {
    server = await start(options);
    Object.assign(handle, server);
  }, { timeout: HOOK_TIMEOUT });
  after(async () => {
    await server?.close();
  }, { timeout: HOOK_TIMEOUT });
  return handle;
}

/** Starts a server as START(options) does, runs FN(server), and closes it whatever FN did. */
async function within(start, options, fn) {
  const server = await start(options);
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}

// ---------------------------------------------------------------------------
// SDK client based server
// ---------------------------------------------------------------------------

/**
 * Starts `kiln serve ...args` and connects an MCP client to it.  Resolves
 * with { client, transport, pid, stderr(), close() }; close() may be called
 * more than once.
 */
export async function startServer(options = {}) {
  const { args = [], env = {}, listTools = true } = serverOptions(options);
  const { env: serverEnv, cwd, cleanup } = serverEnvironment(env);
  const transport = new StdioClientTransport({
    command: KILN_BIN,
    args: ['serve', ...args],
    env: serverEnv,
    cwd,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr.setEncoding('utf8');
  transport.stderr.on('data', (chunk) => {
    stderr += chunk;
  });

  const client = new Client({ name: 'kiln-integration-tests', version: '0.0.0' });
  try {
    await client.connect(transport);
  } catch (err) {
    cleanup();
    throw new Error(`could not connect to kiln: ${err.message}; stderr: ${stderr.slice(-2000)}`);
  }
  const pid = transport.pid;
  if (listTools) {
    await client.listTools();
  }

  let closing;
  return {
    client,
    transport,
    pid,
    /** The server's KILN_HOME. */
    home: cwd,
    stderr: () => stderr,
    close() {
      closing ??= client.close().finally(cleanup);
      return closing;
    },
  };
}

/**
 * A server for every test of the enclosing suite: started before the first,
 * closed after the last.  Returns a handle with the fields of startServer's
 * result ({ client, transport, pid, stderr() }), set once the suite starts.
 */
export function useServer(options = {}) {
  return useFixture(startServer, options);
}

/**
 * A server for one test: starts it, resolves with what FN(server) resolves
 * with, and closes the server whatever FN did.
 */
export function withServer(options, fn) {
  return within(startServer, options, fn);
}

/**
 * Calls run_python and returns the full CallToolResult.
 * opts: { session_id, timeout_s, ...anything else is passed as an argument }.
 */
export async function runFull(client, code, opts = {}) {
  const args = { code };
  for (const [key, value] of Object.entries(opts)) {
    if (value !== undefined) args[key] = value;
  }
  return client.callTool({ name: 'run_python', arguments: args }, undefined, {
    timeout: REQUEST_TIMEOUT,
  });
}

/**
 * Calls run_python and returns its structuredContent.  A stream too long
 * to come in it whole (it then names stdout_uri / stderr_uri) is read
 * from that resource, as a client would, so that sc.stdout and sc.stderr
 * always hold the whole kept output.
 */
export async function run(client, code, opts = {}) {
  const result = await runFull(client, code, opts);
  if (result.structuredContent === undefined || result.structuredContent === null) {
    throw new Error(
      `run_python returned no structuredContent: ${JSON.stringify(result).slice(0, 2000)}`,
    );
  }
  const sc = result.structuredContent;
  for (const stream of ['stdout', 'stderr']) {
    if (sc[stream] === undefined && sc[`${stream}_uri`]) {
      const read = await client.readResource({ uri: sc[`${stream}_uri`] }, { timeout: REQUEST_TIMEOUT });
      sc[stream] = read.contents[0].text;
    }
  }
  return sc;
}

/**
 * A session created before the tests of the enclosing suite on KILN (a
 * useServer handle), holding `kept = "intact"`.  Its unharmed() asserts
 * that the server still answers and that the session kept its state: the
 * check after every attack, whatever the attack did to its own session.
 */
export function useBystander(kiln) {
  const bystander = {};
  before(async () => {
    const sc = await run(kiln.client, 'kept = "intact"');
    assert.equal(sc.status, 'ok', dump(sc));
    bystander.session_id = sc.session_id;
  }, { timeout: HOOK_TIMEOUT });
  bystander.unharmed = () => assertKept(kiln.client, bystander.session_id, 'kept', "'intact'");
  return bystander;
}

/** Runs CODE, asserts that it succeeds with EXPECTED as its result, and returns its structuredContent. */
export async function expectResult(client, code, expected, opts = {}) {
  const sc = await run(client, code, opts);
  assert.equal(sc.status, 'ok', dump(sc));
  assert.equal(sc.result, expected, dump(sc));
  return sc;
}

/** Asserts that EXPR, run in session SESSION_ID, gives EXPECTED with no state lost. */
export async function assertKept(client, sessionId, expr, expected) {
  const sc = await expectResult(client, expr, expected, { session_id: sessionId });
  assert.equal(sc.state_lost, false, dump(sc));
}

/** Calls any tool with raw arguments and returns the full CallToolResult. */
export async function callTool(client, name, args) {
  return client.callTool({ name, arguments: args }, undefined, { timeout: REQUEST_TIMEOUT });
}

/** All human-readable text of a tool result (text blocks and structured content). */
export function resultText(result) {
  const parts = [];
  for (const block of result.content ?? []) {
    if (block.type === 'text') parts.push(block.text);
  }
  if (result.structuredContent !== undefined) {
    parts.push(JSON.stringify(result.structuredContent));
  }
  return parts.join('\n');
}

/** A short, readable dump of a run_python result for assertion messages. */
export function dump(value) {
  const text = JSON.stringify(value, null, 2);
  return text && text.length > 4000 ? `${text.slice(0, 4000)}...` : text;
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/**
 * True if a process with this pid is alive. Zombies (exited but not yet
 * reaped) count as not alive.
 */
export function pidAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (err.code === 'ESRCH') return false;
    if (err.code !== 'EPERM') throw err;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
  } catch {
    return false;
  }
  return true;
}

/** True if kill(pid, 0) fails with ESRCH: the pid is fully gone (reaped). */
export function pidGone(pid) {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    if (err.code === 'ESRCH') return true;
    throw err;
  }
}

/**
 * Returns watch(...pids): host pids that are killed after each test of the
 * enclosing suite (or file) if they are still alive, so that a failed test
 * leaves nothing running.
 */
export function killAfterEach() {
  let pids = [];
  afterEach(() => {
    for (const pid of pids) {
      if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    pids = [];
  });
  return (...more) => {
    pids.push(...more);
  };
}

/** Polls `predicate` until it returns truthy or `ms` elapse; returns its last value. */
export async function pollUntil(predicate, ms = 10_000, interval = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value || Date.now() >= deadline) return value;
    await sleep(interval);
  }
}

// ---------------------------------------------------------------------------
// Raw stdio server
// ---------------------------------------------------------------------------

/**
 * Spawns `kiln serve ...args` with plain pipes and, unless `initialize` is
 * false, performs the handshake.  Every stdout line is parsed as JSON; lines
 * that do not parse are kept in `badLines`.
 */
export async function startRaw(options = {}) {
  const { args = [], env = {}, initialize = true } = serverOptions(options);
  const { env: serverEnv, cwd, cleanup } = serverEnvironment(env);
  const child = spawn(KILN_BIN, ['serve', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: serverEnv,
    cwd,
  });

  const messages = [];
  // Every message in the order it came, none consumed: for tests of order.
  const log = [];
  const badLines = [];
  const waiters = [];
  let stdoutBuffer = '';
  let stderr = '';

  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      cleanup();
      resolve({ code, signal });
    });
  });
  // Writes to a server that has gone away must not crash the test process.
  child.stdin.on('error', () => {});

  const dispatch = () => {
    for (let i = 0; i < waiters.length; ) {
      const waiter = waiters[i];
      const index = messages.findIndex(waiter.predicate);
      if (index !== -1) {
        const [message] = messages.splice(index, 1);
        waiters.splice(i, 1);
        clearTimeout(waiter.timer);
        waiter.resolve(message);
      } else {
        i += 1;
      }
    }
  };

  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    stdoutBuffer += chunk;
    let newline;
    while ((newline = stdoutBuffer.indexOf('\n')) !== -1) {
      const line = stdoutBuffer.slice(0, newline).replace(/\r$/, '');
      stdoutBuffer = stdoutBuffer.slice(newline + 1);
      if (line.trim() === '') continue;
      try {
        const message = JSON.parse(line);
        messages.push(message);
        log.push(message);
      } catch {
        badLines.push(line);
      }
    }
    dispatch();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });

  let nextId = 1000;

  const server = {
    child,
    pid: child.pid,
    exited,
    badLines,
    log,
    stderr: () => stderr,

    /** Writes one line (a string is sent verbatim, anything else as JSON). */
    sendLine(line) {
      const text = typeof line === 'string' ? line : JSON.stringify(line);
      return new Promise((resolve, reject) => {
        child.stdin.write(`${text}\n`, (err) => (err ? reject(err) : resolve()));
      });
    },

    /** Resolves with (and consumes) the first message matching predicate. */
    waitFor(predicate, ms = 30_000) {
      return new Promise((resolve, reject) => {
        const waiter = { predicate, resolve };
        waiter.timer = setTimeout(() => {
          const index = waiters.indexOf(waiter);
          if (index !== -1) waiters.splice(index, 1);
          reject(
            new Error(
              `no matching message from kiln within ${ms} ms; unconsumed: ${JSON.stringify(messages).slice(0, 2000)}; ` +
                `non-JSON stdout lines: ${JSON.stringify(badLines).slice(0, 500)}; stderr: ${stderr.slice(-2000)}`,
            ),
          );
        }, ms);
        waiters.push(waiter);
        dispatch();
      });
    },

    /** Resolves with the response carrying this id. */
    response(id, ms) {
      return server.waitFor(
        (m) => m && typeof m === 'object' && !Array.isArray(m) && 'id' in m && m.id === id && !('method' in m),
        ms,
      );
    },

    /** Sends a request and resolves with its response. */
    async request(method, params, id = nextId++) {
      const message = { jsonrpc: '2.0', id, method };
      if (params !== undefined) message.params = params;
      await server.sendLine(message);
      return server.response(id);
    },

    notify(method, params) {
      const message = { jsonrpc: '2.0', method };
      if (params !== undefined) message.params = params;
      return server.sendLine(message);
    },

    /** Performs the initialize / notifications/initialized handshake. */
    async initialize(protocolVersion = PROTOCOL_VERSION) {
      const response = await server.request('initialize', {
        protocolVersion,
        capabilities: {},
        clientInfo: { name: 'kiln-integration-tests-raw', version: '0.0.0' },
      });
      await server.notify('notifications/initialized');
      return response;
    },

    /** Calls run_python and resolves with the JSON-RPC response. */
    runPython(code, extra = {}) {
      return server.request('tools/call', { name: 'run_python', arguments: { code, ...extra } });
    },

    /** Closes stdin and waits for the process to exit; kills it if it does not. */
    async close(ms = 20_000) {
      child.stdin.end();
      const outcome = await Promise.race([exited, sleep(ms).then(() => null)]);
      if (outcome === null) {
        child.kill('SIGKILL');
        return exited;
      }
      return outcome;
    },
  };
  if (initialize) {
    const response = await server.initialize();
    if (!response.result) {
      await server.close();
      throw new Error(`initialize failed: ${JSON.stringify(response)}; stderr: ${stderr.slice(-2000)}`);
    }
  }
  return server;
}

/**
 * A raw stdio server for every test of the enclosing suite.  Returns a
 * handle with the fields of startRaw's result, set once the suite starts.
 */
export function useRawServer(options = {}) {
  return useFixture(startRaw, options);
}

/**
 * A raw stdio server for one test: resolves with what FN(raw) resolves
 * with, and closes the server whatever FN did.
 */
export function withRawServer(options, fn) {
  return within(startRaw, options, fn);
}

// ---------------------------------------------------------------------------
// Host processes of a session
// ---------------------------------------------------------------------------
//
// A cell sees its own pid namespace (its worker is pid 2 there), so pids a
// cell reports mean nothing on the host.  These look at the host's side.

/** The host pid list_sessions reports for SESSION_ID: the session's init. */
export async function sessionPid(client, sessionId) {
  const result = await client.callTool({ name: 'list_sessions', arguments: {} }, undefined, {
    timeout: REQUEST_TIMEOUT,
  });
  const entry = result.structuredContent.sessions.find((s) => s.session_id === sessionId);
  if (!entry) throw new Error(`session ${sessionId} is not listed`);
  return entry.pid;
}

let sleepers = 0;

/**
 * Runs, through RUNCELL (code => structuredContent), a cell that leaves
 * `sleep` running with an argument no other process on the host has.
 * Resolves with { sc, sleeper }: the cell's structuredContent and the host
 * pid of the sleep.
 */
export async function leaveSleeper(runCell) {
  const marker = `300.${process.pid}${++sleepers}`;
  const sc = await runCell(`import subprocess\nsubprocess.Popen(["sleep", "${marker}"])\n'started'`);
  assert.equal(sc?.status, 'ok', dump(sc));
  const found = await pollUntil(() => {
    const pids = hostPidsWithArg(marker);
    return pids.length ? pids : null;
  });
  assert.ok(found, 'the sleep process never appeared');
  return { sc, sleeper: found[0] };
}

/** The parent of PID on the host. */
export function parentOf(pid) {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
}

/** Direct children of PID on the host ([] once it is gone). */
export function childrenOf(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      return text ? text.split(/\s+/).map(Number) : [];
    });
  } catch {
    return [];
  }
}

/** The process name of PID, or null once it is gone. */
export function commOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** Host pids of live processes whose command line contains MARKER. */
export function hostPidsWithArg(marker) {
  const found = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      const state = readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]?.[0];
      if (cmdline.includes(marker) && state !== 'Z') found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
