// The command line: `kiln run FILE.py`, --help and --version.

import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { KILN_BIN, TEST_TIMEOUT, withServer, run, dump, pollUntil } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };
const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
const env = { ...process.env, KILN_HOME: join(dir, 'home') };

function kilnRun(source, args = []) {
  const file = join(dir, `script-${Math.random().toString(36).slice(2)}.py`);
  writeFileSync(file, source);
  return spawnSync(KILN_BIN, ['run', ...args, file], { env, encoding: 'utf8', timeout: 50_000 });
}

describe('kiln run', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

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

describe('kiln --help and --version', () => {
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
