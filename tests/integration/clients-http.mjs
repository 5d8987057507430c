// `kiln serve --http` for the suites that drive it through other clients
// (python-sdk.test.mjs, inspector.test.mjs): a server on a free loopback
// port, its URL read from the line it prints once it listens, and bearer
// tokens of its own in a --token-file.

import { before, after } from 'node:test';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { KILN_BIN, HOOK_TIMEOUT } from './helpers.mjs';

/** How long kiln may take to say it listens: a sanitizer build on a loaded machine is slow. */
const LISTEN_TIMEOUT = 30_000;

/** The line kiln prints on stderr once its HTTP socket listens. */
const LISTENING = /kiln: serving MCP at (http:\/\/\S+)/;

/** A bearer token as an operator would make one. */
export function newToken() {
  return randomBytes(24).toString('hex');
}

/**
 * Starts `kiln serve --http 127.0.0.1:0 ...args` with a fresh KILN_HOME
 * (also its working directory) and, unless `tokens` is 0, a --token-file
 * holding that many fresh tokens.  Resolves once kiln has printed its URL,
 * with { url, origin, tokens, pid, stderr(), close() }; close() stops kiln
 * (SIGTERM, SIGKILL after 10 s), removes its home and may be called more
 * than once.
 */
export async function startHttpKiln({ args = [], tokens = 1, env = {} } = {}) {
  const home = mkdtempSync(join(tmpdir(), 'kiln-home-'));
  const keys = Array.from({ length: tokens }, newToken);
  const tokenArgs = [];
  if (keys.length > 0) {
    const file = join(home, 'tokens');
    writeFileSync(file, `# bearer tokens of this test server\n${keys.join('\n')}\n`, { mode: 0o600 });
    tokenArgs.push('--token-file', file);
  }
  const child = spawn(KILN_BIN, ['serve', '--http', '127.0.0.1:0', ...tokenArgs, ...args], {
    env: { ...process.env, ...env, KILN_HOME: home },
    cwd: home,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? signal)));

  let closing;
  const close = () => {
    closing ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(home, { recursive: true, force: true });
    })();
    return closing;
  };

  let url;
  try {
    url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`kiln printed no URL within ${LISTEN_TIMEOUT} ms`)), LISTEN_TIMEOUT);
      const look = () => {
        const match = stderr.match(LISTENING);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      };
      child.stderr.on('data', look);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      exited.then((status) => {
        clearTimeout(timer);
        reject(new Error(`kiln exited (${status}) before it listened`));
      });
      look();
    });
  } catch (err) {
    await close();
    throw new Error(`could not start kiln serve --http: ${err.message}; stderr: ${stderr.slice(-2000)}`);
  }
  return {
    url,
    origin: new URL(url).origin,
    tokens: keys,
    pid: child.pid,
    stderr: () => stderr,
    close,
  };
}

/**
 * Registers before/after hooks in the enclosing suite that start and stop a
 * server as startHttpKiln(options) does.  Returns a handle that is empty
 * until the before hook has run and then carries the server's fields.
 */
export function useHttpKiln(options = {}) {
  const handle = {};
  let server;
  before(async () => {
    server = await startHttpKiln(options);
    Object.assign(handle, server);
  }, { timeout: HOOK_TIMEOUT });
  after(async () => {
    await server?.close();
  }, { timeout: HOOK_TIMEOUT });
  return handle;
}
