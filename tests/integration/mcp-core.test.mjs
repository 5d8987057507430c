// The MCP layer: stdin that is a file, resource URIs that are URIs, and
// requests that are malformed in ways the SDK client will not send (so a
// raw stdio client sends them), each answered with the right id and
// leaving the server alive.

import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  KILN_BIN,
  useServer,
  useRawServer,
  withRawServer,
  run,
  runFull,
  callTool,
  dump,
  PROTOCOL_VERSION,
  TEST_TIMEOUT,
  HOOK_TIMEOUT,
} from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

// ---------------------------------------------------------------------------
// stdin a file, a pipe closed early, /dev/null
// ---------------------------------------------------------------------------

const initialize = {
  jsonrpc: '2.0',
  id: 'init',
  method: 'initialize',
  params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'file', version: '0' } },
};
const initialized = { jsonrpc: '2.0', method: 'notifications/initialized' };
const cell = (id, code) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'run_python', arguments: { code } },
});
const requests = [
  initialize,
  initialized,
  cell('cell-1', 'import time\ntime.sleep(0.5)\nprint(6 * 7)'),
  { jsonrpc: '2.0', id: 'ping-1', method: 'ping' },
  cell('cell-2', '"second"'),
  { jsonrpc: '2.0', id: 'list-1', method: 'tools/call', params: { name: 'list_sessions', arguments: {} } },
];

/**
 * Runs `kiln serve` with STDIN ('file', 'pipe' or 'null') fed REQUESTS,
 * and resolves with its exit and every message it wrote, by id.
 */
function serveAll(stdin, lines, ms = 60_000) {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-stdin-'));
  const env = { ...process.env, KILN_HOME: join(dir, 'home') };
  let stdinSpec = 'pipe';
  let fd;
  if (stdin === 'file') {
    writeFileSync(join(dir, 'requests.jsonl'), lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
    fd = openSync(join(dir, 'requests.jsonl'), 'r');
    stdinSpec = fd;
  } else if (stdin === 'null') {
    stdinSpec = 'ignore'; // /dev/null
  }
  const child = spawn(KILN_BIN, ['serve'], { stdio: [stdinSpec, 'pipe', 'pipe'], env });
  if (fd !== undefined) closeSync(fd);
  if (stdin === 'pipe') {
    // Everything at once, then end of input before any cell is done.
    child.stdin.end(lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  }
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      const byId = new Map();
      for (const line of out.split('\n').filter(Boolean)) {
        const m = JSON.parse(line);
        byId.set(m.id, m);
      }
      resolve({ code, signal, byId, stderr: err });
    });
  });
}

describe('kiln serve with requests on stdin', () => {
  for (const stdin of ['file', 'pipe']) {
    test(`every request read from a ${stdin} is answered, cells included, before kiln exits`, opts, async () => {
      const r = await serveAll(stdin, requests);
      assert.equal(r.signal, null, `kiln was killed by ${r.signal}: ${r.stderr.slice(-2000)}`);
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      for (const req of requests.filter((m) => 'id' in m)) {
        assert.ok(r.byId.has(req.id), `no answer to ${req.id}: ${dump([...r.byId.values()])}`);
        assert.ok(!('error' in r.byId.get(req.id)), dump(r.byId.get(req.id)));
      }
      const first = r.byId.get('cell-1').result.structuredContent;
      assert.equal(first.status, 'ok', dump(first));
      assert.equal(first.stdout, '42\n');
      assert.equal(r.byId.get('cell-2').result.structuredContent.result, "'second'");
    });
  }

  test('stdin /dev/null: kiln exits at once, cleanly', opts, async () => {
    const r = await serveAll('null', [], 30_000);
    assert.equal(r.signal, null);
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.equal(r.byId.size, 0);
  });

  test('a file of requests with a malformed line and no final newline is answered line by line', opts, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-stdin-'));
    const file = join(dir, 'requests.jsonl');
    writeFileSync(
      file,
      `${JSON.stringify(initialize)}\n{"jsonrpc":"2.0","id":"bad-1","method":"ping","x":"\\uD800"}\n` +
        JSON.stringify({ jsonrpc: '2.0', id: 'last', method: 'ping' }),
    );
    const fd = openSync(file, 'r');
    const child = spawn(KILN_BIN, ['serve'], {
      stdio: [fd, 'pipe', 'pipe'],
      env: { ...process.env, KILN_HOME: join(dir, 'home') },
    });
    closeSync(fd);
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
    const byId = new Map(out.split('\n').filter(Boolean).map((l) => [JSON.parse(l).id, JSON.parse(l)]));
    assert.equal(code, 0);
    assert.equal(byId.get('bad-1')?.error?.code, -32700, out);
    assert.deepEqual(byId.get('last')?.result, {}, out);
  });
});

