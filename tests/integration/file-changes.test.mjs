// Which files a cell created or changed under /work: each reported once,
// in structuredContent.files of the cell that touched it, however it was
// written (Python, a raw fd, a subprocess), wherever (new directories,
// renamed ones), and still when the worker's inotify watcher loses track
// (its queue overflows, the cell closes its fd, too many directories).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('changed files', () => {
  const kiln = useServer();

  /** A fresh session (its own worker and /work); returns a function that
   *  runs a cell in it, checks it succeeded and returns its structuredContent. */
  async function session() {
    const first = await run(kiln.client, 'import os, subprocess');
    assert.equal(first.status, 'ok', dump(first));
    return async (code) => {
      const sc = await run(kiln.client, code, { session_id: first.session_id });
      assert.equal(sc.status, 'ok', dump(sc));
      return sc;
    };
  }

  /** The reported paths, in the order reported (duplicates kept). */
  const paths = (sc) => sc.files.map((f) => f.path);

  test('a file created by Python is reported once, then not again, and an unchanged one never', opts, async () => {
    const cell = await session();
    let sc = await cell('open("py.txt", "w").write("hello")');
    assert.deepEqual(sc.files.map((f) => [f.path, f.size]), [['py.txt', 5]], dump(sc));
    sc = await cell('open("other.txt", "w").write("x")');
    assert.deepEqual(paths(sc), ['other.txt'], dump(sc));
    sc = await cell('open("py.txt").read()');
    assert.deepEqual(paths(sc), [], dump(sc));
  });

  test('a file written with os.write on a raw fd is reported, even while the fd stays open', opts, async () => {
    const cell = await session();
    let sc = await cell('fd = os.open("raw.bin", os.O_WRONLY | os.O_CREAT, 0o644)\nos.write(fd, b"12345678")');
    assert.deepEqual(sc.files.map((f) => [f.path, f.size]), [['raw.bin', 8]], dump(sc));
    sc = await cell('x = 1');
    assert.deepEqual(paths(sc), [], dump(sc));
    sc = await cell('os.write(fd, b"abcd")');
    assert.deepEqual(sc.files.map((f) => [f.path, f.size]), [['raw.bin', 12]], dump(sc));
    sc = await cell('os.close(fd)');
    // Closing after writing is itself a change event; what matters is
    // that a cell that does nothing to the file does not report it.
    sc = await cell('x = 2');
    assert.deepEqual(paths(sc), [], dump(sc));
  });

  test('a file written by a subprocess is reported, created or rewritten', opts, async () => {
    const cell = await session();
    let sc = await cell('subprocess.run(["sh", "-c", "echo hi > sub.txt"], check=True).returncode');
    assert.deepEqual(sc.files.map((f) => [f.path, f.size]), [['sub.txt', 3]], dump(sc));
    sc = await cell('x = 1');
    assert.deepEqual(paths(sc), [], dump(sc));
    sc = await cell('subprocess.run(["sh", "-c", "echo yo > sub.txt"], check=True).returncode');
    assert.deepEqual(sc.files.map((f) => [f.path, f.size]), [['sub.txt', 3]], dump(sc));
    sc = await cell('open("sub.txt").read()');
    assert.equal(sc.result, "'yo\\n'", dump(sc));
    assert.deepEqual(paths(sc), [], dump(sc));
  });

  test('files in a directory tree the cell creates are reported, and later files in it too', opts, async () => {
    const cell = await session();
    let sc = await cell('os.makedirs("a/b/c")\nopen("a/top.txt", "w").write("1")\nopen("a/b/c/deep.txt", "w").write("22")');
    assert.deepEqual(paths(sc), ['a/b/c/deep.txt', 'a/top.txt'], dump(sc));
    sc = await cell('x = 1');
    assert.deepEqual(paths(sc), [], dump(sc));
    // The new directories are watched from the end of the cell that made them.
    sc = await cell('open("a/b/c/later.txt", "w").write("333")\nos.mkdir("a/b/c/d")');
    assert.deepEqual(paths(sc), ['a/b/c/later.txt'], dump(sc));
    sc = await cell('subprocess.run(["sh", "-c", "echo x > a/b/c/d/sh.txt"], check=True).returncode');
    assert.deepEqual(paths(sc), ['a/b/c/d/sh.txt'], dump(sc));
    sc = await cell('x = 2');
    assert.deepEqual(paths(sc), [], dump(sc));
  });

  test('a renamed directory reports its files under the new name, and later writes there too', opts, async () => {
    const cell = await session();
    let sc = await cell('os.makedirs("old/sub")\nopen("old/sub/f.txt", "w").write("f")');
    assert.deepEqual(paths(sc), ['old/sub/f.txt'], dump(sc));
    sc = await cell('os.rename("old", "new")');
    assert.deepEqual(paths(sc), ['new/sub/f.txt'], dump(sc));
    sc = await cell('open("new/sub/g.txt", "w").write("g")');
    assert.deepEqual(paths(sc), ['new/sub/g.txt'], dump(sc));
  });

  test('a directory that could not be read when made reports its files once it can be', opts, async () => {
    const cell = await session();
    let sc = await cell('os.mkdir("locked", 0o300)\nopen("locked/f.txt", "w").write("f")');
    assert.deepEqual(paths(sc), [], dump(sc));
    sc = await cell('os.chmod("locked", 0o755)');
    assert.deepEqual(paths(sc), ['locked/f.txt'], dump(sc));
    sc = await cell('open("locked/g.txt", "w").write("g")');
    assert.deepEqual(paths(sc), ['locked/g.txt'], dump(sc));
  });

  test('a file rewritten to the same size is reported, even with its modification time put back', opts, async () => {
    const cell = await session();
    let sc = await cell('open("same.txt", "w").write("aaaa")');
    assert.deepEqual(paths(sc), ['same.txt'], dump(sc));
    sc = await cell('open("same.txt", "w").write("bbbb")\nst = os.stat("same.txt")');
    assert.deepEqual(sc.files.map((f) => [f.path, f.size]), [['same.txt', 4]], dump(sc));
    sc = await cell('open("same.txt", "r+").write("cccc")\nos.utime("same.txt", ns=(st.st_atime_ns, st.st_mtime_ns))');
    assert.deepEqual(paths(sc), ['same.txt'], dump(sc));
    sc = await cell('open("same.txt").read()');
    assert.equal(sc.result, "'cccc'");
    assert.deepEqual(paths(sc), [], dump(sc));
  });

  test('a file created and deleted within a cell, or deleted, is not reported', opts, async () => {
    const cell = await session();
    let sc = await cell('open("gone.txt", "w").write("x")\nos.remove("gone.txt")\nopen("kept.txt", "w").write("k")');
    assert.deepEqual(paths(sc), ['kept.txt'], dump(sc));
    sc = await cell('os.remove("kept.txt")');
    assert.deepEqual(paths(sc), [], dump(sc));
  });

  test('when the event queue overflows, every file the cell wrote is still reported, once', opts, async () => {
    const cell = await session();
    // Alternating writes to two files never coalesce: one event each.
    // More of them than the queue holds, then files made after the
    // overflow, whose events are lost.
    const code = [
      'limit = int(open("/proc/sys/fs/inotify/max_queued_events").read())',
      'assert limit <= 1 << 20, limit',
      'a = os.open("noise-a", os.O_WRONLY | os.O_CREAT)',
      'b = os.open("noise-b", os.O_WRONLY | os.O_CREAT)',
      'for i in range(limit // 2 + 16):',
      '    os.write(a, b"a")',
      '    os.write(b, b"b")',
      'os.close(a)',
      'os.close(b)',
      'os.mkdir("late")',
      'for i in range(50):',
      '    open(f"late/{i:02d}.txt", "w").write("late")',
      'open("late.txt", "w").write("late")',
    ].join('\n');
    let sc = await cell(code);
    const expected = ['late.txt', ...Array.from({ length: 50 }, (_, i) => `late/${String(i).padStart(2, '0')}.txt`), 'noise-a', 'noise-b'];
    assert.deepEqual([...paths(sc)].sort(), [...expected].sort(), dump(paths(sc)));
    sc = await cell('x = 1');
    assert.deepEqual(paths(sc), [], dump(sc));
    // Watching resumes after the overflow.
    sc = await cell('open("late/after.txt", "w").write("a")');
    assert.deepEqual(paths(sc), ['late/after.txt'], dump(sc));
  });

  test('a cell that closes or replaces the watcher\'s fd still gets its files reported, and its own fd is left alone', opts, async () => {
    const cell = await session();
    const find = 'def inotify_fds():\n'
      + '    return [int(n) for n in os.listdir("/proc/self/fd") if n.isdigit() and os.path.exists(f"/proc/self/fd/{n}") and os.readlink(f"/proc/self/fd/{n}") == "anon_inode:inotify"]\n'
      + 'fds = inotify_fds()\n'
      + 'assert len(fds) == 1, fds\n'
      + 'fds[0] > 2';
    let sc = await cell(find);
    assert.equal(sc.result, 'True', dump(sc));
    sc = await cell('os.close(fds[0])\nopen("after-close.txt", "w").write("c")');
    assert.deepEqual(paths(sc), ['after-close.txt'], dump(sc));
    sc = await cell('open("next.txt", "w").write("n")');
    assert.deepEqual(paths(sc), ['next.txt'], dump(sc));
    // A file of the cell's own put at the watcher's fd number: never read.
    sc = await cell('fds = inotify_fds()\nassert len(fds) == 1, fds\n'
      + 'open("mine.txt", "w").write("x" * 100)\n'
      + 'f = os.open("mine.txt", os.O_RDONLY)\nos.dup2(f, fds[0])\nos.close(f)');
    assert.deepEqual(paths(sc), ['mine.txt'], dump(sc));
    sc = await cell('open("third.txt", "w").write("t")\n'
      + 'import stat\n(stat.S_ISREG(os.fstat(fds[0]).st_mode), os.lseek(fds[0], 0, os.SEEK_CUR), os.read(fds[0], 3))');
    assert.equal(sc.result, "(True, 0, b'xxx')", dump(sc));
    assert.deepEqual(paths(sc), ['third.txt'], dump(sc));
    sc = await cell('x = 1');
    assert.deepEqual(paths(sc), [], dump(sc));
  });

  test('with more directories than it watches, changed files are found by scanning, said once on stderr', opts, async () => {
    const cell = await session();
    let sc = await cell('for i in range(10001):\n    os.mkdir(f"d{i}")\nopen("d7/x.txt", "w").write("x")');
    assert.deepEqual(paths(sc), ['d7/x.txt'], dump(paths(sc)));
    assert.match(sc.stderr, /^kiln: changed files in \/work are found by scanning it after each cell from now on.*directories/, dump(sc));
    sc = await cell('open("d9999/y.txt", "w").write("yy")');
    assert.deepEqual(paths(sc), ['d9999/y.txt'], dump(sc));
    assert.equal(sc.stderr, '', dump(sc));
    sc = await cell('x = 1');
    assert.deepEqual(paths(sc), [], dump(sc));
  });
});
