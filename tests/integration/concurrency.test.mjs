// Cells of different sessions run at the same time.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('concurrent sessions', () => {
  const kiln = useServer();

  test('a cell in another session is answered while a long cell is still running', opts, async () => {
    // Sessions cannot see each other (each has its own /tmp and /work), so
    // concurrency shows in the order of the replies, not in shared files.
    let slowDone = false;
    const slow = run(kiln.client, 'import time\ntime.sleep(8)\n"slow"', { timeout_s: 50 }).then((r) => {
      slowDone = true;
      return r;
    });
    const fast = await run(kiln.client, '"fast"', { timeout_s: 50 });
    assert.equal(fast.status, 'ok', dump(fast));
    assert.equal(fast.result, "'fast'");
    assert.equal(slowDone, false, 'the second session was answered only after the first one finished');
    const s = await slow;
    assert.equal(s.status, 'ok', dump(s));
    assert.equal(s.result, "'slow'");
    assert.notEqual(s.session_id, fast.session_id);
  });

  test('existing sessions run concurrently too, and each call gets its own result', opts, async () => {
    const a = await run(kiln.client, 'who = "a"');
    const b = await run(kiln.client, 'who = "b"');
    let slowDone = false;
    const slow = run(kiln.client, 'import time\ntime.sleep(8)\nwho', { session_id: a.session_id, timeout_s: 50 }).then(
      (r) => {
        slowDone = true;
        return r;
      },
    );
    const rb = await run(kiln.client, 'who', { session_id: b.session_id, timeout_s: 50 });
    assert.equal(slowDone, false, 'session b waited for session a');
    const ra = await slow;
    assert.equal(ra.status, 'ok', dump(ra));
    assert.equal(rb.status, 'ok', dump(rb));
    assert.equal(ra.result, "'a'");
    assert.equal(rb.result, "'b'");
    assert.equal(ra.session_id, a.session_id);
    assert.equal(rb.session_id, b.session_id);
  });

  test('many short cells sent at once in separate sessions all complete with their own results', opts, async () => {
    const calls = [];
    for (let i = 0; i < 6; i += 1) {
      calls.push(run(kiln.client, `print(${i})\n${i} * 10`));
    }
    const results = await Promise.all(calls);
    results.forEach((sc, i) => {
      assert.equal(sc.status, 'ok', dump(sc));
      assert.equal(sc.result, String(i * 10));
      assert.equal(sc.stdout, `${i}\n`);
    });
    assert.equal(new Set(results.map((sc) => sc.session_id)).size, results.length);
  });
});