// ---------------------------------------------------------------------------
// Resource URIs
// ---------------------------------------------------------------------------

/** The path part of a kiln file URI, decoded, or throws if it is not one. */
function filePath(uri, sid) {
  const u = new URL(uri);
  assert.equal(u.protocol, 'kiln:');
  assert.equal(u.host, 'sessions');
  assert.equal(u.hash, '', `${uri} has a fragment`);
  assert.equal(u.search, '', `${uri} has a query`);
  const prefix = `/${sid}/files/`;
  assert.ok(u.pathname.startsWith(prefix), uri);
  // Every character outside RFC 3986's unreserved set and '/' is encoded.
  assert.match(uri.slice(`kiln://sessions${prefix}`.length), /^([A-Za-z0-9\-._~/]|%[0-9A-F]{2})*$/, uri);
  return decodeURIComponent(u.pathname.slice(prefix.length));
}

describe('resource URIs are percent-encoded', () => {
  const kiln = useServer();
  let client;
  let sid;
  const names = ['a b#c%.txt', 'dir/ü.txt', 'q?x=1&y.txt'];

  before(async () => {
    client = kiln.client;
    sid = (await run(client, 'x = 1')).session_id;
  }, { timeout: HOOK_TIMEOUT });

  test('files a cell writes come back as links with encoded URIs that read back', opts, async () => {
    const code = [
      'import os',
      'os.makedirs("dir", exist_ok=True)',
      ...names.map((n) => `open(${JSON.stringify(n)}, "w").write(${JSON.stringify(`content of ${n}`)})`),
    ].join('\n');
    const result = await runFull(client, code, { session_id: sid });
    const links = result.content.filter((c) => c.type === 'resource_link');
    assert.deepEqual(links.map((l) => l.name).sort(), [...names].sort(), dump(result));
    for (const link of links) {
      assert.equal(filePath(link.uri, sid), link.name);
      const read = await client.readResource({ uri: link.uri });
      assert.equal(read.contents[0].text, `content of ${link.name}`);
      assert.equal(read.contents[0].uri, link.uri);
    }
    for (const f of result.structuredContent.files) {
      assert.equal(filePath(f.uri, sid), f.path);
    }
    assert.equal(
      links.find((l) => l.name === 'a b#c%.txt').uri,
      `kiln://sessions/${sid}/files/a%20b%23c%25.txt`,
    );
    assert.equal(links.find((l) => l.name === 'dir/ü.txt').uri, `kiln://sessions/${sid}/files/dir/%C3%BC.txt`);
  });

  test('read_file takes the name, resources/read any encoded spelling of it', opts, async () => {
    const read = await callTool(client, 'read_file', { session_id: sid, path: 'a b#c%.txt' });
    assert.equal(read.content[0].text, 'content of a b#c%.txt', dump(read));
    // Lower-case hex, and '/' encoded as a template expansion encodes it.
    for (const uri of [
      `kiln://sessions/${sid}/files/a%20b%23c%25.txt`,
      `kiln://sessions/${sid}/files/dir/%c3%bc.txt`,
      `kiln://sessions/${sid}/files/${encodeURIComponent('dir/ü.txt')}`,
    ]) {
      const res = await client.readResource({ uri });
      assert.match(res.contents[0].text, /^content of /, uri);
    }
  });

  test('upload_file reports an encoded URI that reads back', opts, async () => {
    const up = await callTool(client, 'upload_file', { session_id: sid, path: 'up load/ä%.md', content: '# hi\n' });
    assert.ok(!up.isError, dump(up));
    assert.equal(filePath(up.structuredContent.uri, sid), 'up load/ä%.md');
    const res = await client.readResource({ uri: up.structuredContent.uri });
    assert.equal(res.contents[0].text, '# hi\n');
  });

  test('a binary file read with read_file is a resource with an encoded URI', opts, async () => {
    await callTool(client, 'upload_file', { session_id: sid, path: 'bin #1.dat', content: 'AAEC', encoding: 'base64' });
    const read = await callTool(client, 'read_file', { session_id: sid, path: 'bin #1.dat' });
    assert.equal(read.content[0].type, 'resource', dump(read));
    assert.equal(filePath(read.content[0].resource.uri, sid), 'bin #1.dat');
    const res = await client.readResource({ uri: read.content[0].resource.uri });
    assert.equal(res.contents[0].blob, 'AAEC');
  });

  test('a URI that is not encoded, or encodes a NUL, is refused and the server lives', opts, async () => {
    for (const [uri, why] of [
      [`kiln://sessions/${sid}/files/a b#c%.txt`, 'byte 0x20 must be percent-encoded in a kiln URI (%20)'],
      [`kiln://sessions/${sid}/files/a%00b`, '%00 (a NUL byte) is not allowed in a kiln URI'],
      [`kiln://sessions/${sid}/files/%C3`, 'a kiln URI must decode to UTF-8 text'],
    ]) {
      await assert.rejects(client.readResource({ uri }), {
        code: -32002,
        message: `MCP error -32002: resource not found: ${uri} (${why})`,
      });
    }
    // Decoded, '..' is the front's to refuse, as it refuses it from read_file.
    await assert.rejects(client.readResource({ uri: `kiln://sessions/${sid}/files/%2E%2E/etc/passwd` }), {
      code: -32002,
      message: "MCP error -32002: '../etc/passwd' is not a path under /work: use a relative path without '..', '.' or empty parts",
    });
    assert.equal((await run(client, '1+1')).result, '2');
  });
});

