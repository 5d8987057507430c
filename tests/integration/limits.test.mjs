// Large answers are capped or cut short, never fatal: a result within
// --max-result, a listing of a huge tree, an exception with a huge
// message, a flood of displayed images.  And what a cell stores on the
// host is bounded by --max-artifacts-size.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

import {
  startServer, useServer, useRawServer, run, runFull, callTool, KILN_BIN, TEST_TIMEOUT, HOOK_TIMEOUT,
} from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT * 3 };

/** Bytes of every file under DIR, recursively. */
function treeBytes(dir) {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += treeBytes(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

describe('a result within --max-result 48M', () => {
  // Raw stdio: the reply is a single 80 MiB JSON line, more than the SDK
  // client's stdio reader takes.
  const server = useRawServer({ args: ['--max-result', '48M', '--max-message', '64M'] });

  test('a 40 MiB string as the last expression comes back whole and the session lives', opts, async () => {
    await server.sendLine({ jsonrpc: '2.0', id: 'big', method: 'tools/call',
      params: { name: 'run_python', arguments: { code: "x = 'x' * (40 << 20)\nx" } } });
    // The test client reads an 80 MiB line slowly: give it time.
    const reply = await server.response('big', 110_000);
    const r = reply.result.structuredContent;
    assert.equal(r.status, 'ok', JSON.stringify(r.error));
    assert.equal(r.result.length, (40 << 20) + 2); // the repr's quotes
    const again = (await server.runPython('len(x)', { session_id: r.session_id })).result.structuredContent;
    assert.equal(again.status, 'ok');
    assert.equal(again.state_lost, false);
    assert.equal(again.result, String(40 << 20));
  });
});

describe('caps that cap', () => {
  const server = useServer({ args: ['--max-result', '64K'] });

  test('an exception with a 10 MB message is cut to the configured size, the session lives', opts, async () => {
    const r = await run(server.client, 'raise Exception("\\x01" * 10_000_000)');
    assert.equal(r.status, 'error');
    assert.equal(r.error.type, 'Exception');
    // 64K characters of at most 4 bytes each, plus the note saying so.
    assert.ok(Buffer.byteLength(r.error.message) <= 4 * 65536 + 100, `message of ${r.error.message.length}`);
    assert.ok(Buffer.byteLength(r.error.traceback) <= 4 * 65536 + 100);
    assert.match(r.error.message + r.error.traceback, /more bytes not shown/);
    const again = await run(server.client, '1 + 1', { session_id: r.session_id });
    assert.equal(again.result, '2');
    assert.equal(again.state_lost, false);
  });

  test('a _repr_markdown_ of 11 M characters is cut to --max-result in display() and as the result', opts, async () => {
    const r = await runFull(server.client, [
      'class M:',
      "    def _repr_markdown_(self): return 'x' * 11_000_000",
      'display(M())',
      'M()',
    ].join('\n'));
    const sc = r.structuredContent;
    assert.equal(sc.status, 'ok');
    const markdown = sc.display.filter((d) => d.mime === 'text/markdown');
    assert.ok(markdown.length >= 1);
    for (const d of markdown) {
      assert.ok(d.text.length <= 65536 + 100, `${d.text.length} characters`);
      assert.match(d.text, /more characters\]$/);
    }
    assert.ok(JSON.stringify(r).length < 2 << 20, 'the reply stays small');
  });

  test('list_files over 10,000 nested files is cut short and says so; the session lives', opts, async () => {
    const r = await run(
      server.client,
      "import os\nfor i in range(120):\n    d = f'd{i:03}/' + 'deep/' * 5\n    os.makedirs(d, exist_ok=True)\n"
        + "    for j in range(90):\n        open(d + f'f{j:03}-' + 'x' * 100, 'w').close()\n'made'",
      { timeout_s: 120 },
    );
    assert.equal(r.status, 'ok', JSON.stringify(r.error));
    const listing = await callTool(server.client, 'list_files', { session_id: r.session_id });
    assert.equal(listing.isError, undefined, JSON.stringify(listing.content).slice(0, 500));
    assert.ok(listing.structuredContent.files.length > 1000);
    assert.ok(listing.structuredContent.files.length <= 10000);
    assert.match(listing.content[0].text, /the listing stops here/);
    const again = await run(server.client, '2 + 2', { session_id: r.session_id });
    assert.equal(again.result, '4');
    assert.equal(again.state_lost, false);
  });
});

describe('artifacts are bounded on the host', () => {
  const server = useServer({ args: ['--max-artifacts-size', '4M'] });

  test('500,000 display() calls of a tiny PNG in one cell: bounded reply, bounded disk, others unharmed', opts, async () => {
    const bystander = await run(server.client, 'x = 41');
    const cell = [
      'import PIL.Image, io',
      'b = io.BytesIO(); PIL.Image.new("RGB", (2, 2)).save(b, "PNG"); png = b.getvalue()',
      'class P:',
      '    def _repr_png_(self): return png',
      'p = P()',
      'for _ in range(500_000): display(p)',
    ].join('\n');
    const r = await runFull(server.client, cell, { timeout_s: 120 });
    const sc = r.structuredContent;
    assert.equal(sc.status, 'ok', JSON.stringify(sc.error));
    assert.ok(sc.artifacts.length <= 256, `${sc.artifacts.length} artifacts`);
    assert.ok(sc.outputs_dropped >= 500_000 - 256, `${sc.outputs_dropped} dropped`);
    assert.match(sc.notice, /were dropped/);
    assert.ok(JSON.stringify(r).length < 8 << 20, 'the reply stays small');
    const after = await run(server.client, 'x + 1', { session_id: bystander.session_id });
    assert.equal(after.result, '42');
  });

  test('past the quota the oldest images are evicted, the reply says so, and disk use stays under it', opts, async () => {
    // Noise does not compress: each image is about 770 KB on disk.
    const code = 'import numpy as np, PIL.Image\n'
      + 'for i in range(6): PIL.Image.fromarray(np.random.randint(0, 255, (512, 512, 3), dtype=np.uint8)).show()';
    const first = await run(server.client, code, { timeout_s: 120 });
    const second = await run(server.client, code, { session_id: first.session_id, timeout_s: 120 });
    assert.equal(second.status, 'ok');
    assert.match(second.notice ?? '', /--max-artifacts-size/);
    const sessions = join(server.home, 'sessions');
    assert.ok(treeBytes(sessions) <= 4 << 20, `${treeBytes(sessions)} bytes under ${sessions}`);
    // The newest image is still readable; the first one is gone.
    const newest = second.artifacts.at(-1).uri;
    const read = await server.client.readResource({ uri: newest });
    assert.equal(read.contents[0].mimeType, 'image/png');
    await assert.rejects(server.client.readResource({ uri: first.artifacts[0].uri }), /evicted|not found/);
  });
});

describe('a host with a low open-file limit', () => {
  // kiln started with RLIMIT_NOFILE 100 (soft and hard): 64 files are
  // kept for the front itself, 4 per worker, 2 of them spares.
  let client;
  let stderr = '';
  let home;
  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'kiln-home-'));
    const transport = new StdioClientTransport({
      command: 'prlimit',
      args: ['--nofile=100:100', KILN_BIN, 'serve', '--spares', '2'],
      env: { ...process.env, KILN_HOME: home },
      stderr: 'pipe',
    });
    transport.stderr.on('data', (c) => { stderr += c; });
    client = new Client({ name: 'kiln-limits-test', version: '0' });
    await client.connect(transport);
  }, { timeout: HOOK_TIMEOUT });
  after(async () => {
    await client?.close();
    rmSync(home, { recursive: true, force: true });
  });

  test('start-up says how many sessions fit; past that a new session is refused clearly, and open ones keep working', opts, async () => {
    assert.match(stderr, /at most 7 sessions will be open at once/);
    const open = [];
    for (let i = 0; i < 7; i++) {
      const r = await run(client, `v = ${i}`);
      assert.equal(r.status, 'ok', JSON.stringify(r.error));
      open.push(r.session_id);
    }
    const refused = await runFull(client, 'v = 99');
    assert.equal(refused.isError, true);
    assert.match(refused.content[0].text, /open-file limit/);
    for (const [i, id] of open.entries()) {
      const r = await run(client, 'v', { session_id: id });
      assert.equal(r.result, String(i));
    }
  });
});

describe('a full disk', { skip: process.getuid() === 0 ? false : 'needs root to mount a small tmpfs as KILN_HOME' }, () => {
  let server;
  let home;
  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'kiln-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2M', 'tmpfs', home]);
    server = await startServer({ env: { KILN_HOME: home } });
  }, { timeout: HOOK_TIMEOUT });
  after(async () => {
    await server?.close();
    execFileSync('umount', ['-l', home]);
    rmSync(home, { recursive: true, force: true });
  });

  test('an image that cannot be stored is said in the reply and leaves no partial file', opts, async () => {
    // Noise does not compress: about 3 MB of PNG, on a 2 MB disk.
    const r = await run(server.client, 'import numpy as np, PIL.Image\n'
      + 'PIL.Image.fromarray(np.random.randint(0, 255, (1000, 1000, 3), dtype=np.uint8)).show()', { timeout_s: 60 });
    assert.equal(r.status, 'ok', JSON.stringify(r.error));
    assert.equal(r.artifacts.length, 0);
    assert.match(r.notice ?? '', /could not be stored \(No space left on device\)/);
    const leftovers = readdirSync(join(home, 'sessions', r.session_id, 'artifacts'));
    assert.deepEqual(leftovers, []);
  });
});
