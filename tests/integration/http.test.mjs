// kiln serve --http: the Streamable HTTP transport, driven by the official
// TypeScript SDK client and by raw HTTP where a well-behaved client cannot
// go: sessions and their headers, SSE streams and their resumption, the
// limits, the operations endpoints and TLS (the security checks are in
// http-security.test.mjs).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';

import { HOOK_TIMEOUT, TEST_TIMEOUT, REQUEST_TIMEOUT, dump, resultText, run } from './helpers.mjs';
import { startHttp, useHttp, raw, rawSession, initParams, sseEvents, rawTcp } from './http-helpers.mjs';

describe('the SDK client over Streamable HTTP', () => {
  const kiln = useHttp();

  test('every tool works, and state persists across calls', { timeout: TEST_TIMEOUT }, async () => {
    const client = await kiln.connect();
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(tools, ['close_session', 'install_packages', 'list_files', 'list_sessions',
      'read_file', 'run_python', 'run_shell', 'upload_file']);
    const first = await run(client, 'x = 41\nx + 1');
    assert.equal(first.status, 'ok', dump(first));
    assert.equal(first.result, '42');
    const sid = first.session_id;
    const second = await run(client, 'x * 2', { session_id: sid });
    assert.equal(second.result, '82', dump(second));
    const up = await client.callTool({ name: 'upload_file',
      arguments: { session_id: sid, path: 'in.txt', content: 'hello over http' } });
    assert.equal(up.isError, undefined, dump(up));
    const read = await run(client, 'open("in.txt").read()', { session_id: sid });
    assert.equal(read.result, "'hello over http'");
    const listed = await client.callTool({ name: 'list_files', arguments: { session_id: sid } });
    assert.ok(listed.structuredContent.files.some((f) => f.path === 'in.txt'), dump(listed));
    const file = await client.callTool({ name: 'read_file',
      arguments: { session_id: sid, path: 'in.txt' } });
    assert.match(resultText(file), /hello over http/);
    const sessions = await client.callTool({ name: 'list_sessions', arguments: {} });
    assert.deepEqual(sessions.structuredContent.sessions.map((s) => s.session_id), [sid]);
    const closed = await client.callTool({ name: 'close_session', arguments: { session_id: sid } });
    assert.equal(closed.structuredContent.closed, true, dump(closed));
  });

  test('a figure comes back as a PNG of the right size, and as a resource', { timeout: TEST_TIMEOUT }, async () => {
    const client = await kiln.connect();
    const r = await client.callTool({ name: 'run_python', arguments: { code:
      'import matplotlib.pyplot as plt\nfig = plt.figure(figsize=(4, 3), dpi=100)\nplt.plot([1, 2, 3])\nplt.show()' } },
    undefined, { timeout: REQUEST_TIMEOUT });
    const img = r.content.find((b) => b.type === 'image');
    assert.ok(img, dump(r));
    const png = Buffer.from(img.data, 'base64');
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
    assert.equal(png.readUInt32BE(16), 400);
    assert.equal(png.readUInt32BE(20), 300);
    const [meta] = r.structuredContent.artifacts;
    assert.match(meta.uri, /^kiln:\/\/sessions\/[0-9a-f]+\/artifacts\//);
    const res = await client.readResource({ uri: meta.uri });
    assert.equal(Buffer.from(res.contents[0].blob, 'base64').readUInt32BE(16), 400);
  });

  test('a timeout interrupts the cell and the session keeps its state', { timeout: TEST_TIMEOUT }, async () => {
    const client = await kiln.connect();
    const a = await run(client, 'kept = "yes"');
    const t = await run(client, 'import time\nwhile True: time.sleep(0.05)',
      { session_id: a.session_id, timeout_s: 1 });
    assert.equal(t.status, 'interrupted', dump(t));
    const b = await run(client, 'kept', { session_id: a.session_id });
    assert.equal(b.result, "'yes'", dump(b));
  });

  test('a crashing worker is reported and costs only its session', { timeout: TEST_TIMEOUT }, async () => {
    const client = await kiln.connect();
    const crash = await run(client, 'import os\nos._exit(7)');
    assert.equal(crash.status, 'crashed', dump(crash));
    const after = await run(client, '1 + 1');
    assert.equal(after.result, '2');
  });

  test('output streams as progress notifications over SSE', { timeout: TEST_TIMEOUT }, async () => {
    const client = await kiln.connect();
    const seen = [];
    const r = await client.callTool({ name: 'run_python', arguments: { code:
      'import time\nfor i in range(5):\n    print("tick", i, flush=True)\n    time.sleep(0.2)' } },
    undefined, { timeout: REQUEST_TIMEOUT, onprogress: (p) => seen.push(p) });
    assert.equal(r.structuredContent.status, 'ok', dump(r));
    assert.ok(seen.length >= 2, `progress notifications: ${dump(seen)}`);
    assert.match(seen.map((p) => p.message ?? '').join(''), /tick 0[\s\S]*tick 4/);
  });
});

describe('MCP sessions over HTTP', () => {
  const kiln = useHttp();

  test('initialize issues a 128-bit Mcp-Session-Id; later requests need it', { timeout: TEST_TIMEOUT }, async () => {
    const init = await raw(kiln, { body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams() } });
    assert.equal(init.status, 200, init.body);
    const id = init.headers['mcp-session-id'];
    assert.match(id, /^[0-9a-f]{32}$/);
    const other = await rawSession(kiln);
    assert.notEqual(other, id);
    const missing = await raw(kiln, { body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } });
    assert.equal(missing.status, 400, missing.body);
    assert.match(JSON.parse(missing.body).error.message, /Mcp-Session-Id/);
    const unknown = await raw(kiln, { headers: { 'Mcp-Session-Id': '0'.repeat(32) },
      body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } });
    assert.equal(unknown.status, 404, unknown.body);
    const ok = await raw(kiln, { headers: { 'Mcp-Session-Id': id },
      body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(JSON.parse(ok.body).id, 2);
  });

  test('a refused initialize makes no session', { timeout: TEST_TIMEOUT }, async () => {
    const r = await raw(kiln, { body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { capabilities: {} } } });
    assert.equal(r.headers['mcp-session-id'], undefined, r.body);
    assert.equal(JSON.parse(r.body).error.code, -32602, r.body);
  });

  test('notifications and answers get 202 with no body', { timeout: TEST_TIMEOUT }, async () => {
    const id = await rawSession(kiln);
    const n = await raw(kiln, { headers: { 'Mcp-Session-Id': id },
      body: { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99 } } });
    assert.equal(n.status, 202);
    assert.equal(n.body, '');
  });

  test('MCP-Protocol-Version is checked', { timeout: TEST_TIMEOUT }, async () => {
    const id = await rawSession(kiln);
    const bad = await raw(kiln, { headers: { 'Mcp-Session-Id': id, 'MCP-Protocol-Version': '1999-01-01' },
      body: { jsonrpc: '2.0', id: 3, method: 'ping' } });
    assert.equal(bad.status, 400, bad.body);
    const good = await raw(kiln, { headers: { 'Mcp-Session-Id': id, 'MCP-Protocol-Version': '2025-06-18' },
      body: { jsonrpc: '2.0', id: 3, method: 'ping' } });
    assert.equal(good.status, 200, good.body);
  });

  test('DELETE ends the MCP session and closes its kiln sessions', { timeout: TEST_TIMEOUT }, async () => {
    const client = await kiln.connect();
    const sc = await run(client, 'import os\nos.getpid()');
    const sessionId = client.transport?.sessionId ?? client._transport?.sessionId;
    assert.match(sessionId, /^[0-9a-f]{32}$/);
    const del = await raw(kiln, { method: 'DELETE', headers: { 'Mcp-Session-Id': sessionId } });
    assert.equal(del.status, 200, del.body);
    const again = await raw(kiln, { headers: { 'Mcp-Session-Id': sessionId },
      body: { jsonrpc: '2.0', id: 5, method: 'ping' } });
    assert.equal(again.status, 404, again.body);
    // The kiln session it made is gone for everyone.
    const other = await kiln.connect();
    const sessions = await other.callTool({ name: 'list_sessions', arguments: {} });
    assert.ok(!sessions.structuredContent.sessions.some((s) => s.session_id === sc.session_id));
  });

  test('a batch is served for 2025-03-26 and refused for 2025-11-25', { timeout: TEST_TIMEOUT }, async () => {
    const old = await rawSession(kiln, { version: '2025-03-26' });
    const r = await raw(kiln, { headers: { 'Mcp-Session-Id': old, Accept: 'application/json' },
      body: [{ jsonrpc: '2.0', id: 'a', method: 'ping' }, { jsonrpc: '2.0', id: 'b', method: 'tools/list' }] });
    assert.equal(r.status, 200, r.body);
    const answers = JSON.parse(r.body);
    assert.deepEqual(answers.map((a) => a.id).sort(), ['a', 'b']);
    const now = await rawSession(kiln);
    const refused = await raw(kiln, { headers: { 'Mcp-Session-Id': now },
      body: [{ jsonrpc: '2.0', id: 'a', method: 'ping' }] });
    assert.equal(JSON.parse(refused.body).error.code, -32600, refused.body);
  });

  test('POST without application/json is 415; GET without text/event-stream is 406; PUT is 405', { timeout: TEST_TIMEOUT }, async () => {
    const id = await rawSession(kiln);
    const text = await raw(kiln, { headers: { 'Mcp-Session-Id': id, 'Content-Type': 'text/plain' },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
    assert.equal(text.status, 415, text.body);
    const get = await raw(kiln, { method: 'GET', headers: { 'Mcp-Session-Id': id, Accept: 'application/json' } });
    assert.equal(get.status, 406, get.body);
    const put = await raw(kiln, { method: 'PUT', headers: { 'Mcp-Session-Id': id }, body: '{}' });
    assert.equal(put.status, 405, put.body);
    assert.match(put.headers.allow, /POST/);
  });

  test('a body that is not JSON is answered 400 with a parse error', { timeout: TEST_TIMEOUT }, async () => {
    const id = await rawSession(kiln);
    const r = await raw(kiln, { headers: { 'Mcp-Session-Id': id }, body: '{"jsonrpc": "2.0", "id": 1, "meth' });
    assert.equal(r.status, 400, r.body);
    assert.equal(JSON.parse(r.body).error.code, -32700, r.body);
    const empty = await raw(kiln, { headers: { 'Mcp-Session-Id': id }, body: '' });
    assert.equal(empty.status, 400, empty.body);
    assert.equal(JSON.parse(empty.body).error.code, -32700, empty.body);
  });
});