// ---------------------------------------------------------------------------
// Hardening, through a raw stdio client
// ---------------------------------------------------------------------------

describe('malformed requests over raw stdio are answered with their id', () => {
  const raw = useRawServer({ args: ['--max-message', '100000'] });
  let sid;

  before(async () => {
    const first = await raw.runPython('n = 0');
    sid = first.result?.structuredContent?.session_id;
    assert.ok(sid, dump(first));
  }, { timeout: HOOK_TIMEOUT });

  async function assertAlive() {
    const r = await raw.runPython('1+1');
    assert.equal(r.result?.structuredContent?.result, '2', dump(r));
    assert.equal(raw.child.exitCode, null, 'kiln exited');
  }

  // A path over 200 bytes, invalid ('..'), with a two-byte character
  // across byte 200: cut there for the error message, it once made the
  // reply unbuildable.
  const longPath = `../${'a'.repeat(196)}ü${'b'.repeat(40)}`;

  test('a long invalid path cut for display is refused by every file entry point', opts, async () => {
    assert.equal(Buffer.from(longPath).subarray(199, 201).toString(), 'ü');
    const calls = [
      ['tools/call', { name: 'read_file', arguments: { session_id: sid, path: longPath } }],
      ['tools/call', { name: 'list_files', arguments: { session_id: sid, path: longPath } }],
      ['tools/call', { name: 'upload_file', arguments: { session_id: sid, path: longPath, content: 'x' } }],
      ['resources/read', { uri: `kiln://sessions/${sid}/files/${encodeURIComponent(longPath)}` }],
    ];
    for (const [i, [method, params]] of calls.entries()) {
      const id = `long-path-${i}`;
      const r = await raw.request(method, params, id);
      assert.equal(r.id, id);
      const text = method === 'resources/read' ? r.error?.message : r.result?.isError && r.result.content[0].text;
      assert.ok(text, `${method}: ${dump(r)}`);
      assert.match(text, /not a path under \/work/, dump(r));
      assert.ok(!text.includes('\ufffd'), `the cut went through a character: ${text}`);
      assert.ok(text.includes('a…') || text.includes('a\u2026'), text);
    }
    await assertAlive();
  });

  const unparsable = [
    ['an integer past int64', (id) => `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"ping","params":{"n":99999999999999999999}}`],
    ['a lone surrogate', (id) => `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"ping","params":{"s":"\\uD800"}}`],
    ['a NUL in a key', (id) => `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"tools/call","params":{"name":"run_python","arguments":{"co\\u0000de":"1"}}}`],
    ['a duplicate key', (id) => `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"ping","method":"ping"}`],
    ['a numeric id and trailing garbage', () => '{"jsonrpc":"2.0","id":31337,"method":"ping"} garbage'],
  ];
  for (const [what, line] of unparsable) {
    test(`a request with ${what} gets a parse error carrying its id`, opts, async () => {
      const id = what.startsWith('a numeric') ? 31337 : `unparsable ${what}`;
      await raw.sendLine(line(id));
      const r = await raw.response(id);
      assert.equal(r.error?.code, -32700, dump(r));
      await assertAlive();
    });
  }

  test('a request over --max-message is refused with its id', opts, async () => {
    const huge = JSON.stringify({
      jsonrpc: '2.0',
      id: 'too-long-2',
      method: 'tools/call',
      params: { name: 'run_python', arguments: { code: `x = ${JSON.stringify('q'.repeat(300_000))}` } },
    });
    await raw.sendLine(huge);
    const r = await raw.response('too-long-2');
    assert.equal(r.error?.code, -32600, dump(r));
    assert.match(r.error.message, /100000-byte limit/);
    await assertAlive();
  });

  test('method and tool names are compared with all their bytes', opts, async () => {
    await raw.sendLine('{"jsonrpc":"2.0","id":"nul-method","method":"ping\\u0000x"}');
    const m = await raw.response('nul-method');
    assert.equal(m.error?.code, -32601, dump(m));
    await raw.sendLine(
      '{"jsonrpc":"2.0","id":"nul-tool","method":"tools/call","params":{"name":"run_python\\u0000","arguments":{"code":"n += 1"}}}',
    );
    const t = await raw.response('nul-tool');
    assert.equal(t.error?.code, -32602, dump(t));
    assert.match(t.error.message, /unknown tool/);
    await assertAlive();
  });

  test('a session id with a NUL is refused and runs nothing in the session it prefixes', opts, async () => {
    const r = await raw.request('tools/call', {
      name: 'run_python',
      arguments: { code: 'n += 1', session_id: `${sid}\u0000other` },
    });
    assert.equal(r.result?.isError, true, dump(r));
    assert.match(r.result.content[0].text, /NUL/);
    for (const [name, args] of [
      ['close_session', { session_id: `${sid}\u0000` }],
      ['read_file', { session_id: `${sid}\u0000`, path: 'x' }],
      ['upload_file', { session_id: sid, path: 'x', content: 'y', encoding: 'base64\u0000' }],
    ]) {
      const other = await raw.request('tools/call', { name, arguments: args });
      assert.equal(other.result?.isError, true, `${name}: ${dump(other)}`);
    }
    const n = await raw.runPython('n', { session_id: sid });
    assert.equal(n.result?.structuredContent?.result, '0', dump(n));
  });
});

describe('--max-message holds for a line that arrives in one piece', () => {
  test('a short line over a small limit is refused with its id, one under it served', opts, async () => {
    await withRawServer({ args: ['--max-message', '2000'] }, async (raw) => {
      const over = { jsonrpc: '2.0', id: 'over-1', method: 'ping', params: { pad: 'p'.repeat(3000) } };
      await raw.sendLine(over);
      const r = await raw.response('over-1');
      assert.equal(r.error?.code, -32600, dump(r));
      assert.match(r.error.message, /2000-byte limit/);
      const under = await raw.request('ping', { pad: 'p'.repeat(1500) }, 'under-1');
      assert.deepEqual(under.result, {}, dump(under));
    });
  });
});
