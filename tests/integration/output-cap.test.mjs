// The per-cell output cap (--max-output): head and tail are kept, the middle
// is dropped and counted.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { useServer, run, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };
const MAX_OUTPUT = 10_000;
// Room for a truncation marker the server may insert where it dropped text.
const SLACK = 1_024;

describe('output cap with --max-output 10000', () => {
  const kiln = useServer({ args: ['--max-output', String(MAX_OUTPUT)] });

  test('stdout larger than the cap is cut down and the dropped byte count is reported', opts, async () => {
    const sc = await run(kiln.client, 'print("x"*100000)');
    assert.equal(sc.status, 'ok', dump({ ...sc, stdout: sc.stdout.slice(0, 200) }));
    assert.ok(sc.stdout.length <= MAX_OUTPUT + SLACK, `kept ${sc.stdout.length} characters`);
    assert.ok(sc.stdout_dropped > 0, `stdout_dropped: ${sc.stdout_dropped}`);
    const total = 100_001;
    assert.ok(
      sc.stdout_dropped + sc.stdout.length >= total && sc.stdout_dropped + sc.stdout.length <= total + SLACK,
      `kept ${sc.stdout.length} + dropped ${sc.stdout_dropped} does not account for ${total} bytes`,
    );
    assert.equal(sc.stderr_dropped, 0);
  });

  test('the kept stdout begins with the head and ends with the tail of the output', opts, async () => {
    const sc = await run(kiln.client, 'print("HEAD"); print("m"*200000); print("TAIL")');
    assert.equal(sc.status, 'ok', dump({ ...sc, stdout: sc.stdout.slice(0, 200) }));
    assert.ok(sc.stdout.startsWith('HEAD'), `stdout starts with ${JSON.stringify(sc.stdout.slice(0, 40))}`);
    assert.ok(sc.stdout.includes('TAIL'), `stdout ends with ${JSON.stringify(sc.stdout.slice(-40))}`);
    assert.ok(sc.stdout.trimEnd().endsWith('TAIL'), `stdout ends with ${JSON.stringify(sc.stdout.slice(-40))}`);
    assert.ok(sc.stdout.length <= MAX_OUTPUT + SLACK, `kept ${sc.stdout.length} characters`);
    assert.ok(sc.stdout_dropped > 0);
  });

  test('stderr larger than the cap is cut down and counted in stderr_dropped', opts, async () => {
    const sc = await run(kiln.client, 'import sys; sys.stderr.write("HEAD" + "e"*100000 + "TAIL")');
    assert.equal(sc.status, 'ok', dump({ ...sc, stderr: sc.stderr.slice(0, 200) }));
    assert.ok(sc.stderr.length <= MAX_OUTPUT + SLACK, `kept ${sc.stderr.length} characters`);
    assert.ok(sc.stderr_dropped > 0, `stderr_dropped: ${sc.stderr_dropped}`);
    assert.ok(sc.stderr.startsWith('HEAD'), JSON.stringify(sc.stderr.slice(0, 40)));
    assert.ok(sc.stderr.trimEnd().endsWith('TAIL'), JSON.stringify(sc.stderr.slice(-40)));
  });

  test('output written straight to file descriptor 1 is capped too', opts, async () => {
    const sc = await run(kiln.client, 'import os; os.write(1, b"z"*100000)');
    assert.equal(sc.status, 'ok', dump({ ...sc, stdout: sc.stdout.slice(0, 200) }));
    assert.ok(sc.stdout.length <= MAX_OUTPUT + SLACK, `kept ${sc.stdout.length} characters`);
    assert.ok(sc.stdout_dropped > 0);
  });

  test('a cell writing megabytes of output completes and the session stays usable', opts, async () => {
    const first = await run(kiln.client, 'for _ in range(50):\n    print("y" * 100000)\n"finished"');
    assert.equal(first.status, 'ok', dump({ ...first, stdout: first.stdout.slice(0, 200) }));
    assert.equal(first.result, "'finished'");
    assert.ok(first.stdout.length <= MAX_OUTPUT + SLACK);
    assert.ok(first.stdout_dropped > 0);
    const second = await run(kiln.client, 'print("small")', { session_id: first.session_id });
    assert.equal(second.stdout, 'small\n');
    assert.equal(second.stdout_dropped, 0);
  });

  test('gigabytes of output cost the front only the cap', opts, async () => {
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${kiln.pid}/status`, 'utf8'))[1]);
    const before = rss();
    const sc = await run(kiln.client, 'import os\nb = b"y" * (1 << 20)\nfor _ in range(2048): os.write(1, b)\n"done"', {
      timeout_s: 120,
    });
    assert.equal(sc.status, 'ok', dump({ ...sc, stdout: sc.stdout.slice(0, 200) }));
    assert.equal(sc.stdout_dropped, 2048 * (1 << 20) - MAX_OUTPUT);
    assert.ok(rss() - before < 64 * 1024, `the front grew by ${rss() - before} KiB`);
  });

  test('output under the cap is returned whole', opts, async () => {
    const sc = await run(kiln.client, 'print("k"*5000)');
    assert.equal(sc.stdout, `${'k'.repeat(5000)}\n`);
    assert.equal(sc.stdout_dropped, 0);
  });
});
