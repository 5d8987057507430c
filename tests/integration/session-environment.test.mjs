// What a session's programs find around them: python, python3 and pip on
// PATH are the session's own interpreter and packages; the CPUs they
// count are the session's --cpus.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';

import { useServer, run, dump, pollUntil, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

/** Runs CODE, whose last line is an expression, and returns that
    expression's value as JSON makes it. */
async function json(client, code, runOpts = {}) {
  const lines = code.split('\n');
  const last = lines.pop();
  const sc = await run(client, ['import json', ...lines, `print(json.dumps(${last}))`].join('\n'), runOpts);
  assert.equal(sc.status, 'ok', dump(sc));
  return JSON.parse(sc.stdout);
}

const COUNTS = [
  'import os, subprocess, multiprocessing',
  '[os.cpu_count(), multiprocessing.cpu_count(), len(os.sched_getaffinity(0)), int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)]',
].join('\n');

describe('the session environment', () => {
  const kiln = useServer({ args: ['--cpus', '1', '--spares', '0'] });

  describe('interpreters on PATH', () => {
    for (const name of ['python', 'python3']) {
      test(`${name} on PATH is the session's interpreter, with the session's packages`, opts, async () => {
        const [exe, child] = await json(
          kiln.client,
          [
            'import subprocess, sys',
            `out = subprocess.run(["${name}", "-c", "import sys, numpy, pandas; print(sys.executable)"],`,
            '                     capture_output=True, text=True)',
            '[sys.executable, out.stdout.strip() or out.stderr]',
          ].join('\n'),
          { timeout_s: 30 },
        );
        assert.ok(exe.endsWith('/bin/python3'), exe);
        const bin = exe.slice(0, -'python3'.length);
        assert.equal(child, `${bin}${name}`);
      });
    }

    test("shutil.which finds python3 and pip in the session's venv, never /usr/bin", opts, async () => {
      const [exe, python3, pip] = await json(
        kiln.client,
        'import shutil, sys\n[sys.executable, shutil.which("python3"), shutil.which("pip")]',
      );
      assert.equal(python3, exe);
      assert.equal(pip, exe.replace(/python3$/, 'pip'));
    });

    test('pip on PATH runs with the session interpreter and lists its packages', opts, async () => {
      const sc = await run(
        kiln.client,
        'import subprocess\nout = subprocess.run(["pip", "list", "--format=freeze"], capture_output=True, text=True)\nprint(out.stdout)\nprint(out.stderr)',
        { timeout_s: 60 },
      );
      assert.equal(sc.status, 'ok', dump(sc));
      assert.match(sc.stdout, /^numpy==/m, dump(sc));
      assert.match(sc.stdout, /^pandas==/m, dump(sc));
    });
  });

  describe('CPUs', () => {
    test('with --cpus 1, os.cpu_count(), multiprocessing, the affinity and nproc all count 1', opts, async () => {
      assert.deepEqual(await json(kiln.client, COUNTS, { timeout_s: 30 }), [1, 1, 1, 1]);
    });

    test('successive sessions run on different CPUs when the host has more than one', opts, async (t) => {
      if (availableParallelism() < 2) {
        t.skip('this host has a single CPU');
        return;
      }
      const code = 'sorted(__import__("os").sched_getaffinity(0))';
      const a = await json(kiln.client, code);
      const b = await json(kiln.client, code);
      assert.equal(a.length, 1);
      assert.notDeepEqual(a, b);
    });
  });
});

describe('--cpus above one', () => {
  const kiln = useServer({ args: ['--cpus', '2'] });

  test('every count gives the CPUs the session may use: min(--cpus, the host\'s)', opts, async () => {
    const n = Math.min(2, availableParallelism());
    assert.deepEqual(await json(kiln.client, COUNTS, { timeout_s: 30 }), [n, n, n, n]);
  });
});

describe('pip without network', () => {
  const kiln = useServer({ args: ['--log-level', 'debug'] });

  /** "name version" of every package of the session, as the cell sees them. */
  async function installed() {
    return json(
      kiln.client,
      'from importlib import metadata\nsorted({f"{d.metadata[\'Name\']} {d.version}" for d in metadata.distributions()})',
    );
  }

  for (const cmd of [['pip', 'install', 'no-such-package-here'], ['python', '-m', 'pip', 'install', 'no-such-package-here'],
    ['pip', 'install', 'numpy==0.0.1'], ['python3', '-m', 'pip', 'download', 'flask']]) {
    test(`${cmd.join(' ')} fails at once, saying there is no network and naming the installed packages`, opts, async () => {
      const [status, stderr] = await json(
        kiln.client,
        [
          'import subprocess',
          `r = subprocess.run(${JSON.stringify(cmd)}, capture_output=True, text=True)`,
          '[r.returncode, r.stderr]',
        ].join('\n'),
        { timeout_s: 60 },
      );
      assert.notEqual(status, 0, stderr);
      assert.match(stderr, /there is no network in this session/);
      for (const pkg of await installed()) assert.ok(stderr.includes(pkg), `${pkg} is not named in: ${stderr}`);
      // Not a DNS lookup retried for seconds: pip never tried the network.
      assert.doesNotMatch(stderr, /Retrying|NewConnectionError|Temporary failure in name resolution/);
    });
  }

  test('pip install of a package that is installed says it is there and succeeds', opts, async () => {
    const [status, stdout] = await json(
      kiln.client,
      'import subprocess\nr = subprocess.run(["pip", "install", "numpy"], capture_output=True, text=True)\n[r.returncode, r.stdout + r.stderr]',
      { timeout_s: 60 },
    );
    assert.equal(status, 0, stdout);
    assert.match(stdout, /Requirement already satisfied: numpy/);
  });

  test('kiln reads the packages, by name with their versions, at start-up', opts, async () => {
    const packages = await installed();
    const log = await pollUntil(() => (/packages: .*\n/.test(kiln.stderr()) ? kiln.stderr() : ''));
    assert.match(log, new RegExp(`; ${packages.length} packages; `));
    const listed = log.match(/packages: (.*)\n/)[1].split(',');
    assert.deepEqual([...listed].sort(), packages);
    for (const name of ['numpy', 'pandas', 'scipy', 'scikit-learn', 'matplotlib']) {
      assert.ok(listed.some((p) => p.startsWith(`${name} `)), `${name} missing from ${listed}`);
    }
  });
});

describe('run_python names the installed packages', () => {
  const kiln = useServer();

  test('its description lists every package of the venv with its version', opts, async () => {
    const { tools } = await kiln.client.listTools();
    const run = tools.find((t) => t.name === 'run_python');
    const listed = run.description.split('Installed packages (pip has no network here: install_packages adds others): ')[1];
    assert.ok(listed, run.description);
    const packages = await json(
      kiln.client,
      'from importlib import metadata\nsorted({f"{d.metadata[\'Name\']} {d.version}" for d in metadata.distributions()})',
    );
    assert.deepEqual(listed.split(',').sort(), packages);
  });
});
