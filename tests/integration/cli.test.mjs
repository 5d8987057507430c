// The command line: `kiln run FILE.py`, --help and --version.

import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync,
  symlinkSync, writeFileSync,
} from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';

import { KILN_BIN, TEST_TIMEOUT, withServer, run, dump, pollUntil } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };
const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
const env = { ...process.env, KILN_HOME: join(dir, 'home') };

function kilnRun(source, args = []) {
  const file = join(dir, `script-${Math.random().toString(36).slice(2)}.py`);
  writeFileSync(file, source);
  return spawnSync(KILN_BIN, ['run', ...args, file], { env, encoding: 'utf8', timeout: 50_000 });
}

after(() => rmSync(dir, { recursive: true, force: true }));

describe('kiln run', () => {
  test('prints the script output and exits 0 on success', opts, () => {
    const r = kilnRun('import sys\nprint("to stdout")\nprint("to stderr", file=sys.stderr)\n');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'to stdout\n');
    assert.match(r.stderr, /to stderr/);
  });

  test('prints the traceback with the failing line and exits 1 on an exception', opts, () => {
    const r = kilnRun('def f():\n    raise ValueError("bad value")\nf()\n');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /raise ValueError\("bad value"\)/);
    assert.match(r.stderr, /ValueError: bad value/);
  });

  test('exits with the code given to sys.exit()', opts, () => {
    assert.equal(kilnRun('import sys\nsys.exit(7)\n').status, 7);
    assert.equal(kilnRun('import sys\nsys.exit()\n').status, 0);
  });

  test('exits 124 when the script is interrupted at its deadline', opts, () => {
    const r = kilnRun('import time\nwhile True: time.sleep(0.05)\n', ['--timeout', '1']);
    assert.equal(r.status, 124, r.stderr);
    assert.match(r.stderr, /KeyboardInterrupt/);
  });

  test('exits 70 when the worker crashes', opts, () => {
    const r = kilnRun('import os\nos._exit(5)\n');
    assert.equal(r.status, 70, r.stderr);
    assert.match(r.stderr, /exited with code 5/);
  });

  test('creates its default home directory, parents included, when none exists', opts, () => {
    const home = join(dir, 'fresh-user', 'nested');
    const file = join(dir, 'hello.py');
    writeFileSync(file, 'print("hello")\n');
    const { KILN_HOME, XDG_DATA_HOME, ...rest } = process.env;
    const r = spawnSync(KILN_BIN, ['run', file], { env: { ...rest, HOME: home }, encoding: 'utf8', timeout: 50_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'hello\n');
    assert.ok(existsSync(join(home, '.local', 'share', 'kiln', 'sessions')));
  });

  test('refuses a missing file with a clear message', opts, () => {
    const r = spawnSync(KILN_BIN, ['run', join(dir, 'missing.py')], { env, encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /missing\.py/);
  });
});

/** Every path under DIR (relative, sorted), or [] when DIR does not exist. */
function tree(root) {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true }).map(String).sort();
}

function kiln(args, options = {}) {
  return spawnSync(KILN_BIN, args, { env, encoding: 'utf8', timeout: 50_000, ...options });
}

function script(source) {
  const file = join(dir, `script-${Math.random().toString(36).slice(2)}.py`);
  writeFileSync(file, source);
  return file;
}

