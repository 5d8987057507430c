// Cell timeouts: first an interrupt (KeyboardInterrupt), then, after the
// grace period, the worker is killed and replaced.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, expectResult, assertKept, runFull, pidGone, sessionPid, pollUntil, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

const BUSY_LOOP = 'import time\nwhile True: time.sleep(0.01)';
// A cell that swallows every KeyboardInterrupt. The inner loop has a real
// statement on its own line: on CPython 3.12 a one-line `while True: pass`
// inside `try` lets the interrupt escape the handler, so the cell would stop.
const STUBBORN_LOOP =
  'n = 0\nwhile True:\n    try:\n        while True:\n            n += 1\n    except KeyboardInterrupt:\n        pass';

describe('a cell that runs past its timeout and honours the interrupt', () => {
  const kiln = useServer();

  test('is interrupted with KeyboardInterrupt and the session keeps its variables', opts, async () => {
    const first = await run(kiln.client, 'x = 5');
    assert.equal(first.status, 'ok', dump(first));

    const result = await runFull(kiln.client, BUSY_LOOP, { session_id: first.session_id, timeout_s: 1 });
    assert.equal(result.isError, true, dump(result));
    const timedOut = result.structuredContent;
    assert.equal(timedOut.status, 'interrupted', dump(timedOut));
    assert.equal(timedOut.error?.type, 'KeyboardInterrupt', dump(timedOut));

    await assertKept(kiln.client, first.session_id, 'x', '5');
  });

  test('output printed before the interrupt is kept', opts, async () => {
    const sc = await run(kiln.client, `print("started", flush=True)\n${BUSY_LOOP}`, { timeout_s: 1 });
    assert.equal(sc.status, 'interrupted', dump(sc));
    assert.ok(sc.stdout.includes('started'), dump(sc));
  });

  test('a pure-Python busy loop without sleeps is interrupted as well', opts, async () => {
    const first = await run(kiln.client, 'y = 9');
    const sc = await run(kiln.client, 'while True: pass', { session_id: first.session_id, timeout_s: 1 });
    assert.equal(sc.status, 'interrupted', dump(sc));
    assert.equal(sc.error?.type, 'KeyboardInterrupt', dump(sc));
    await assertKept(kiln.client, first.session_id, 'y', '9');
  });

  test('a timeout in one session does not disturb another session', opts, async () => {
    const other = await run(kiln.client, 'z = "other"');
    const sc = await run(kiln.client, BUSY_LOOP, { timeout_s: 1 });
    assert.equal(sc.status, 'interrupted', dump(sc));
    await assertKept(kiln.client, other.session_id, 'z', "'other'");
  });
});

describe('a cell that ignores the interrupt (--grace 0.5)', () => {
  const kiln = useServer({ args: ['--grace', '0.5'] });

  test('is killed, and the notice says the session state was lost', opts, async () => {
    const first = await run(kiln.client, 'x = 1');
    assert.equal(first.status, 'ok', dump(first));
    const workerPid = await sessionPid(kiln.client, first.session_id);

    const result = await runFull(kiln.client, STUBBORN_LOOP, { session_id: first.session_id, timeout_s: 1 });
    assert.equal(result.isError, true, dump(result));
    const killed = result.structuredContent;
    assert.equal(killed.status, 'killed', dump(killed));
    assert.equal(typeof killed.notice, 'string', dump(killed));
    assert.match(killed.notice, /lost|gone|reset|fresh/i);
    assert.match(killed.notice, /state|variable/i);

    const gone = await pollUntil(() => pidGone(workerPid), 10_000);
    assert.ok(gone, `killed worker ${workerPid} still exists`);
  });

  test('the next call on a killed session runs in a fresh worker and reports state_lost', opts, async () => {
    const first = await run(kiln.client, 'x = 1');
    const killed = await run(kiln.client, STUBBORN_LOOP, { session_id: first.session_id, timeout_s: 1 });
    assert.equal(killed.status, 'killed', dump(killed));

    const next = await runFull(kiln.client, "'x' in globals()", { session_id: first.session_id });
    assert.ok(!next.isError, dump(next));
    const sc = next.structuredContent;
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.session_id, first.session_id);
    assert.equal(sc.state_lost, true);
    assert.equal(sc.new_session, false);
    assert.equal(sc.result, 'False');
    assert.equal(typeof sc.notice, 'string', dump(sc));

    const later = await run(kiln.client, "'x' in globals()", { session_id: first.session_id });
    assert.equal(later.result, 'False');
    assert.equal(later.state_lost, false, 'state_lost is only reported once');
  });

  test('a killed session keeps working for new variables afterwards', opts, async () => {
    const first = await run(kiln.client, 'pass');
    await run(kiln.client, STUBBORN_LOOP, { session_id: first.session_id, timeout_s: 1 });
    await run(kiln.client, 'fresh = 3', { session_id: first.session_id });
    await expectResult(kiln.client, 'fresh * 2', '6', { session_id: first.session_id });
  });

  test('a cell that honours the interrupt is still only interrupted under a short grace period', opts, async () => {
    const first = await run(kiln.client, 'kept = 11');
    const sc = await run(kiln.client, BUSY_LOOP, { session_id: first.session_id, timeout_s: 1 });
    assert.equal(sc.status, 'interrupted', dump(sc));
    await assertKept(kiln.client, first.session_id, 'kept', '11');
  });
});

describe('the default cell timeout (--timeout 1)', () => {
  const kiln = useServer({ args: ['--timeout', '1'] });

  test('a cell without timeout_s is interrupted at the server default', opts, async () => {
    const first = await run(kiln.client, 'x = 5');
    const sc = await run(kiln.client, BUSY_LOOP, { session_id: first.session_id });
    assert.equal(sc.status, 'interrupted', dump(sc));
    assert.equal(sc.error?.type, 'KeyboardInterrupt', dump(sc));
    const after = await run(kiln.client, 'x', { session_id: first.session_id });
    assert.equal(after.result, '5');
  });

  test('timeout_s on the call overrides the server default', opts, async () => {
    await expectResult(kiln.client, "import time\ntime.sleep(3)\n'slept'", "'slept'", { timeout_s: 30 });
  });
});
