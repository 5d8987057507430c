// kiln serve --http for the integration tests: start it on a free port,
// connect the official TypeScript SDK's Streamable HTTP client to it, and
// speak raw HTTP to it where a well-behaved client cannot.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { connect as netConnect } from 'node:net';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { KILN_BIN, PROTOCOL_VERSION, useFixture } from './helpers.mjs';

/**
 * Starts `kiln serve --http 127.0.0.1:0 ...args` and resolves once it
 * listens, with { url, port, proc, home, stderr(), connect(opts), close() }.
 * options: { args, env, listen (default 127.0.0.1:0), token (for connect) }.
 */
export async function startHttp(options = {}) {
  const { args = [], env = {}, listen = '127.0.0.1:0' } = options;
  const home = env.KILN_HOME ?? mkdtempSync(join(tmpdir(), 'kiln-http-home-'));
  const proc = spawn(KILN_BIN, ['serve', '--http', listen, ...args], {
    env: { ...process.env, ...env, KILN_HOME: home },
    cwd: home,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kiln did not listen: ${stderr}`)), 30_000);
    proc.stderr.on('data', (chunk) => {
      stderr += chunk;
      const m = /serving MCP at (\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kiln exited with ${code}: ${stderr}`));
    });
  });
  const clients = [];
  let closing;
  const server = {
    url,
    port: Number(new URL(url).port),
    proc,
    pid: proc.pid,
    home,
    stderr: () => stderr,
    /** An SDK client on its own MCP session; opts: { token, headers, version }. */
    async connect(opts = {}) {
      const headers = { ...(opts.headers ?? {}) };
      if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
      const transport = new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers },
      });
      const client = new Client({ name: 'kiln-http-tests', version: '0.0.0' });
      await client.connect(transport);
      clients.push(client);
      return client;
    },
    /** Waits until /readyz says the zygote is up. */
    async ready() {
      for (let i = 0; i < 300; i++) {
        const r = await raw(server, { method: 'GET', path: '/readyz' });
        if (r.status === 200) return;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error('kiln never became ready');
    },
    close() {
      closing ??= (async () => {
        for (const c of clients) await c.close().catch(() => {});
        if (proc.exitCode === null && proc.signalCode === null) {
          const exited = new Promise((res) => proc.once('exit', res));
          proc.kill('SIGTERM');
          await exited;
        }
        if (env.KILN_HOME === undefined) rmSync(home, { recursive: true, force: true });
      })();
      return closing;
    },
  };
  return server;
}

/** A server for every test of the enclosing suite, as startHttp starts it, once ready. */
export function useHttp(options = {}) {
  return useFixture(async (o) => {
    const server = await startHttp(o);
    await server.ready();
    return server;
  }, options);
}

/**
 * One raw HTTP request to SERVER; resolves with { status, headers, body }.
 * opts: { method, path, headers, body (string or object: sent as JSON) }.
 */
export function raw(server, opts = {}) {
  const { method = 'POST', path = new URL(server.url).pathname, headers = {} } = opts;
  let body = opts.body;
  if (body !== undefined && typeof body !== 'string') body = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: server.port, method, path, headers: {
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        Accept: 'application/json, text/event-stream',
        ...headers,
      } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { data += c; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** The initialize request's params. */
export function initParams(version = PROTOCOL_VERSION) {
  return { protocolVersion: version, capabilities: {}, clientInfo: { name: 'raw', version: '0' } };
}

/**
 * Initializes an MCP session over raw HTTP and returns its id.
 * opts: { headers, version }.
 */
export async function rawSession(server, opts = {}) {
  const r = await raw(server, {
    headers: opts.headers ?? {},
    body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams(opts.version) },
  });
  if (r.status !== 200) throw new Error(`initialize: ${r.status} ${r.body}`);
  const id = r.headers['mcp-session-id'];
  await raw(server, {
    headers: { ...(opts.headers ?? {}), 'Mcp-Session-Id': id },
    body: { jsonrpc: '2.0', method: 'notifications/initialized' },
  });
  return id;
}

/** The SSE events of TEXT: [{ id, data }], data parsed as JSON when there is any. */
export function sseEvents(text) {
  const events = [];
  for (const block of text.split('\n\n')) {
    let id;
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('id: ')) id = line.slice(4);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (id !== undefined || data) events.push({ id, data: data ? JSON.parse(data) : undefined });
  }
  return events;
}

/** Sends TEXT on a bare TCP connection to SERVER and resolves with all it gets back. */
export function rawTcp(server, text, { endAfterWrite = false } = {}) {
  return new Promise((resolve, reject) => {
    const sock = netConnect(server.port, '127.0.0.1');
    let got = '';
    sock.setEncoding('latin1');
    sock.on('data', (c) => { got += c; });
    sock.on('error', () => resolve(got));
    sock.on('close', () => resolve(got));
    sock.on('connect', () => {
      sock.write(text, 'latin1');
      if (endAfterWrite) sock.end();
    });
    setTimeout(() => { sock.destroy(); resolve(got); }, 20_000).unref();
    void reject;
  });
}
