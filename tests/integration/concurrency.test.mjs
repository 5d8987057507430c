// Cells of different sessions run at the same time.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';

import {
  startServer,
  run,
  uniqueTempPath,
  dump,
  TEST_TIMEOUT,
  HOOK_TIMEOUT,
} from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('concurrent sessions', () => {
  let server;
  let client;

  before(async () => {
    server = await startServer();
    client = server.client;
  }, { timeout: HOOK_TIMEOUT });

  after(async () => {
    await server?.close();
  }, { timeout: HOOK_TIMEOUT });

  test('a cell in one session can wait for a file that a cell in another session creates', opts, async () => {
    const path = uniqueTempPath('kiln-rendezvous');
    try {
      const waiter = run(
        client,
        [
          'import os, time',
          `path = ${JSON.stringify(path)}`,
          'deadline = time.monotonic() + 20',
          'while not os.path.exists(path) and time.monotonic() < deadline:',
          '    time.sleep(0.05)',
          'if not os.path.exists(path):',
          '    raise TimeoutError("the other session never created " + path)',
          "'found'",
        ].join('\n'),
        { timeout_s: 50 },
      );
      const creator = run(
        client,
        `open(${JSON.stringify(path)}, "w").close()\n'created'`,
        { timeout_s: 50 },
      );
      const [a, b] = await Promise.all([waiter, creator]);
      assert.equal(a.status, 'ok', dump(a));
      assert.equal(a.result, "'found'");
      assert.equal(b.status, 'ok', dump(b));
      assert.equal(b.result, "'created'");
      assert.notEqual(a.session_id, b.session_id);
    } finally {
      rmSync(path, { force: true });
    }
  });

  test('existing sessions run concurrently too, and each call gets its own result', opts, async () => {
    const path = uniqueTempPath('kiln-rendezvous');
    try {
      const a = await run(client, 'who = "a"');
      const b = await run(client, 'who = "b"');
      const waiter = run(
        client,
        [
          'import os, time',
          'deadline = time.monotonic() + 20',
          `while not os.path.exists(${JSON.stringify(path)}) and time.monotonic() < deadline:`,
          '    time.sleep(0.05)',
          'who',
        ].join('\n'),
        { session_id: a.session_id, timeout_s: 50 },
      );
      const creator = run(client, `open(${JSON.stringify(path)}, "w").close()\nwho`, {
        session_id: b.session_id,
        timeout_s: 50,
      });
      const [ra, rb] = await Promise.all([waiter, creator]);
      assert.equal(ra.status, 'ok', dump(ra));
      assert.equal(rb.status, 'ok', dump(rb));
      assert.equal(ra.result, "'a'");
      assert.equal(rb.result, "'b'");
      assert.equal(ra.session_id, a.session_id);
      assert.equal(rb.session_id, b.session_id);
    } finally {
      rmSync(path, { force: true });
    }
  });

  test('many short cells sent at once in separate sessions all complete with their own results', opts, async () => {
    const calls = [];
    for (let i = 0; i < 6; i += 1) {
      calls.push(run(client, `print(${i})\n${i} * 10`));
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
