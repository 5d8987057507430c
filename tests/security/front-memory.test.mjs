// A worker cannot pin the front's memory: a frame left half sent is
// timed out and its session ended, and the partial frames of all
// workers together are bounded.  The front holds these bytes outside
// any session's cgroup, so these are limits the front must keep itself.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, useBystander, run, TEST_TIMEOUT } from '../integration/helpers.mjs';
import { jailArgs, modeName } from './mode.mjs';

const opts = { timeout: TEST_TIMEOUT * 2 };

/** A cell that writes the header of a DONE frame of DECLARED bytes and
    SENT bytes of its body on the control socket, then sleeps. */
const halfFrame = (declared, sent, sleep) => [
  'import os, struct, time',
  `os.write(3, struct.pack("<IHH", ${declared}, 32, 0))`,
  `body = b"\\0" * ${sent}`,
  'while body:',
  '    n = os.write(3, body)',
  '    body = body[n:]',
  `time.sleep(${sleep})`,
].join('\n');

// The front's own limits: they hold with or without the jail.
describe(`the front's memory (${modeName})`, () => {
  const server = useServer({ args: ['--spares', '4', ...jailArgs] });
  const bystander = useBystander(server);


  test('a frame left half sent ends its session instead of being held', opts, async () => {
    const r = await run(server.client, halfFrame(20 << 20, 4 << 20, 60), { timeout_s: 90 });
    assert.equal(r.status, 'crashed', JSON.stringify(r));
    assert.match(r.error.message, /stopped in the middle of a frame/);
    await bystander.unharmed();
  });

  test('the partial frames of all workers together are bounded; the one past the bound is stopped', opts, async () => {
    // Eleven sessions each holding 24 MiB: 264 MiB, past the front's
    // 256 MiB for all of them.
    const cells = Array.from({ length: 11 }, () =>
      run(server.client, halfFrame(24.5 * (1 << 20), 24 << 20, 20), { timeout_s: 60 }));
    const replies = await Promise.all(cells);
    const messages = replies.map((r) => r.error?.message ?? '');
    assert.ok(messages.some((m) => /partial frames from its workers, its limit/.test(m)), messages.join('\n'));
    for (const r of replies) assert.equal(r.status, 'crashed');
    await bystander.unharmed();
  });
});