describe('SSE streams: resumption and slow readers', () => {
  const kiln = useHttp();

  test('a client that reconnects with Last-Event-ID mid-cell gets the rest of the output and the reply', { timeout: TEST_TIMEOUT }, async () => {
    const id = await rawSession(kiln);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: {
      name: 'run_python', _meta: { progressToken: 'p7' }, arguments: { code:
        'import time\nfor i in range(12):\n    print("line", i, flush=True)\n    time.sleep(0.25)\n"done"' } } });
    // Read the first events, then drop the connection.
    const firstPart = await new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: kiln.port, method: 'POST', path: '/mcp', headers: {
        'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'Mcp-Session-Id': id } }, (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream');
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          text += c;
          if (/line 2/.test(text)) {
            res.destroy();
            req.destroy();
            resolve(text);
          }
        });
        res.on('error', () => {});
      });
      req.on('error', () => {});
      req.end(body);
      setTimeout(() => reject(new Error('no output came')), 20_000).unref();
    });
    const before = sseEvents(firstPart.slice(0, firstPart.lastIndexOf('\n\n') + 2));
    const lastId = before.filter((e) => e.id).at(-1).id;
    assert.ok(before.every((e) => e.data === undefined || e.data.id === undefined), 'no reply yet');
    await sleep(800); // output goes on while no one is connected
    const resumed = await raw(kiln, { method: 'GET', headers: { 'Mcp-Session-Id': id, 'Last-Event-ID': lastId } });
    assert.equal(resumed.status, 200);
    const after = sseEvents(resumed.body);
    const reply = after.find((e) => e.data?.id === 7);
    assert.ok(reply, `the reply came after the reconnect: ${resumed.body}`);
    assert.equal(reply.data.result.structuredContent.status, 'ok');
    const text = [...before, ...after].filter((e) => e.data?.method === 'notifications/progress')
      .map((e) => e.data.params.message).join('');
    for (let i = 0; i < 12; i++) assert.match(text, new RegExp(`line ${i}\\b`), text);
    // Nothing twice: the resumed stream starts after the last id seen.
    assert.ok(after.every((e) => !before.some((b) => b.id === e.id)));
  });

  test('a dropped connection never cancels the cell', { timeout: TEST_TIMEOUT }, async () => {
    const client = await kiln.connect();
    const s = await run(client, 'import os\nos.getpid()');
    const id = await rawSession(kiln);
    // A second client cannot use that session; the dropped call runs in its own.
    await new Promise((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: kiln.port, method: 'POST', path: '/mcp', headers: {
        'Content-Type': 'application/json', Accept: 'application/json', 'Mcp-Session-Id': id } });
      req.on('error', () => {});
      req.end(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'upload_file',
        arguments: { path: 'seed.txt', content: 'x' } } }));
      req.on('response', (res) => { res.resume(); res.on('end', resolve); });
    });
    const made = await raw(kiln, { headers: { 'Mcp-Session-Id': id }, body: { jsonrpc: '2.0', id: 2,
      method: 'tools/call', params: { name: 'list_sessions', arguments: {} } } });
    const sid = JSON.parse(made.body).result.structuredContent.sessions[0].session_id;
    await new Promise((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: kiln.port, method: 'POST', path: '/mcp', headers: {
        'Content-Type': 'application/json', Accept: 'application/json', 'Mcp-Session-Id': id } });
      req.on('error', () => resolve());
      req.end(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'run_python',
        arguments: { session_id: sid, code: 'import time\ntime.sleep(1.5)\nopen("finished.txt", "w").write("yes")' } } }));
      setTimeout(() => { req.destroy(); resolve(); }, 300);
    });
    await sleep(3000);
    const check = await raw(kiln, { headers: { 'Mcp-Session-Id': id }, body: { jsonrpc: '2.0', id: 4,
      method: 'tools/call', params: { name: 'read_file', arguments: { session_id: sid, path: 'finished.txt' } } } });
    assert.match(check.body, /yes/, check.body);
    void s;
  });

  test('a client that stops reading costs a bounded buffer, and the reply is never dropped from it', { timeout: 120_000 }, async () => {
    const id = await rawSession(kiln);
    // About 1.6 MB of progress over 10 s (8 KiB per stream per 100 ms)
    // while the client holds the stream open and reads none of it.
    let primingId;
    const held = await new Promise((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: kiln.port, method: 'POST', path: '/mcp', headers: {
        'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'Mcp-Session-Id': id } });
      req.on('error', () => {});
      req.on('response', (res) => {
        res.once('data', (c) => {
          primingId = /id: (\S+)/.exec(c.toString())[1];
          res.pause();
          resolve(req);
        });
      });
      req.end(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'run_python',
        _meta: { progressToken: 1 }, arguments: { timeout_s: 60, code:
          'import sys, time\nt = time.time()\nwhile time.time() - t < 10:\n'
          + '    sys.stdout.write("o" * 4000 + "\\n"); sys.stderr.write("e" * 4000 + "\\n")\n'
          + '    sys.stdout.flush(); sys.stderr.flush(); time.sleep(0.01)\n"end"' } } }));
    });
    await sleep(11_500);
    held.destroy();
    const replay = await raw(kiln, { method: 'GET', headers: { 'Mcp-Session-Id': id, 'Last-Event-ID': primingId } });
    const events = sseEvents(replay.body);
    const progress = events.filter((e) => e.data?.method === 'notifications/progress');
    const reply = events.find((e) => e.data?.id === 1);
    assert.ok(reply, 'the reply is kept');
    assert.equal(reply.data.result.structuredContent.result, "'end'");
    const lastSeq = Number(reply.id.split('-')[1]);
    // More was produced than is kept: the oldest events were dropped...
    assert.ok(lastSeq > progress.length + 1, `${lastSeq} events, ${progress.length} kept`);
    assert.ok(Number(progress[0].id.split('-')[1]) > 1, 'the first events were dropped');
    // ...and what is kept stays near the 1 MiB bound.
    assert.ok(replay.body.length < 1.25 * 1024 * 1024, `${replay.body.length} bytes kept`);
  });
});

