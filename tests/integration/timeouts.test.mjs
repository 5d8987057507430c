// Cell timeouts: first an interrupt (KeyboardInterrupt), then, after the
// grace period, the worker is killed and replaced.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startServer,
  run,
  runFull,
  pidGone,
  sessionPid,
  pollUntil,
  dump,
  TEST_TIMEOUT,
  HOOK_TIMEOUT,
} from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

const BUSY_LOOP = 'import time\nwhile True: time.sleep(0.01)';
// A cell that swallows every KeyboardInterrupt. The inner loop has a real
// statement on its own line: on CPython 3.12 a one-line `while True: pass`
// inside `try` lets the interrupt escape the handler, so the cell would stop.
const STUBBORN_LOOP =
  'n = 0\nwhile True:\n    try:\n        while True:\n            n += 1\n    except KeyboardInterrupt:\n        pass';

describe('a cell that runs past its timeout and honours the interrupt', () => {
  let server;
  let client;

  before(async () => {
    server = await startServer();
    client = server.client;
  }, { timeout: HOOK_TIMEOUT });

  after(async () => {
    await server?.close();
  }, { timeout: HOOK_TIMEOUT });

  test('is interrupted with KeyboardInterrupt and the session keeps its variables', opts, async () => {
    const first = await run(client, 'x = 5');
    assert.equal(first.status, 'ok', dump(first));

    const result = await runFull(client, BUSY_LOOP, { session_id: first.session_id, timeout_s: 1 });
    assert.equal(result.isError, true, dump(result));
    const timedOut = result.structuredContent;
    assert.equal(timedOut.status, 'interrupted', dump(timedOut));
    assert.equal(timedOut.error?.type, 'KeyboardInterrupt', dump(timedOut));

    const after = await run(client, 'x', { session_id: first.session_id });
    assert.equal(after.status, 'ok', dump(after));
    assert.equal(after.result, '5');
    assert.equal(after.state_lost, false);
  });

  test('output printed before the interrupt is kept', opts, async () => {
    const sc = await run(client, `print("started", flush=True)\n${BUSY_LOOP}`, { timeout_s: 1 });
    assert.equal(sc.status, 'interrupted', dump(sc));
    assert.ok(sc.stdout.includes('started'), dump(sc));
  });

  test('a pure-Python busy loop without sleeps is interrupted as well', opts, async () => {
    const first = await run(client, 'y = 9');
    const sc = await run(client, 'while True: pass', { session_id: first.session_id, timeout_s: 1 });
    assert.equal(sc.status, 'interrupted', dump(sc));
    assert.equal(sc.error?.type, 'KeyboardInterrupt', dump(sc));
    const after = await run(client, 'y', { session_id: first.session_id });
    assert.equal(after.result, '9');
    assert.equal(after.state_lost, false);
  });

  test('a timeout in one session does not disturb another session', opts, async () => {
    const other = await run(client, 'z = "other"');
    const sc = await run(client, BUSY_LOOP, { timeout_s: 1 });
    assert.equal(sc.status, 'interrupted', dump(sc));
    const after = await run(client, 'z', { session_id: other.session_id });
    assert.equal(after.result, "'other'");
    assert.equal(after.state_lost, false);
  });
});

describe('a cell that ignores the interrupt (--grace 0.5)', () => {
  let server;
  let client;

  before(async () => {
    server = await startServer(['--grace', '0.5']);
    client = server.client;
  }, { timeout: HOOK_TIMEOUT });

  after(async () => {
    await server?.close();
  }, { timeout: HOOK_TIMEOUT });

  test('is killed, and the notice says the session state was lost', opts, async () => {
    const first = await run(client, 'x = 1');
    assert.equal(first.status, 'ok', dump(first));
    const workerPid = await sessionPid(client, first.session_id);

    const result = await runFull(client, STUBBORN_LOOP, { session_id: first.session_id, timeout_s: 1 });
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
    const first = await run(client, 'x = 1');
    const killed = await run(client, STUBBORN_LOOP, { session_id: first.session_id, timeout_s: 1 });
    assert.equal(killed.status, 'killed', dump(killed));

    const next = await runFull(client, "'x' in globals()", { session_id: first.session_id });
    assert.ok(!next.isError, dump(next));
    const sc = next.structuredContent;
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.session_id, first.session_id);
    assert.equal(sc.state_lost, true);
    assert.equal(sc.new_session, false);
    assert.equal(sc.result, 'False');
    assert.equal(typeof sc.notice, 'string', dump(sc));

    const later = await run(client, "'x' in globals()", { session_id: first.session_id });
    assert.equal(later.result, 'False');
    assert.equal(later.state_lost, false, 'state_lost is only reported once');
  });

  test('a killed session keeps working for new variables afterwards', opts, async () => {
    const first = await run(client, 'pass');
    await run(client, STUBBORN_LOOP, { session_id: first.session_id, timeout_s: 1 });
    await run(client, 'fresh = 3', { session_id: first.session_id });
    const sc = await run(client, 'fresh * 2', { session_id: first.session_id });
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, '6');
  });

  test('a cell that honours the interrupt is still only interrupted under a short grace period', opts, async () => {
    const first = await run(client, 'kept = 11');
    const sc = await run(client, BUSY_LOOP, { session_id: first.session_id, timeout_s: 1 });
    assert.equal(sc.status, 'interrupted', dump(sc));
    const after = await run(client, 'kept', { session_id: first.session_id });
    assert.equal(after.result, '11');
    assert.equal(after.state_lost, false);
  });
});

describe('the default cell timeout (--timeout 1)', () => {
  let server;
  let client;

  before(async () => {
    server = await startServer(['--timeout', '1']);
    client = server.client;
  }, { timeout: HOOK_TIMEOUT });

  after(async () => {
    await server?.close();
  }, { timeout: HOOK_TIMEOUT });

  test('a cell without timeout_s is interrupted at the server default', opts, async () => {
    const first = await run(client, 'x = 5');
    const sc = await run(client, BUSY_LOOP, { session_id: first.session_id });
    assert.equal(sc.status, 'interrupted', dump(sc));
    assert.equal(sc.error?.type, 'KeyboardInterrupt', dump(sc));
    const after = await run(client, 'x', { session_id: first.session_id });
    assert.equal(after.result, '5');
  });

  test('timeout_s on the call overrides the server default', opts, async () => {
    const sc = await run(client, "import time\ntime.sleep(3)\n'slept'", { timeout_s: 30 });
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, "'slept'");
  });
});
