// Workers that die in the middle of a cell: the call reports "crashed", the
// server and other sessions carry on, and the session gets a fresh worker.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, runFull, pidAlive, pidGone, sessionPid, pollUntil, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('worker crashes', () => {
  const kiln = useServer();

  test('a segmentation fault is reported as status "crashed" naming SIGSEGV', opts, async () => {
    const result = await runFull(kiln.client, 'import ctypes; ctypes.string_at(0)');
    assert.equal(result.isError, true, dump(result));
    const sc = result.structuredContent;
    assert.equal(sc.status, 'crashed', dump(sc));
    assert.ok(sc.error, dump(sc));
    assert.match(sc.error.message, /SIGSEGV/);
  });

  test('os._exit(3) is reported as status "crashed" naming exit code 3', opts, async () => {
    const result = await runFull(kiln.client, 'import os; os._exit(3)');
    assert.equal(result.isError, true, dump(result));
    const sc = result.structuredContent;
    assert.equal(sc.status, 'crashed', dump(sc));
    assert.ok(sc.error, dump(sc));
    assert.match(sc.error.message, /exit/i);
    assert.match(sc.error.message, /\b3\b/);
  });

  test('a crash carries a notice explaining that the session state was lost', opts, async () => {
    const sc = await run(kiln.client, 'import os; os._exit(3)');
    assert.equal(sc.status, 'crashed', dump(sc));
    assert.equal(typeof sc.notice, 'string', dump(sc));
    assert.ok(sc.notice.length > 0);
  });

  test('output printed before a crash is kept', opts, async () => {
    const sc = await run(kiln.client, 'print("last words", flush=True)\nimport os; os._exit(3)');
    assert.equal(sc.status, 'crashed', dump(sc));
    assert.ok(sc.stdout.includes('last words'), dump(sc));
  });

  for (const [label, code] of [
    ['a segmentation fault', 'import ctypes; ctypes.string_at(0)'],
    ['os._exit(3)', 'import os; os._exit(3)'],
  ]) {
    test(`after ${label} the next call on that session reports state_lost and earlier variables are gone`, opts, async () => {
      const first = await run(kiln.client, 'x = 1');
      assert.equal(first.status, 'ok', dump(first));
      const workerPid = await sessionPid(kiln.client, first.session_id);

      const crashed = await run(kiln.client, code, { session_id: first.session_id });
      assert.equal(crashed.status, 'crashed', dump(crashed));
      assert.ok(await pollUntil(() => pidGone(workerPid), 10_000), `crashed worker ${workerPid} still exists`);

      const next = await run(kiln.client, "'x' in globals()", { session_id: first.session_id });
      assert.equal(next.status, 'ok', dump(next));
      assert.equal(next.session_id, first.session_id);
      assert.equal(next.state_lost, true);
      assert.equal(next.result, 'False');
      assert.equal(typeof next.notice, 'string', dump(next));
    });
  }

  test('a crash in one session leaves other sessions and the server working', opts, async () => {
    const bystander = await run(kiln.client, 'bystander = "alive"');
    assert.equal(bystander.status, 'ok', dump(bystander));

    const segv = await run(kiln.client, 'import ctypes; ctypes.string_at(0)');
    assert.equal(segv.status, 'crashed', dump(segv));
    const exited = await run(kiln.client, 'import os; os._exit(3)');
    assert.equal(exited.status, 'crashed', dump(exited));

    const after = await run(kiln.client, 'bystander', { session_id: bystander.session_id });
    assert.equal(after.status, 'ok', dump(after));
    assert.equal(after.result, "'alive'");
    assert.equal(after.state_lost, false);

    const fresh = await run(kiln.client, '1+1');
    assert.equal(fresh.result, '2');
    assert.ok(pidAlive(kiln.pid), 'the kiln process has gone away');
  });

  test('a worker killed from outside is reported as crashed on its next cell or replaced with state_lost', opts, async () => {
    const first = await run(kiln.client, 'x = 1');
    const workerPid = await sessionPid(kiln.client, first.session_id);
    process.kill(workerPid, 'SIGKILL');
    assert.ok(await pollUntil(() => pidGone(workerPid), 10_000), `worker ${workerPid} was not reaped`);

    const next = await run(kiln.client, "'x' in globals()", { session_id: first.session_id });
    if (next.status === 'crashed') {
      const again = await run(kiln.client, "'x' in globals()", { session_id: first.session_id });
      assert.equal(again.status, 'ok', dump(again));
      assert.equal(again.state_lost, true);
      assert.equal(again.result, 'False');
    } else {
      assert.equal(next.status, 'ok', dump(next));
      assert.equal(next.state_lost, true);
      assert.equal(next.result, 'False');
    }
  });
});
