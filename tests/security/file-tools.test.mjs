// The security battery, file tools: paths a client sends to upload_file,
// read_file, list_files and resources/read, and objects a cell plants in
// /work for them, never lead outside the session's /work.  Each attack
// asserts the exact error and then that a bystander session is unharmed.
//
// The front refuses a path that is not plainly relative; the worker's file
// service opens the rest with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
// | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) from inside the jail.  A hard
// link is the jail's to stop (/work is a file system of its own): that
// attack is in attacks.test.mjs.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, useBystander, run, callTool, resultText, dump, TEST_TIMEOUT } from '../integration/helpers.mjs';
import { unjailed, modeName } from './mode.mjs';

const opts = { timeout: TEST_TIMEOUT };

// Without the jail kiln's file service works on the host's /work, not on
// the session's, and these defences do not depend on the jail anyway.
const skip = unjailed && 'the file tools are attacked with the jail only: without it they serve the host\'s /work';

describe(`the file tools (${modeName})`, { skip }, () => {
  const kiln = useServer();
  const bystander = useBystander(kiln);

  /** A new session whose first cell ran CODE (which must return 'planted'); resolves with its id. */
  async function plant(code) {
    const sc = await run(kiln.client, `import os\n${code}\n'planted'`);
    assert.equal(sc.result, "'planted'", dump(sc));
    return sc.session_id;
  }

  /** Asserts that TOOL(ARGS) on SESSION_ID fails with exactly MESSAGE. */
  async function refused(sessionId, tool, args, message) {
    const r = await callTool(kiln.client, tool, { session_id: sessionId, ...args });
    assert.equal(r.isError, true, `${tool}: ${dump(r)}`);
    assert.equal(resultText(r), message, `${tool} ${JSON.stringify(args.path)}`);
  }

  /** Asserts that resources/read of URI fails with resource-not-found (-32002) and exactly MESSAGE. */
  async function unreadable(uri, message) {
    await assert.rejects(kiln.client.readResource({ uri }), { code: -32002, message: `MCP error -32002: ${message}` });
  }

  const fileUri = (sessionId, path) => `kiln://sessions/${sessionId}/files/${path}`;

  const notPlain = (path) => `'${path}' is not a path under /work: use a relative path without '..', '.' or empty parts`;

  for (const [what, path] of [
    ['..', '../etc/passwd'],
    ['.. after a name', 'd/../../etc/passwd'],
    ['an absolute path', '/etc/passwd'],
    ['an empty component', 'd//passwd'],
    ['a . component', './notes.md'],
  ]) {
    test(`a path with ${what} is refused by every file tool and by resources/read`, opts, async () => {
      const sid = await plant('os.makedirs("d")\nopen("notes.md", "w").write("notes")');
      await refused(sid, 'read_file', { path }, notPlain(path));
      await refused(sid, 'upload_file', { path, content: 'x' }, notPlain(path));
      await refused(sid, 'list_files', { path }, notPlain(path));
      await unreadable(fileUri(sid, path), notPlain(path));
      await bystander.unharmed();
    });
  }

  // The front prints the path up to the NUL, as C does.
  const withNul = 'notes.md\u0000/../../etc/passwd';
  test('a path with a NUL byte is refused by every file tool', opts, async () => {
    const sid = await plant('open("notes.md", "w").write("notes")');
    // The whole path is shown, its NUL as '?'.
    const shown = withNul.replace('\0', '?');
    await refused(sid, 'read_file', { path: withNul }, notPlain(shown));
    await refused(sid, 'upload_file', { path: withNul, content: 'x' }, notPlain(shown));
    await refused(sid, 'list_files', { path: withNul }, notPlain(shown));
    await bystander.unharmed();
  });
  test('resources/read refuses a file URI with a NUL byte', opts, async () => {
    const sid = await plant('open("notes.md", "w").write("notes")');
    // A raw NUL is not a URI character: refused before the path is looked at.
    const uri = fileUri(sid, withNul);
    await unreadable(uri, `resource not found: ${uri.replace('\0', '?')} (byte 0x00 must be percent-encoded in a kiln URI (%00))`);
    await bystander.unharmed();
  });

  for (const [what, target] of [
    ['a file outside /work', '/etc/passwd'],
    ['a magic link', '/proc/self/environ'],
    ['a device', '/dev/zero'],
  ]) {
    test(`a symlink planted by a cell to ${what} is followed by no file tool`, opts, async () => {
      const sid = await plant(`os.symlink(${JSON.stringify(target)}, "link")`);
      const loop = 'Too many levels of symbolic links';
      await refused(sid, 'read_file', { path: 'link' }, `cannot open 'link': ${loop}`);
      await refused(sid, 'upload_file', { path: 'link', content: 'overwritten' }, `cannot write 'link': ${loop}`);
      await refused(sid, 'list_files', { path: 'link' }, "cannot list 'link': Not a directory");
      await unreadable(fileUri(sid, 'link'), `cannot open 'link': ${loop}`);
      const after = await run(kiln.client, 'os.readlink("link")', { session_id: sid });
      assert.equal(after.result, `'${target}'`, dump(after));
      await bystander.unharmed();
    });
  }

  test('a symlinked directory planted by a cell leads no file tool out of /work', opts, async () => {
    const sid = await plant('os.symlink("/etc", "up")\nos.makedirs("d")\nos.symlink("/etc", "d/up")');
    for (const dir of ['up', 'd/up']) {
      await refused(sid, 'read_file', { path: `${dir}/passwd` }, `cannot open '${dir}/passwd': Too many levels of symbolic links`);
      await refused(sid, 'upload_file', { path: `${dir}/planted`, content: 'x' },
        `cannot create the directories of '${dir}/planted': Not a directory`);
      await refused(sid, 'list_files', { path: dir }, `cannot list '${dir}': Not a directory`);
      await unreadable(fileUri(sid, `${dir}/passwd`), `cannot open '${dir}/passwd': Too many levels of symbolic links`);
    }
    await bystander.unharmed();
  });

  test('a FIFO planted by a cell is neither read nor written, and nothing waits on it', opts, async () => {
    const sid = await plant('os.mkfifo("fifo")');
    await refused(sid, 'read_file', { path: 'fifo' }, "not a regular file 'fifo': Invalid argument");
    await refused(sid, 'upload_file', { path: 'fifo', content: 'x' }, "cannot write 'fifo': No such device or address");
    await refused(sid, 'list_files', { path: 'fifo' }, "cannot list 'fifo': Not a directory");
    await unreadable(fileUri(sid, 'fifo'), "not a regular file 'fifo': Invalid argument");
    await bystander.unharmed();
  });

  test('a sparse file larger than the read limit is refused by its size, not read', opts, async () => {
    const sid = await plant('with open("sparse", "wb") as f: f.truncate(300 << 20)');
    const message = "'sparse' is 314572800 bytes, over the 8388608-byte limit for reading";
    await refused(sid, 'read_file', { path: 'sparse' }, message);
    await unreadable(fileUri(sid, 'sparse'), message);
    await bystander.unharmed();
  });

  test('resources/read of an artifact URI with .. or of another scheme finds nothing', opts, async () => {
    const sid = await plant('pass');
    for (const uri of [
      `kiln://sessions/${sid}/artifacts/../../etc/passwd`,
      `kiln://sessions/${sid}/artifacts/..%2f..%2fetc%2fpasswd`,
      'kiln://sessions/../etc/passwd',
      'file:///etc/passwd',
    ]) {
      await unreadable(uri, `resource not found: ${uri}`);
    }
    await bystander.unharmed();
  });
});
