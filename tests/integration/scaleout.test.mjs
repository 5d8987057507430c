// Several kiln nodes behind nginx, as docker/nginx/render configures it:
// every request of an MCP session reaches the node that holds it (the
// node's name is the prefix of the session id), new sessions spread over
// the nodes, and when a node stops its clients are told which one is gone
// while new sessions land on the others.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, chmodSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { HOOK_TIMEOUT, REQUEST_TIMEOUT, dump } from './helpers.mjs';
import { startHttp } from './http-helpers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const nginxBin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function call(client, code) {
  const r = await client.callTool({ name: 'run_python', arguments: { code, session_id: client.kilnSession } },
    undefined, { timeout: REQUEST_TIMEOUT });
  const sc = r.structuredContent;
  client.kilnSession = sc.session_id;
  return sc;
}

describe('three kiln nodes behind nginx', { skip: nginxBin ? false : 'skip: nginx is not installed (scripts/setup.sh test installs nginx-light)' }, () => {
  const nodes = [];
  let nginx;
  let url;
  const dir = mkdtempSync(join(tmpdir(), 'kiln-nginx-'));

  before(async () => {
    for (let i = 0; i < 3; i++) {
      const node = await startHttp({ args: ['--node-name', `kiln-${i}`] });
      await node.ready();
      nodes.push(node);
    }
    const port = await freePort();
    url = `http://127.0.0.1:${port}/mcp`;
    const conf = execFileSync(join(root, 'docker/nginx/render'),
      [`127.0.0.1:${port}`, ...nodes.map((n, i) => `kiln-${i}=127.0.0.1:${n.port}`)], { encoding: 'utf8' });
    for (const d of ['body', 'proxy']) mkdirSync(join(dir, d));
    chmodSync(dir, 0o777);
    writeFileSync(join(dir, 'kiln.conf'), conf);
    writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path ${dir}/body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/proxy;
    uwsgi_temp_path ${dir}/proxy;
    scgi_temp_path ${dir}/proxy;
    include ${dir}/kiln.conf;
}
`);
    nginx = spawn(nginxBin, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'inherit' });
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
      if (ok) return;
      await sleep(100);
    }
    throw new Error('nginx did not come up');
  }, { timeout: HOOK_TIMEOUT });

  after(async () => {
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((res) => nginx.once('exit', res));
      nginx.kill('SIGTERM');
      await exited;
    }
    for (const n of nodes) await n.close();
    rmSync(dir, { recursive: true, force: true });
  }, { timeout: HOOK_TIMEOUT });

  async function connect() {
    const transport = new StreamableHTTPClientTransport(new URL(url));
    const client = new Client({ name: 'scaleout', version: '0' });
    await client.connect(transport);
    client.node = transport.sessionId.split('.')[0];
    return client;
  }

  test('60 clients, 20 stateful cells each: every session stays on its node, and the nodes share them', { timeout: 300_000 }, async () => {
    const clients = await Promise.all(Array.from({ length: 60 }, connect));
    const counts = await Promise.all(clients.map(async (c) => {
      let sc = await call(c, 'n = 0');
      assert.equal(sc.status, 'ok', dump(sc));
      for (let i = 1; i <= 20; i++) {
        sc = await call(c, 'n += 1\nn');
        assert.equal(sc.status, 'ok', dump(sc));
        assert.equal(sc.result, String(i), dump(sc));
      }
      return sc.result;
    }));
    assert.deepEqual(counts, Array(60).fill('20'));
    const per = {};
    for (const c of clients) per[c.node] = (per[c.node] ?? 0) + 1;
    assert.deepEqual(Object.keys(per).sort(), ['kiln-0', 'kiln-1', 'kiln-2'], dump(per));
    for (const n of Object.values(per)) assert.ok(n >= 10, dump(per));
    // Each node holds exactly the kiln sessions of its own clients.
    for (let i = 0; i < 3; i++) {
      const m = await fetch(`http://127.0.0.1:${nodes[i].port}/metrics`).then((r) => r.text());
      const live = /^kiln_sessions\{state="live"\} (\d+)$/m.exec(m);
      assert.ok(live, m);
      assert.equal(Number(live[1]), per[`kiln-${i}`], `kiln-${i}: ${dump(per)}`);
    }
    await Promise.all(clients.map((c) => c.close()));
  });

  test('a node stopped: its clients are told it by name, the others go on, new sessions go elsewhere', { timeout: 120_000 }, async () => {
    const clients = [];
    for (let i = 0; i < 12; i++) clients.push(await connect());
    for (const c of clients) assert.equal((await call(c, 'k = 1\nk')).result, '1');
    const gone = clients.find((c) => c.node === 'kiln-1');
    assert.ok(gone, 'some session lives on kiln-1');
    await nodes[1].close();
    for (const c of clients) {
      if (c.node === 'kiln-1') {
        await assert.rejects(call(c, 'k'), /kiln node kiln-1 is unavailable/);
      } else {
        assert.equal((await call(c, 'k')).result, '1', c.node);
      }
    }
    const fresh = await Promise.all(Array.from({ length: 10 }, connect));
    for (const c of fresh) {
      assert.notEqual(c.node, 'kiln-1');
      assert.equal((await call(c, '2 + 2')).result, '4');
    }
    assert.ok(new Set(fresh.map((c) => c.node)).size === 2, dump(fresh.map((c) => c.node)));
    await Promise.all([...clients, ...fresh].map((c) => c.close().catch(() => {})));
  });
});