describe('limits', () => {
  const kiln = useHttp({ args: ['--max-message', '4K', '--http-timeout', '2',
    '--http-max-connections', '40', '--http-max-client-sessions', '30', '--metrics-public'] });

  test('a body over --max-message is 413, with the id when it can be found', { timeout: TEST_TIMEOUT }, async () => {
    const id = await rawSession(kiln);
    const big = JSON.stringify({ jsonrpc: '2.0', id: 'big-1', method: 'tools/call',
      params: { name: 'run_python', arguments: { code: `x = "${'a'.repeat(8000)}"` } } });
    const r = await raw(kiln, { headers: { 'Mcp-Session-Id': id }, body: big });
    assert.equal(r.status, 413, r.body);
    assert.equal(JSON.parse(r.body).id, 'big-1');
    // Sent chunked, with no Content-Length to refuse it up front.
    const chunked = await new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: kiln.port, method: 'POST', path: '/mcp', headers: {
        'Content-Type': 'application/json', Accept: 'application/json', 'Mcp-Session-Id': id,
        'Transfer-Encoding': 'chunked' } }, (res) => {
        let d = '';
        res.on('data', (c) => { d += c; });
        res.on('end', () => resolve({ status: res.statusCode, body: d }));
      });
      req.on('error', reject);
      for (let i = 0; i < big.length; i += 1000) req.write(big.slice(i, i + 1000));
      req.end();
    });
    assert.equal(chunked.status, 413, chunked.body);
    assert.equal(JSON.parse(chunked.body).id, 'big-1');
  });

  test('garbage HTTP is refused and kiln goes on serving', { timeout: TEST_TIMEOUT }, async () => {
    for (const junk of ['\x00\x01\x02 garbage\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', 'POST /mcp HTTP/1.1\r\nContent-Length: -5\r\n\r\n',
      'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', `GET /${'a'.repeat(200000)} HTTP/1.1\r\n\r\n`]) {
      const got = await rawTcp(kiln, junk, { endAfterWrite: false });
      assert.ok(got === '' || /^HTTP\/1\.[01] [45]\d\d/.test(got), JSON.stringify(got.slice(0, 200)));
    }
    const r = await raw(kiln, { method: 'GET', path: '/healthz' });
    assert.equal(r.status, 200);
  });

  test('a client that trickles its headers is cut off after --http-timeout', { timeout: TEST_TIMEOUT }, async () => {
    const { connect } = await import('node:net');
    const start = Date.now();
    const closedAfter = await new Promise((resolve) => {
      const sock = connect(kiln.port, '127.0.0.1');
      let n = 0;
      const timer = setInterval(() => {
        if (!sock.destroyed) sock.write(n++ === 0 ? 'POST /mcp HTTP/1.1\r\n' : `X-Slow-${n}: y\r\n`);
      }, 500);
      sock.on('error', () => {});
      sock.on('close', () => { clearInterval(timer); resolve(Date.now() - start); });
      setTimeout(() => { clearInterval(timer); sock.destroy(); resolve(Infinity); }, 20_000).unref();
    });
    assert.ok(closedAfter < 15_000, `a trickling client was kept ${closedAfter} ms`);
  });

  test('connections past --http-max-connections are told 503', { timeout: TEST_TIMEOUT }, async () => {
    const { connect } = await import('node:net');
    const held = [];
    for (let i = 0; i < 40; i++) {
      const s = connect(kiln.port, '127.0.0.1');
      s.on('error', () => {});
      await new Promise((res) => s.on('connect', res));
      held.push(s);
    }
    await sleep(200);
    const r = await raw(kiln, { method: 'GET', path: '/healthz' });
    assert.equal(r.status, 503, r.body);
    for (const s of held) s.destroy();
    await sleep(300);
    const ok = await raw(kiln, { method: 'GET', path: '/healthz' });
    assert.equal(ok.status, 200);
  });

  test('MCP sessions past --http-max-client-sessions are 429', { timeout: TEST_TIMEOUT }, async () => {
    const ids = [];
    let r;
    for (let i = 0; i < 40; i++) {
      r = await raw(kiln, { body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams() } });
      if (r.status !== 200) break;
      ids.push(r.headers['mcp-session-id']);
    }
    assert.equal(r.status, 429, r.body);
    assert.ok(ids.length >= 25 && ids.length <= 30, `${ids.length} sessions before the limit`);
    await raw(kiln, { method: 'DELETE', headers: { 'Mcp-Session-Id': ids[0] } });
    const again = await raw(kiln, { body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams() } });
    assert.equal(again.status, 200, again.body);
    for (const id of ids.slice(1)) await raw(kiln, { method: 'DELETE', headers: { 'Mcp-Session-Id': id } });
  });
});

