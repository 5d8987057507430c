// kiln serve --http, its security: which kiln sessions a client may use,
// the Origin and Host checks against DNS rebinding, bearer tokens, and the
// refusal to listen beyond loopback without them.

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

describe('each kiln session belongs to the MCP session that made it', () => {
  const kiln = useHttp();

  test('another client can neither see, run in, close nor read it; the answers are those of an id that never existed', { timeout: TEST_TIMEOUT }, async () => {
    const alice = await kiln.connect();
    const bob = await kiln.connect();
    const a = await run(alice, 'secret = "alice"\nopen("notes.txt", "w").write("private")\n'
      + 'import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()');
    assert.equal(a.status, 'ok', dump(a));
    const sid = a.session_id;
    const fake = sid.replace(/[0-9a-f]/g, (c) => (c === '0' ? '1' : '0'));
    const same = (s) => s.replaceAll(fake, '<id>').replaceAll(sid, '<id>');

    const listed = await bob.callTool({ name: 'list_sessions', arguments: {} });
    assert.deepEqual(listed.structuredContent.sessions, []);
    for (const [name, args] of [
      ['run_python', { code: 'secret', session_id: sid }],
      ['close_session', { session_id: sid }],
      ['list_files', { session_id: sid }],
      ['read_file', { session_id: sid, path: 'notes.txt' }],
      ['upload_file', { session_id: sid, path: 'x.txt', content: 'x' }],
    ]) {
      const theirs = await bob.callTool({ name, arguments: args });
      const none = await bob.callTool({ name, arguments: { ...args, session_id: fake } });
      assert.equal(theirs.isError, true, `${name}: ${dump(theirs)}`);
      assert.equal(same(resultText(theirs)), same(resultText(none)), name);
    }
    const art = a.artifacts?.[0]?.uri ?? (await alice.listResources()).resources[0].uri;
    for (const uri of [art, `kiln://sessions/${sid}/files/notes.txt`]) {
      const theirs = await bob.readResource({ uri }).then(() => 'read', (e) => e.message);
      const none = await bob.readResource({ uri: uri.replace(sid, fake) }).then(() => 'read', (e) => e.message);
      assert.notEqual(theirs, 'read', uri);
      assert.equal(same(theirs), same(none), uri);
    }
    assert.deepEqual((await bob.listResources()).resources, []);
    const completion = await bob.complete({ ref: { type: 'ref/resource', uri: 'kiln://sessions/{session_id}/files/{path}' },
      argument: { name: 'session_id', value: '' } });
    assert.deepEqual(completion.completion.values, []);
    // Alice still has it all.
    const mine = await run(alice, 'secret', { session_id: sid });
    assert.equal(mine.result, "'alice'", dump(mine));
    assert.equal((await alice.listResources()).resources.length, 1);
  });
});

describe('Origin and Host (DNS rebinding)', () => {
  const kiln = useHttp({ args: ['--allow-origin', 'https://app.example.com', '--allow-host', 'kiln.internal'] });

  test('a foreign Origin gets 403; loopback and allowed origins pass', { timeout: TEST_TIMEOUT }, async () => {
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams() };
    for (const origin of ['https://evil.example', 'null', 'http://localhost.evil.example', 'http://127.0.0.1.evil.example']) {
      const r = await raw(kiln, { headers: { Origin: origin }, body: init });
      assert.equal(r.status, 403, `${origin}: ${r.body}`);
      assert.equal(r.headers['mcp-session-id'], undefined);
    }
    for (const origin of ['http://localhost:3000', 'http://127.0.0.1:6274', 'http://[::1]:80', 'https://app.example.com']) {
      const r = await raw(kiln, { headers: { Origin: origin }, body: init });
      assert.equal(r.status, 200, `${origin}: ${r.body}`);
    }
  });

  test('a Host that is a name not allowed gets 403', { timeout: TEST_TIMEOUT }, async () => {
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams() };
    const evil = await raw(kiln, { headers: { Host: `attacker.example:${kiln.port}` }, body: init });
    assert.equal(evil.status, 403, evil.body);
    for (const host of [`kiln.internal:${kiln.port}`, `localhost:${kiln.port}`, `127.0.0.1:${kiln.port}`]) {
      const ok = await raw(kiln, { headers: { Host: host }, body: init });
      assert.equal(ok.status, 200, `${host}: ${ok.body}`);
    }
  });
});

