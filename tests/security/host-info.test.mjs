// What a cell can learn about the host: /proc files that describe the
// host (its kernel command line, boot id, disks, interrupts) are masked
// as container runtimes mask them; the init's command line names no host
// path or argument; matplotlib's directories are the jail's, not the
// host's KILN_HOME.  (Still visible, and said in the README: the kiln
// binary's host path through /proc/self/exe and the bind sources in
// /proc/self/mountinfo.)

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

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
});
