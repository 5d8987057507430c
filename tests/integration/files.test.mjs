// The session's files: reported when a cell writes them, readable, and
// uploadable; no path a client or a cell plants leads outside /work or
// hangs the server.

import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, runFull, callTool, dump, TEST_TIMEOUT, HOOK_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('session files', () => {
  const kiln = useServer();
  let sid;

  before(async () => {
    sid = (await run(kiln.client, 'x = 1')).session_id;
  }, { timeout: HOOK_TIMEOUT });

  test('a file written by a cell is reported as a resource link and can be read back', opts, async () => {
    const result = await runFull(kiln.client, 'import os\nos.makedirs("out", exist_ok=True)\nopen("out/report.txt", "w").write("héllo\\n")', { session_id: sid });
    const link = result.content.find((c) => c.type === 'resource_link' && c.name === 'out/report.txt');
    assert.ok(link, dump(result));
    assert.equal(link.uri, `kiln://sessions/${sid}/files/out/report.txt`);
    assert.deepEqual(result.structuredContent.files.map((f) => f.path), ['out/report.txt']);
    const read = await callTool(kiln.client, 'read_file', { session_id: sid, path: 'out/report.txt' });
    assert.ok(!read.isError, dump(read));
    assert.equal(read.content[0].text, 'héllo\n');
    const res = await kiln.client.readResource({ uri: link.uri });
    assert.equal(res.contents[0].text, 'héllo\n');
    // Unchanged files are not reported again.
    const again = await run(kiln.client, 'y = 2', { session_id: sid });
    assert.deepEqual(again.files, []);
  });

  test('upload then read round-trips bytes exactly, text and binary', opts, async () => {
    const bytes = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 37) % 256));
    const up = await callTool(kiln.client, 'upload_file', { session_id: sid, path: 'data/blob.bin', content: bytes.toString('base64'), encoding: 'base64' });
    assert.ok(!up.isError, dump(up));
    const check = await run(kiln.client, 'import hashlib\nhashlib.sha256(open("data/blob.bin", "rb").read()).hexdigest()', { session_id: sid });
    const { createHash } = await import('node:crypto');
    assert.equal(check.result, `'${createHash('sha256').update(bytes).digest('hex')}'`);
    const read = await callTool(kiln.client, 'read_file', { session_id: sid, path: 'data/blob.bin' });
    assert.equal(read.content[0].type, 'resource', dump(read));
    assert.ok(Buffer.from(read.content[0].resource.blob, 'base64').equals(bytes));
    await callTool(kiln.client, 'upload_file', { session_id: sid, path: 'notes.md', content: '# title\n' });
    const text = await callTool(kiln.client, 'read_file', { session_id: sid, path: 'notes.md' });
    assert.equal(text.content[0].text, '# title\n');
  });

  test('list_files lists files with sizes and times', opts, async () => {
    const list = await callTool(kiln.client, 'list_files', { session_id: sid });
    const byPath = new Map(list.structuredContent.files.map((f) => [f.path, f]));
    assert.equal(byPath.get('data/blob.bin')?.size, 3000, dump(list));
    assert.equal(byPath.get('data')?.type, 'directory');
    assert.match(byPath.get('notes.md')?.modified ?? '', /^\d{4}-\d\d-\d\dT/);
  });

  test('an image file is read back as image content', opts, async () => {
    await run(kiln.client, 'from PIL import Image\nImage.new("RGB", (5, 4), "red").save("pic.png")', { session_id: sid });
    const read = await callTool(kiln.client, 'read_file', { session_id: sid, path: 'pic.png' });
    assert.equal(read.content[0].type, 'image', dump(read));
    assert.equal(read.content[0].mimeType, 'image/png');
  });

  test('a file that only looks like a PNG is not sent as an image', opts, async () => {
    await run(kiln.client, 'open("fake.png", "wb").write(b"\\x89PNG\\r\\n\\x1a\\n" + b"\\x00" * 40)', { session_id: sid });
    const read = await callTool(kiln.client, 'read_file', { session_id: sid, path: 'fake.png' });
    assert.equal(read.content[0].type, 'resource', dump(read));
  });

  for (const [what, path] of [
    ['..', '../etc/passwd'],
    ['an absolute path', '/etc/passwd'],
    ['a NUL byte', 'a\u0000b'],
    ['an empty component', 'a//b'],
  ]) {
    test(`a path with ${what} is refused by every file tool`, opts, async () => {
      for (const [tool, args] of [
        ['read_file', { path }],
        ['upload_file', { path, content: 'x' }],
        ['list_files', { path }],
      ]) {
        const r = await callTool(kiln.client, tool, { session_id: sid, ...args });
        assert.equal(r.isError, true, `${tool}: ${dump(r)}`);
        assert.match(r.content[0].text, /not a path under \/work/);
      }
    });
  }

  test('symlinks, FIFOs, devices and sparse giant files planted by a cell are refused without hanging', opts, async () => {
    const planted = await run(
      kiln.client,
      [
        'import os',
        'os.symlink("/etc/passwd", "link")',
        'os.symlink("/proc/self/environ", "magic")',
        'os.mkfifo("fifo")',
        'os.symlink("/dev/zero", "dev")',
        'os.makedirs("d", exist_ok=True)',
        'os.symlink("/etc", "d/up")',
        'with open("sparse", "wb") as f: f.truncate(300 << 20)',
        'os.link("notes.md", "hard")',
        '"planted"',
      ].join('\n'),
      { session_id: sid },
    );
    assert.equal(planted.result, "'planted'", dump(planted));
    for (const path of ['link', 'magic', 'fifo', 'dev', 'd/up/passwd', 'sparse']) {
      const r = await callTool(kiln.client, 'read_file', { session_id: sid, path });
      assert.equal(r.isError, true, `${path}: ${dump(r)}`);
    }
    const w = await callTool(kiln.client, 'upload_file', { session_id: sid, path: 'link', content: 'overwrite?' });
    assert.equal(w.isError, true, dump(w));
    // A hard link inside /work is just another name for a /work file.
    const hard = await callTool(kiln.client, 'read_file', { session_id: sid, path: 'hard' });
    assert.equal(hard.content[0].text, '# title\n');
    const alive = await run(kiln.client, '1+1');
    assert.equal(alive.result, '2');
  });

  test('file tools on an unknown session are refused', opts, async () => {
    const r = await callTool(kiln.client, 'read_file', { session_id: 'nope', path: 'a' });
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /unknown session/);
  });
});