describe('operations endpoints', () => {
  const kiln = useHttp({ args: ['--metrics-public'] });

  test('/healthz, /readyz and /metrics answer', { timeout: TEST_TIMEOUT }, async () => {
    assert.equal((await raw(kiln, { method: 'GET', path: '/healthz' })).body, 'ok\n');
    assert.equal((await raw(kiln, { method: 'GET', path: '/readyz' })).status, 200);
    const m = await raw(kiln, { method: 'GET', path: '/metrics' });
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    assert.match(m.body, /^# TYPE kiln_http_requests_total counter$/m);
    assert.match(m.body, /^kiln_http_requests_total\{code="200"\} [1-9]\d*$/m);
    assert.equal((await raw(kiln, { method: 'GET', path: '/nothing' })).status, 404);
  });

  test('/metrics counts sessions, cells by outcome and their durations', { timeout: TEST_TIMEOUT }, async () => {
    const client = await kiln.connect();
    const ok = await run(client, '1');
    await run(client, '1/0', { session_id: ok.session_id });
    await run(client, 'import time\nwhile True: time.sleep(0.05)', { session_id: ok.session_id, timeout_s: 0.5 });
    const body = (await raw(kiln, { method: 'GET', path: '/metrics' })).body;
    const value = (line) => {
      const m = new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(body);
      assert.ok(m, `${line} in\n${body}`);
      return Number(m[1]);
    };
    assert.equal(value('kiln_cells_total{outcome="ok"}'), 1);
    assert.equal(value('kiln_cells_total{outcome="error"}'), 1);
    assert.equal(value('kiln_cells_total{outcome="interrupted"}'), 1);
    assert.equal(value('kiln_cell_duration_seconds_count'), 3);
    assert.ok(value('kiln_cell_duration_seconds_sum') >= 0.5);
    assert.equal(value('kiln_sessions{state="live"}'), 1);
    assert.ok(value('kiln_worker_spawn_seconds_count') >= 1);
    assert.ok(value('kiln_http_requests_total{code="200"}') >= 4);
  });
});

describe('many clients at once', () => {
  const kiln = useHttp();

  test('200 clients, each with its own MCP session and kiln session, in parallel', { timeout: 240_000 }, async () => {
    const ids = await Promise.all(Array.from({ length: 200 }, () => rawSession(kiln)));
    assert.equal(new Set(ids).size, 200);
    const call = (id, n, code, session_id) => raw(kiln, { headers: { 'Mcp-Session-Id': id }, body: {
      jsonrpc: '2.0', id: n, method: 'tools/call', params: { name: 'run_python', arguments: { code, session_id } } } })
      .then((r) => JSON.parse(r.body).result.structuredContent);
    const firsts = await Promise.all(ids.map((id, i) => call(id, 1, `me = ${i}\nme`)));
    firsts.forEach((sc, i) => assert.equal(sc.result, String(i), dump(sc)));
    assert.equal(new Set(firsts.map((sc) => sc.session_id)).size, 200);
    const seconds = await Promise.all(ids.map((id, i) => call(id, 2, 'me * 10', firsts[i].session_id)));
    seconds.forEach((sc, i) => assert.equal(sc.result, String(i * 10), dump(sc)));
    await Promise.all(ids.map((id) => raw(kiln, { method: 'DELETE', headers: { 'Mcp-Session-Id': id } })));
  });
});

describe('TLS', () => {
  let kiln;
  const dir = mkdtempSync(join(tmpdir(), 'kiln-tls-'));
  before(async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    kiln = await startHttp({ args: ['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')] });
  }, { timeout: HOOK_TIMEOUT });
  after(() => kiln?.close(), { timeout: HOOK_TIMEOUT });

  test('--tls-cert/--tls-key serve HTTPS', { timeout: TEST_TIMEOUT }, async () => {
    assert.match(kiln.url, /^https:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const { request } = await import('node:https');
    const ca = readFileSync(join(dir, 'cert.pem'));
    const r = await new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: kiln.port, path: '/mcp', method: 'POST', ca, headers: {
        'Content-Type': 'application/json', Accept: 'application/json' } }, (res) => {
        let d = '';
        res.on('data', (c) => { d += c; });
        res.on('end', () => resolve({ status: res.statusCode, body: d }));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams() }));
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).result.serverInfo.name, 'kiln');
    // Plain HTTP to the TLS port gets nothing usable.
    const plain = await rawTcp(kiln, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.doesNotMatch(plain, /^HTTP\/1\.1 200/);
  });
});

