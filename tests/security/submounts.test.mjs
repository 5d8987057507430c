// Every mount under a read-only bind is read-only too: a separate file
// system under /usr (here a tmpfs the test mounts, world-writable) must
// not be writable from a cell because only the top of the bind was made
// read-only.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';

import { useServer, useBystander, run, dump, TEST_TIMEOUT, HOOK_TIMEOUT } from '../integration/helpers.mjs';
import { attack, jailArgs, modeName, unprivileged } from './mode.mjs';

const opts = { timeout: TEST_TIMEOUT };
const MOUNT = `/usr/local/kiln-submount-${process.pid}`;
const skip = unprivileged && 'needs root to mount a file system under /usr on the host';

describe(`submounts of the read-only binds (${modeName})`, { skip }, () => {
  before(() => {
    mkdirSync(MOUNT);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1M,mode=1777', 'tmpfs', MOUNT]);
  }, { timeout: HOOK_TIMEOUT });
  after(() => {
    execFileSync('umount', ['-l', MOUNT]);
    rmdirSync(MOUNT);
  }, { timeout: HOOK_TIMEOUT });
  // Started after the mount exists, so that the jail's bind of /usr has it.
  const kiln = useServer({ args: jailArgs });
  const bystander = useBystander(kiln);

  attack(test, 'a file system mounted under /usr is read-only in the jail (EROFS)', opts, async () => {
    const sc = await run(kiln.client, [
      'import errno',
      'try:',
      `    open("${MOUNT}/planted", "w").write("x")`,
      '    out = "written"',
      'except OSError as e:',
      '    out = errno.errorcode[e.errno]',
      'out',
    ].join('\n'));
    assert.equal(sc.result, "'EROFS'", dump(sc));
    await bystander.unharmed();
  });
});