/** A fresh directory under the test's own, with FILES ({path: content}) in it. */
function workdir(files = {}) {
  const d = mkdtempSync(join(dir, 'wd-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(d, path)), { recursive: true });
    writeFileSync(join(d, path), content);
  }
  return d;
}

const printArgv = 'import sys, json\nprint(json.dumps(sys.argv))\n';

describe('kiln run: the script, its arguments and standard input', () => {
  test('passes the arguments after the script as sys.argv, options among them', opts, () => {
    const file = script(printArgv);
    const r = kiln(['run', '--timeout', '20', file, 'one', '--timeout', '5', '-x', 'é', '--help', '']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [file, 'one', '--timeout', '5', '-x', 'é', '--help', '']);
  });

  test('sys.argv[0] is the script as it was named, relative names too', opts, () => {
    const file = script(printArgv);
    const r = kiln(['run', basename(file)], { cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [basename(file)]);
  });

  test('reads the script from standard input with -, and sys.argv[0] is -', opts, () => {
    const r = kiln(['run', '-', 'a', 'b c'], { input: printArgv + 'print("from stdin")\n' });
    assert.equal(r.status, 0, r.stderr);
    const [argv, last] = r.stdout.trim().split('\n');
    assert.deepEqual(JSON.parse(argv), ['-', 'a', 'b c']);
    assert.equal(last, 'from stdin');
  });

  test('a script on standard input larger than --max-code is refused', opts, () => {
    const r = kiln(['run', '--max-code', '1K', '-'], { input: `x = 1\n${'#'.repeat(2000)}\n` });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /standard input is larger than 1024 bytes \(--max-code\)/);
  });

  test('a script that cannot be read exits 2 and leaves nothing in KILN_HOME', opts, () => {
    const home = join(dir, 'untouched-home');
    const clean = { ...env, KILN_HOME: home };
    const cases = [
      ['run', join(dir, 'missing.py')],
      ['run', dir],
      ['run', '--workdir', join(dir, 'no-such-dir'), script('print(1)\n')],
    ];
    // A KILN_HOME that does not exist is not made...
    for (const args of cases) {
      const r = kiln(args, { env: clean });
      assert.equal(r.status, 2, `${args}: ${r.stderr}`);
      assert.match(r.stderr, /^kiln run: .*(missing\.py: No such file|is a directory|no-such-dir: No such file)/m);
      assert.equal(existsSync(home), false, `${args} made ${home}`);
    }
    // ...and one in use gets nothing new: no session directory, no artifacts.
    assert.equal(kiln(['run', script('print(1)\n')], { env: clean }).status, 0);
    const before = tree(home);
    assert.ok(before.includes('sessions'), before.join(' '));
    for (const args of cases) {
      assert.equal(kiln(args, { env: clean }).status, 2);
      assert.deepEqual(tree(home), before, `${args}`);
    }
  });
});

describe('kiln run --workdir and --keep', () => {
  const listWork = 'import os\nfor root, dirs, files in sorted(os.walk(".")):\n'
    + '    for n in sorted(dirs + files): print(os.path.join(root, n)[2:])\n';

  test('copies the directory into /work, recursively, before the script runs', opts, () => {
    const d = workdir({ 'data.csv': 'a,b\n1,2\n', 'nested/deeper/notes.txt': 'deep\n' });
    mkdirSync(join(d, 'empty'));
    const r = kiln(['run', '--workdir', d, script(`${listWork}print(open("nested/deeper/notes.txt").read(), end="")\n`)]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    for (const p of ['data.csv', 'empty', 'nested', 'nested/deeper', 'nested/deeper/notes.txt']) {
      assert.ok(lines.includes(p), `${p} is not in /work: ${r.stdout}`);
    }
    assert.equal(lines.at(-1), 'deep');
  });

  test('skips symlinks and special files with a warning that names each', opts, () => {
    const secret = join(dir, 'secret.txt');
    writeFileSync(secret, 'host secret\n');
    const d = workdir({ 'real.txt': 'real\n' });
    symlinkSync(secret, join(d, 'link-to-secret'));
    symlinkSync(dir, join(d, 'link-to-dir'));
    spawnSync('mkfifo', [join(d, 'pipe')]);
    const r = kiln(['run', '--workdir', d, script('import os\nprint(sorted(os.listdir(".")))\n')]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.includes("'real.txt'"), r.stdout);
    for (const name of ['link-to-secret', 'link-to-dir', 'pipe']) assert.ok(!r.stdout.includes(name), r.stdout);
    assert.match(r.stderr, /skipping .*link-to-secret: it is a symlink/);
    assert.match(r.stderr, /skipping .*link-to-dir: it is a symlink/);
    assert.match(r.stderr, /skipping .*pipe: it is a named pipe/);
  });

  test('files larger than one request go in and come back whole', opts, () => {
    const blob = randomBytes(9 * 1024 * 1024 + 17);
    const d = workdir({ 'blob.bin': blob });
    const r = kiln(['run', '--workdir', d, '--keep', script(
      'import hashlib\nd = open("blob.bin", "rb").read()\nprint(len(d), hashlib.sha256(d).hexdigest())\n'
      + 'open("reversed.bin", "wb").write(d[::-1])\n')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${blob.length} ${createHash('sha256').update(blob).digest('hex')}\n`);
    assert.ok(readFileSync(join(d, 'reversed.bin')).equals(Buffer.from(blob).reverse()));
  });

  test('a directory larger than --work-size is refused before a session is made', opts, () => {
    const home = join(dir, 'work-size-home');
    const d = workdir({ 'a.bin': randomBytes(700 * 1024), 'b/c.bin': randomBytes(700 * 1024) });
    const r = kiln(['run', '--work-size', '1M', '--workdir', d, script('print(1)\n')], { env: { ...env, KILN_HOME: home } });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /more than 1048576 bytes, the size of the session's \/work \(--work-size\)/);
    assert.equal(existsSync(home), false);
  });

  test('--keep copies what the script made or changed back, and leaves the rest alone', opts, () => {
    const d = workdir({ 'input.csv': 'x\n1\n', 'same.txt': 'unchanged\n', 'edit.txt': 'old\n' });
    const sameBefore = statSync(join(d, 'same.txt')).mtimeMs;
    // A file of DIR hard-linked from outside it: replacing it must not
    // write through the link.
    const outside = join(dir, 'linked-from-outside.txt');
    writeFileSync(outside, 'outside\n');
    rmSync(join(d, 'edit.txt'));
    linkSync(outside, join(d, 'edit.txt'));
    const r = kiln(['run', '--workdir', d, '--keep', script(
      'import os\nos.makedirs("results/empty", exist_ok=True)\n'
      + 'open("results/sum.txt", "w").write(str(sum(int(l) for l in open("input.csv").read().split()[1:])))\n'
      + 'open("edit.txt", "w").write("new\\n")\nos.remove("input.csv")\n')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(d, 'results', 'sum.txt'), 'utf8'), '1');
    assert.ok(statSync(join(d, 'results', 'empty')).isDirectory());
    assert.equal(readFileSync(join(d, 'edit.txt'), 'utf8'), 'new\n');
    assert.equal(readFileSync(outside, 'utf8'), 'outside\n');
    // Unchanged files keep their time; nothing is deleted from DIR.
    assert.equal(statSync(join(d, 'same.txt')).mtimeMs, sameBefore);
    assert.equal(readFileSync(join(d, 'input.csv'), 'utf8'), 'x\n1\n');
    // Nothing else appears: no temporary files, nothing of kiln's own.
    assert.deepEqual(tree(d), ['edit.txt', 'input.csv', 'results', 'results/empty', 'results/sum.txt', 'same.txt']);
  });

  test('--keep does not copy symlinks or special files the script made, and says so', opts, () => {
    const d = workdir({ 'data.txt': 'data\n' });
    const r = kiln(['run', '--workdir', d, '--keep', script(
      'import os\nos.symlink("/etc/passwd", "passwd")\nos.remove("data.txt")\nos.symlink("/etc/hostname", "data.txt")\n'
      + 'os.mkfifo("fifo")\nos.mkdir("dir")\nos.symlink("/etc", "dir/etc")\nopen("ok.txt", "w").write("ok")\n')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /skipping \/work\/passwd: it is a symlink/);
    assert.match(r.stderr, /skipping \/work\/data\.txt: it is a symlink/);
    assert.match(r.stderr, /skipping \/work\/dir\/etc: it is a symlink/);
    assert.match(r.stderr, /refusing \/work\/fifo: it is a special file/);
    assert.deepEqual(tree(d), ['data.txt', 'dir', 'ok.txt']);
    assert.equal(readFileSync(join(d, 'data.txt'), 'utf8'), 'data\n');
  });

  test('--keep never writes outside DIR through a symlink DIR holds', opts, () => {
    const outside = mkdtempSync(join(dir, 'outside-'));
    const d = workdir({ 'a.txt': 'a\n' });
    symlinkSync(outside, join(d, 'out'));
    symlinkSync(join(outside, 'target.txt'), join(d, 'file-link'));
    // The symlinks were not copied in, so the script can make a
    // directory and a file by their names.
    const r = kiln(['run', '--workdir', d, '--keep', script(
      'import os\nos.mkdir("out")\nopen("out/planted.txt", "w").write("x")\nopen("file-link", "w").write("x")\n')]);
    assert.equal(r.status, 74, r.stderr);
    assert.match(r.stderr, /out is a symlink, which kiln does not follow/);
    assert.match(r.stderr, /file-link is a symlink; it is left as it is/);
    assert.match(r.stderr, /not everything in \/work was copied back/);
    assert.deepEqual(readdirSync(outside), []);
  });

  test('--keep after the worker died copies nothing and says why', opts, () => {
    const d = workdir({ 'a.txt': 'a\n' });
    const r = kiln(['run', '--workdir', d, '--keep', script('open("made.txt", "w").write("x")\nimport os\nos._exit(3)\n')]);
    assert.equal(r.status, 70, r.stderr);
    assert.match(r.stderr, /\/work was lost with the worker; nothing was copied back/);
    assert.deepEqual(tree(d), ['a.txt']);
  });

  test('--keep needs --workdir', opts, () => {
    const r = kiln(['run', '--keep', script('print(1)\n')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--keep copies \/work back into the --workdir DIR/);
  });

  test('--workdir and --keep are options of kiln run only', opts, () => {
    for (const args of [['serve', '--workdir', '.'], ['serve', '--keep'], ['doctor', '--keep']]) {
      const r = kiln(args);
      assert.equal(r.status, 2, `${args}`);
      assert.match(r.stderr, /is an option of kiln run/);
    }
  });
});

describe('kiln --help and --version', () => {
  test('serve --help and run --help print the help, as --help does', opts, () => {
    const help = kiln(['--help']).stdout;
    assert.match(help, /^Usage: kiln serve/);
    for (const args of [['serve', '--help'], ['run', '--help'], ['run', '-h'], ['serve', '--timeout', '5', '--help']]) {
      const r = kiln(args);
      assert.equal(r.status, 0, `${args}: ${r.stderr}`);
      assert.equal(r.stdout, help, `${args}`);
      assert.equal(r.stderr, '', `${args}`);
    }
  });

  test('an unknown option is called unknown, with or without a value, and exits 2', opts, () => {
    for (const args of [['serve', '--bogus'], ['serve', '--bogus=1'], ['run', '--bogus', script('print(1)\n')],
      ['doctor', '--bogus']]) {
      const r = kiln(args);
      assert.equal(r.status, 2, `${args}: ${r.stderr}`);
      assert.match(r.stderr, /unknown option --bogus/, `${args}`);
      assert.doesNotMatch(r.stderr, /needs a value/, `${args}`);
    }
  });

  test('an option that needs a value and has none says so', opts, () => {
    const r = kiln(['serve', '--timeout']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--timeout needs a value/);
  });

  test('--help documents the commands and every option', opts, () => {
    const r = spawnSync(KILN_BIN, ['--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    for (const word of ['serve', 'run', '--timeout', '--grace', '--max-output', '--max-code', '--max-message',
      '--max-sessions', '--preload', 'KILN_HOME']) {
      assert.ok(r.stdout.includes(word), `--help does not mention ${word}`);
    }
  });

  test('--version names kiln and the embedded Python', opts, () => {
    const r = spawnSync(KILN_BIN, ['--version'], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^kiln \d+\.\d+\.\d+ \(Python 3\.\d+/);
  });

  test('an unknown option is refused with a message naming it', opts, () => {
    const r = spawnSync(KILN_BIN, ['serve', '--no-such-option', '1'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no-such-option/);
  });
});

describe('kiln doctor', () => {
  test('reports every protection with its status and says whether workers can be jailed', opts, () => {
    const r = spawnSync(KILN_BIN, ['doctor'], { env, encoding: 'utf8', timeout: 50_000 });
    for (const name of ['pid namespace', 'mount namespace', 'network namespace', 'ipc namespace', 'uts namespace',
      'cgroup namespace', 'no-new-privs', 'seccomp allowlist', 'cgroups', 'complete jail']) {
      assert.match(r.stdout, new RegExp(`${name}.*(active|UNAVAILABLE)`), `doctor does not report ${name}`);
    }
    // Its verdict and its exit status agree.
    assert.equal(r.status === 0, /kiln can jail workers on this host/.test(r.stdout), r.stdout);
  });
});

describe('--insecure-no-sandbox', () => {
  test('runs cells, and every reply says the session is not isolated', opts, async () => {
    await withServer({ args: ['--insecure-no-sandbox'] }, async (server) => {
      const sc = await run(server.client, '1+1');
      assert.equal(sc.result, '2', dump(sc));
      assert.match(sc.notice ?? '', /NOT isolated/, dump(sc));
      const line = await pollUntil(() => (server.stderr().includes('\n') ? server.stderr() : ''));
      assert.match(line, /protections: NONE/);
    });
  });
});