describe('an unused MCP session', () => {
  const kiln = useHttp({ args: ['--http-session-idle', '1'] });

  test('is ended after --http-session-idle, with its kiln sessions', { timeout: TEST_TIMEOUT }, async () => {
    const id = await rawSession(kiln);
    const made = await raw(kiln, { headers: { 'Mcp-Session-Id': id }, body: { jsonrpc: '2.0', id: 1,
      method: 'tools/call', params: { name: 'run_python', arguments: { code: '1' } } } });
    assert.equal(JSON.parse(made.body).result.structuredContent.status, 'ok', made.body);
    const listed = await raw(kiln, { headers: { 'Mcp-Session-Id': id }, body: { jsonrpc: '2.0', id: 3,
      method: 'tools/call', params: { name: 'list_sessions', arguments: {} } } });
    const { pid } = JSON.parse(listed.body).result.structuredContent.sessions[0];
    assert.ok(pid > 0, made.body);
    await sleep(1500);
    // Any activity wakes the loop, which looks for sessions unused too long.
    await raw(kiln, { method: 'GET', path: '/healthz' });
    const status = (await raw(kiln, { headers: { 'Mcp-Session-Id': id },
      body: { jsonrpc: '2.0', id: 2, method: 'ping' } })).status;
    const { pidGone, pollUntil } = await import('./helpers.mjs');
    assert.ok(await pollUntil(() => pidGone(pid), 10_000), `worker ${pid} outlived its MCP session`);
    assert.equal(status, 404);
    assert.match(kiln.stderr(), /ended after 1 s unused/);
  });
});