describe('bearer tokens', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-tokens-'));
  const tokenFile = join(dir, 'tokens');
  writeFileSync(tokenFile, '# the team\nalpha-token-1\n\nbeta-token-2\n');
  const kiln = useHttp({ args: ['--token-file', tokenFile, '--auth-server', 'https://auth.example.com'] });

  test('no token or a wrong one is 401 with a resource_metadata challenge', { timeout: TEST_TIMEOUT }, async () => {
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams() };
    for (const headers of [{}, { Authorization: 'Bearer wrong' }, { Authorization: 'Bearer alpha-token-' },
      { Authorization: 'Basic YWxwaGEtdG9rZW4tMQ==' }, { Authorization: 'Bearer alpha-token-1x' }]) {
      const r = await raw(kiln, { headers, body: init });
      assert.equal(r.status, 401, `${dump(headers)}: ${r.body}`);
      assert.match(r.headers['www-authenticate'],
        new RegExp(`^Bearer resource_metadata="http://127\\.0\\.0\\.1:${kiln.port}/\\.well-known/oauth-protected-resource/mcp"`));
    }
    const ok = await raw(kiln, { headers: { Authorization: 'Bearer beta-token-2' }, body: init });
    assert.equal(ok.status, 200, ok.body);
  });

  test('the protected resource metadata names kiln and its authorization server', { timeout: TEST_TIMEOUT }, async () => {
    for (const path of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
      const r = await raw(kiln, { method: 'GET', path });
      assert.equal(r.status, 200, r.body);
      const doc = JSON.parse(r.body);
      assert.equal(doc.resource, `http://127.0.0.1:${kiln.port}/mcp`);
      assert.deepEqual(doc.authorization_servers, ['https://auth.example.com']);
      assert.deepEqual(doc.bearer_methods_supported, ['header']);
    }
  });

  test('the SDK client works with a token, and SIGHUP reloads the file', { timeout: TEST_TIMEOUT }, async () => {
    const client = await kiln.connect({ token: 'alpha-token-1' });
    const sc = await run(client, '6 * 7');
    assert.equal(sc.result, '42');
    writeFileSync(tokenFile, 'gamma-token-3\n');
    process.kill(kiln.pid, 'SIGHUP');
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams() };
    let r;
    for (let i = 0; i < 50; i++) {
      r = await raw(kiln, { headers: { Authorization: 'Bearer gamma-token-3' }, body: init });
      if (r.status === 200) break;
      await sleep(100);
    }
    assert.equal(r.status, 200, r.body);
    const old = await raw(kiln, { headers: { Authorization: 'Bearer alpha-token-1' }, body: init });
    assert.equal(old.status, 401);
    // A token file that cannot be read keeps the tokens loaded.
    writeFileSync(tokenFile, '\n# nothing\n');
    process.kill(kiln.pid, 'SIGHUP');
    await sleep(300);
    const still = await raw(kiln, { headers: { Authorization: 'Bearer gamma-token-3' }, body: init });
    assert.equal(still.status, 200, still.body);
    assert.match(kiln.stderr(), /not reloaded/);
  });

  test('an MCP session is usable only with the token that opened it', { timeout: TEST_TIMEOUT }, async () => {
    writeFileSync(tokenFile, 'one\ntwo\n');
    process.kill(kiln.pid, 'SIGHUP');
    await sleep(300);
    const id = await rawSession(kiln, { headers: { Authorization: 'Bearer one' } });
    const other = await raw(kiln, { headers: { Authorization: 'Bearer two', 'Mcp-Session-Id': id },
      body: { jsonrpc: '2.0', id: 2, method: 'ping' } });
    assert.equal(other.status, 404, other.body);
    const mine = await raw(kiln, { headers: { Authorization: 'Bearer one', 'Mcp-Session-Id': id },
      body: { jsonrpc: '2.0', id: 2, method: 'ping' } });
    assert.equal(mine.status, 200, mine.body);
  });

  test('/metrics needs the token', { timeout: TEST_TIMEOUT }, async () => {
    writeFileSync(tokenFile, 'one\n');
    process.kill(kiln.pid, 'SIGHUP');
    await sleep(300);
    const no = await raw(kiln, { method: 'GET', path: '/metrics' });
    assert.equal(no.status, 401);
    const yes = await raw(kiln, { method: 'GET', path: '/metrics', headers: { Authorization: 'Bearer one' } });
    assert.equal(yes.status, 200, yes.body);
    assert.match(yes.body, /^kiln_http_requests_total\{code="401"\} [1-9]/m);
  });
});

describe('binding beyond loopback', () => {
  test('is refused without a token file, and allowed with the loud flag', { timeout: TEST_TIMEOUT }, async () => {
    await assert.rejects(startHttp({ listen: '0.0.0.0:0' }), /not a loopback address: give --token-file/);
    const open = await startHttp({ listen: '0.0.0.0:0', args: ['--insecure-http-no-token'] });
    try {
      assert.match(open.url, /^http:\/\/0\.0\.0\.0:\d+\/mcp$/);
      const r = await raw(open, { body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams() } });
      assert.equal(r.status, 200, r.body);
      // Bound beyond loopback, a loopback Origin is not trusted by default.
      const o = await raw(open, { headers: { Origin: 'http://localhost:3000' },
        body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: initParams() } });
      assert.equal(o.status, 403, o.body);
    } finally {
      await open.close();
    }
  });
});
