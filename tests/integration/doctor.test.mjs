// kiln doctor says what the host gives a session, including what it
// cannot give: unprivileged, without cgroups, the memory bound is per
// process, and the worst case per session is stated as a number.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { KILN_BIN, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

function doctor(args, asNobody) {
  const home = mkdtempSync(join(tmpdir(), 'kiln-doctor-'));
  chmodSync(home, 0o777);
  const cmd = asNobody
    ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', `HOME=${home}`, `KILN_HOME=${home}`, KILN_BIN, 'doctor', ...args]]
    : [KILN_BIN, ['doctor', ...args]];
  const r = spawnSync(cmd[0], cmd[1], { encoding: 'utf8', env: { ...process.env, KILN_HOME: home } });
  rmSync(home, { recursive: true, force: true });
  return r;
}

test('as root, kiln doctor shows the cgroup limits per session', opts, (t) => {
  if (process.getuid() !== 0) return t.skip('not root');
  const r = doctor(['--memory', '512M'], false);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /cgroups \(memory, pids, cpu\)\s+active\s+cgroup v\d \(memory 512 MiB/);
});

test('unprivileged, kiln doctor states the worst case memory per session as a number', opts, (t) => {
  const asNobody = process.getuid() === 0;
  if (asNobody && spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', KILN_BIN, '--version']).status !== 0) {
    return t.skip('this kiln cannot run as nobody here (its Python is out of reach)');
  }
  const r = doctor(['--memory', '256M', '--max-procs', '64'], asNobody);
  assert.match(r.stdout, /memory is limited per process, not per session: 1024 MiB of address space each, up to 64 processes, so at worst 64 GiB per session/);
});

test("kiln doctor says the jail shows kiln's trees at /opt/kiln", opts, () => {
  const r = doctor([], false);
  assert.match(r.stdout, /kiln's trees at \/opt\/kiln\s+active\s+no host path of kiln's Python/, r.stdout + r.stderr);
});

test('with KILN_HOME under /opt, which the layout covers, kiln says so and runs with the host paths', opts, (t) => {
  if (process.getuid() !== 0) return t.skip('not root: cannot make a directory under /opt');
  const home = mkdtempSync('/opt/kiln-home-');
  try {
    const env = { ...process.env, KILN_HOME: home };
    const d = spawnSync(KILN_BIN, ['doctor'], { encoding: 'utf8', env });
    assert.match(d.stdout, /kiln's trees at \/opt\/kiln\s+unavailable\s+KILN_HOME is under \/opt, which the layout covers/);
    const r = spawnSync(KILN_BIN, ['run', '-'], {
      encoding: 'utf8', env, input: 'import sys, numpy\nprint(sys.prefix, numpy.__file__)\n', timeout: 50_000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /the jail shows kiln's Python, venv and runtime at their host paths: KILN_HOME is under \/opt/);
    assert.doesNotMatch(r.stdout, /\/opt\/kiln\//, r.stdout);
    assert.match(r.stdout, /numpy\/__init__\.py/, r.stdout);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
