// What a cell can learn about the host: /proc files that describe the
// host (its kernel command line, boot id, disks, interrupts) are masked
// as container runtimes mask them; the init's command line names no host
// path or argument; matplotlib's directories are the jail's, not the
// host's KILN_HOME; kiln's Python, venv, runtime and executable are at
// /opt/kiln, so no module, mapping, mount or link names where kiln is
// installed, and /work is empty.  (Still visible, and said in the README:
// the host path of the session's packages directory in the root field of
// /opt/packages's line in /proc/self/mountinfo, and the host's block
// device behind the system trees.)

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';

import { useServer, useBystander, run, KILN_BIN, TEST_TIMEOUT } from '../integration/helpers.mjs';
import { attack, jailArgs, modeName } from './mode.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe(`host information in the jail (${modeName})`, () => {
  const server = useServer({ args: ['--timeout', '30', ...jailArgs] });

  attack(test, '/proc files that describe the host read as empty', opts, async () => {
    const r = await run(server.client, [
      'import json',
      'paths = ["/proc/cmdline", "/proc/sys/kernel/random/boot_id", "/proc/diskstats", "/proc/interrupts", "/proc/partitions"]',
      'print(json.dumps({p: open(p).read() for p in paths}))',
    ].join('\n'));
    assert.equal(r.status, 'ok', JSON.stringify(r.error));
    for (const [path, text] of Object.entries(JSON.parse(r.stdout))) assert.equal(text, '', path);
  });

  attack(test, "the init's command line and matplotlib's directories name no host path", opts, async () => {
    const r = await run(server.client, [
      'import json, matplotlib',
      'print(json.dumps({"init": open("/proc/1/cmdline").read(), "config": matplotlib.get_configdir(), "cache": matplotlib.get_cachedir()}))',
    ].join('\n'));
    assert.equal(r.status, 'ok', JSON.stringify(r.error));
    const got = JSON.parse(r.stdout);
    // The init is a fork of the zygote, which kiln starts with a fixed
    // command line of its own.
    assert.equal(got.init, 'kiln-zygote\u0000__zygote\u0000');
    for (const [what, text] of Object.entries(got)) {
      assert.ok(!text.includes(server.home), `${what} shows KILN_HOME: ${text}`);
      assert.ok(!text.includes(KILN_BIN), `${what} shows the kiln binary's path: ${text}`);
      assert.ok(!text.includes('serve'), `${what} shows kiln's arguments: ${text}`);
    }
  });

  attack(test, "no path of kiln's host installation is visible, and /work is empty", opts, async () => {
    const venv = resolve(process.env.KILN_VENV ?? join(dirname(KILN_BIN), '..', '.venv'));
    const prefix = execFileSync(join(venv, 'bin', 'python3'), ['-c', 'import sys; print(sys.base_prefix)'], {
      encoding: 'utf8',
    }).trim();
    const r = await run(server.client, [
      'import json, os, sys, numpy, matplotlib, traceback',
      'maps = sorted({l.split()[-1] for l in open("/proc/self/maps") if "/" in l})',
      'mounts = [l for l in open("/proc/self/mountinfo").read().splitlines() if l.split()[4] != "/opt/packages"]',
      'try:',
      '    numpy.array_split(numpy.zeros(2), 0)',
      'except ValueError:',
      '    tb = traceback.format_exc()',
      'print(json.dumps({"sys.path": sys.path, "prefix": [sys.prefix, sys.base_prefix, sys.executable],',
      '    "modules": [numpy.__file__, matplotlib.__file__, json.__file__], "exe": os.readlink("/proc/self/exe"),',
      '    "maps": maps, "mountinfo": mounts, "environ": dict(os.environ), "traceback": tb,',
      '    "work": os.listdir("/work")}))',
    ].join('\n'));
    assert.equal(r.status, 'ok', JSON.stringify(r.error));
    const got = JSON.parse(r.stdout);
    assert.deepEqual(got.work, [], '/work shows directories of the host');
    const host = { venv, prefix, 'the kiln binary': dirname(KILN_BIN), KILN_HOME: server.home };
    for (const [what, value] of Object.entries(got)) {
      const text = JSON.stringify(value);
      for (const [name, path] of Object.entries(host))
        assert.ok(!text.includes(path), `${what} shows ${name} (${path}): ${text}`);
    }
    // Where they are instead; the traceback's frame in numpy can be read.
    assert.equal(got.exe, '/opt/kiln/bin/kiln');
    assert.match(got.modules[0], /^\/opt\/kiln\/venv\/lib\/python3\.\d+\/site-packages\/numpy\//);
    assert.match(got.traceback, /File "\/opt\/kiln\/venv\/[^"]+numpy[^"]+", line \d+, in array_split/);
  });
});
