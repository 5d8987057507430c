// Workers that die in the middle of a cell: the call reports "crashed", the
// server and other sessions carry on, and the session gets a fresh worker.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, assertKept, runFull, pidGone, sessionPid, pollUntil, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('worker crashes', () => {
  const kiln = useServer();

  for (const [name, code, said, message] of [
    ['a segmentation fault', 'import ctypes; ctypes.string_at(0)', 'SIGSEGV', /^The session's worker was killed by SIGSEGV \(signal 11\)/],
    ['os._exit(3)', 'import os; os._exit(3)', 'exit code 3', /^The session's worker exited with code 3;/],
  ]) {
    test(`${name} is reported as status "crashed" naming ${said}`, opts, async () => {
      const result = await runFull(kiln.client, code);
      assert.equal(result.isError, true, dump(result));
      const sc = result.structuredContent;
      assert.equal(sc.status, 'crashed', dump(sc));
      assert.match(sc.error?.message ?? '', message, dump(sc));
    });
  }

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

    await assertKept(kiln.client, bystander.session_id, 'bystander', "'alive'");

    const fresh = await run(kiln.client, '1+1');
    assert.equal(fresh.result, '2', dump(fresh));
  });

  test('a session whose sandbox is killed from outside runs its next cell in a fresh interpreter and says so once', opts, async () => {
    const first = await run(kiln.client, 'x = 1');
    const sandboxPid = await sessionPid(kiln.client, first.session_id);
    process.kill(sandboxPid, 'SIGKILL');
    assert.ok(await pollUntil(() => pidGone(sandboxPid), 10_000), `sandbox ${sandboxPid} was not reaped`);

    const next = await run(kiln.client, "'x' in globals()", { session_id: first.session_id });
    assert.equal(next.status, 'ok', dump(next));
    assert.equal(next.session_id, first.session_id);
    assert.equal(next.result, 'False', dump(next));
    assert.equal(next.state_lost, true, dump(next));
    assert.match(next.notice ?? '', /previous worker was killed by SIGKILL/, dump(next));

    const again = await run(kiln.client, "'x' in globals()", { session_id: first.session_id });
    assert.equal(again.state_lost, false, dump(again));
    assert.equal(again.notice, null, dump(again));
  });
});
