// The session's files: reported when a cell writes them, readable, and
// uploadable.  Paths and planted objects that try to lead outside /work are
// the security battery's (tests/security/file-tools.test.mjs).

import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, runFull, callTool, resultText, dump, TEST_TIMEOUT, HOOK_TIMEOUT } from './helpers.mjs';

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

  test('a hard link a cell makes inside /work reads as the file it names', opts, async () => {
    const linked = await run(kiln.client, 'import os\nos.link("notes.md", "hard")', { session_id: sid });
    assert.equal(linked.status, 'ok', dump(linked));
    const hard = await callTool(kiln.client, 'read_file', { session_id: sid, path: 'hard' });
    assert.equal(hard.content[0].text, '# title\n', dump(hard));
  });

  test('upload_file without a session_id uploads into a new session and gives its id', opts, async () => {
    const before = (await callTool(kiln.client, 'list_sessions', {})).structuredContent.sessions.length;
    const up = await callTool(kiln.client, 'upload_file', { path: 'in/data.csv', content: 'a,b\n1,2\n' });
    assert.ok(!up.isError, dump(up));
    const sc = up.structuredContent;
    assert.match(sc.session_id, /^[0-9a-f]{16}$/, dump(up));
    assert.notEqual(sc.session_id, sid);
    assert.equal(sc.new_session, true, dump(up));
    assert.equal(sc.uri, `kiln://sessions/${sc.session_id}/files/in/data.csv`);
    assert.ok(up.content[0].text.includes(sc.session_id), dump(up));
    const sessions = (await callTool(kiln.client, 'list_sessions', {})).structuredContent.sessions;
    assert.equal(sessions.length, before + 1, dump(sessions));
    // The file is in the new session, for its cells to use.
    const used = await run(kiln.client, 'open("in/data.csv").read().splitlines()[1]', { session_id: sc.session_id });
    assert.equal(used.result, "'1,2'", dump(used));
    assert.equal(used.new_session, false, dump(used));
    // An upload into that session is not a new one.
    const again = await callTool(kiln.client, 'upload_file', { session_id: sc.session_id, path: 'x.txt', content: 'x' });
    assert.equal(again.structuredContent.new_session, false, dump(again));
    assert.equal(again.content[0].text, 'Wrote /work/x.txt.');
    await callTool(kiln.client, 'close_session', { session_id: sc.session_id });
  });

  test('an upload without a session_id that is refused makes no session', opts, async () => {
    const before = (await callTool(kiln.client, 'list_sessions', {})).structuredContent.sessions.length;
    const up = await callTool(kiln.client, 'upload_file', { path: '../escape.txt', content: 'x' });
    assert.equal(up.isError, true, dump(up));
    assert.match(resultText(up), /not a path under \/work/);
    const after = (await callTool(kiln.client, 'list_sessions', {})).structuredContent.sessions.length;
    assert.equal(after, before);
  });

  test('list_files and read_file still need a session_id', opts, async () => {
    for (const [name, args] of [['list_files', {}], ['read_file', { path: 'a' }]]) {
      const r = await callTool(kiln.client, name, args);
      assert.equal(r.isError, true, dump(r));
      assert.match(resultText(r), /session_id/, dump(r));
    }
  });

  test('file tools on an unknown session are refused', opts, async () => {
    const r = await callTool(kiln.client, 'read_file', { session_id: 'nope', path: 'a' });
    assert.equal(r.isError, true, dump(r));
    assert.equal(resultText(r), "unknown session 'nope'");
  });
});
