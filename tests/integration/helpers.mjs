// Shared helpers for the kiln integration tests.
//
// Two ways of talking to `kiln serve` are provided:
//   * startServer(): the official MCP TypeScript SDK client over stdio, used
//     for everything a well-behaved MCP client can express;
//   * startRaw(): a bare child process with newline-delimited JSON on
//     stdin/stdout, used for malformed input the SDK client refuses to send.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
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

export const PROTOCOL_VERSION = '2025-06-18';

/**
 * Every server under test gets its own state directory (KILN_HOME) so that
 * tests neither depend on nor touch the state of the user running them.
 * Returns the environment to start kiln with and a cleanup function.
 */
function serverEnvironment(env) {
  if (env.KILN_HOME !== undefined) {
    return { env: { ...process.env, ...env }, cleanup: () => {} };
  }
  const home = mkdtempSync(join(tmpdir(), 'kiln-home-'));
  return {
    env: { ...process.env, ...env, KILN_HOME: home },
    cleanup: () => rmSync(home, { recursive: true, force: true }),
  };
}

// ---------------------------------------------------------------------------
// SDK client based server
// ---------------------------------------------------------------------------

/**
 * Starts `kiln serve ...extraArgs` and connects an MCP client to it.
 *
 * The tool list is fetched once so that the client validates every
 * structuredContent it receives against the advertised outputSchema.
 */
export async function startServer(extraArgs = [], { env = {}, listTools = true } = {}) {
  const { env: serverEnv, cleanup } = serverEnvironment(env);
  const transport = new StdioClientTransport({
    command: KILN_BIN,
    args: ['serve', ...extraArgs],
    env: serverEnv,
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

  return {
    client,
    transport,
    pid,
    stderr: () => stderr,
    async close() {
      try {
        await client.close();
      } finally {
        cleanup();
      }
    },
  };
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

/** Calls run_python and returns its structuredContent. */
export async function run(client, code, opts = {}) {
  const result = await runFull(client, code, opts);
  if (result.structuredContent === undefined || result.structuredContent === null) {
    throw new Error(
      `run_python returned no structuredContent: ${JSON.stringify(result).slice(0, 2000)}`,
    );
  }
  return result.structuredContent;
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

/** Polls `predicate` until it returns truthy or `ms` elapse; returns its last value. */
export async function pollUntil(predicate, ms = 10_000, interval = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value || Date.now() >= deadline) return value;
    await sleep(interval);
  }
}

/** A unique path under the OS temp directory (not created). */
export function uniqueTempPath(prefix = 'kiln-test') {
  return join(tmpdir(), `${prefix}-${process.pid}-${randomUUID()}`);
}

// ---------------------------------------------------------------------------
// Raw stdio server
// ---------------------------------------------------------------------------

/**
 * Spawns `kiln serve ...extraArgs` with plain pipes. Every stdout line is
 * parsed as JSON; lines that do not parse are kept in `badLines`.
 */
export function startRaw(extraArgs = [], { env = {} } = {}) {
  const { env: serverEnv, cleanup } = serverEnvironment(env);
  const child = spawn(KILN_BIN, ['serve', ...extraArgs], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: serverEnv,
  });

  const messages = [];
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
        messages.push(JSON.parse(line));
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
  return server;
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
