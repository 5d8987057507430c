// Notebook semantics that go beyond "exec the cell": top-level await on one
// event loop per session, rich display forms that raise, and cells that end
// right at their deadline.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, runFull, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('top-level await', () => {
  const kiln = useServer();

  test('a task made with ensure_future can be awaited later in the same cell', opts, async () => {
    const sc = await run(
      kiln.client,
      [
        'import asyncio',
        'async def answer():',
        '    await asyncio.sleep(0.01)',
        '    return 42',
        't = asyncio.ensure_future(answer())',
        'await t',
      ].join('\n'),
    );
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, '42');
  });

  test('a task created in one cell keeps running and can be awaited in a later cell', opts, async () => {
    const first = await run(
      kiln.client,
      [
        'import asyncio',
        'ticks = 0',
        'async def ticker():',
        '    global ticks',
        '    while ticks < 1000:',
        '        ticks += 1',
        '        await asyncio.sleep(0.005)',
        'async def slow():',
        '    await asyncio.sleep(0.2)',
        '    return "later"',
        'background = asyncio.create_task(ticker())',
        'pending = asyncio.create_task(slow())',
        'await asyncio.sleep(0)',
      ].join('\n'),
    );
    assert.equal(first.status, 'ok', dump(first));
    const sid = first.session_id;
    const second = await run(kiln.client, 'await pending', { session_id: sid });
    assert.equal(second.status, 'ok', dump(second));
    assert.equal(second.result, "'later'");
    // The ticker ran while the loop ran the second cell.
    const third = await run(kiln.client, 'ticks > 5 and not background.done()', { session_id: sid });
    assert.equal(third.result, 'True', dump(third));
    await run(kiln.client, 'background.cancel()', { session_id: sid });
  });

  test('every cell of a session runs on the same loop, and the last expression runs on it too', opts, async () => {
    const first = await run(kiln.client, 'import asyncio\nawait asyncio.sleep(0)\nfirst_loop = asyncio.get_running_loop()');
    assert.equal(first.status, 'ok', dump(first));
    const sid = first.session_id;
    const second = await run(kiln.client, 'await asyncio.sleep(0)\nasyncio.get_running_loop() is first_loop', { session_id: sid });
    assert.equal(second.status, 'ok', dump(second));
    assert.equal(second.result, 'True');
  });

  test('outside a coroutine, get_event_loop() and ensure_future() use the session loop', opts, async () => {
    const first = await run(kiln.client, 'import asyncio\nawait asyncio.sleep(0)\nsession_loop = asyncio.get_running_loop()');
    const sid = first.session_id;
    const same = await run(kiln.client, 'asyncio.get_event_loop() is session_loop', { session_id: sid });
    assert.equal(same.status, 'ok', dump(same));
    assert.equal(same.result, 'True');
    const made = await run(
      kiln.client,
      'async def two():\n    return 2\nfuture = asyncio.ensure_future(two())\nfuture.get_loop() is session_loop',
      { session_id: sid },
    );
    assert.equal(made.status, 'ok', dump(made));
    assert.equal(made.result, 'True');
    const awaited = await run(kiln.client, 'await future', { session_id: sid });
    assert.equal(awaited.status, 'ok', dump(awaited));
    assert.equal(awaited.result, '2');
  });

  test('a cell without await does not run inside an event loop', opts, async () => {
    const sc = await run(
      kiln.client,
      'import asyncio\ntry:\n    asyncio.get_running_loop()\n    where = "in a loop"\nexcept RuntimeError:\n    where = "plain"\nwhere',
    );
    assert.equal(sc.result, "'plain'", dump(sc));
  });

  test('an interrupted async cell does not resume in a later cell', opts, async () => {
    const first = await run(kiln.client, 'import asyncio\nresumed = False');
    const sid = first.session_id;
    const stopped = await run(kiln.client, 'await asyncio.sleep(0.6)\nresumed = True', { session_id: sid, timeout_s: 0.2 });
    assert.equal(stopped.status, 'interrupted', dump(stopped));
    const later = await run(kiln.client, 'await asyncio.sleep(0.8)\nresumed', { session_id: sid });
    assert.equal(later.status, 'ok', dump(later));
    assert.equal(later.result, 'False');
  });

  test('an error inside an async cell is reported with the cell line', opts, async () => {
    const sc = await run(kiln.client, 'import asyncio\nawait asyncio.sleep(0)\nraise ValueError("async boom")');
    assert.equal(sc.status, 'error', dump(sc));
    assert.equal(sc.error.type, 'ValueError');
    assert.match(sc.error.traceback, /<cell \d+>", line 3/);
    assert.doesNotMatch(sc.error.traceback, /kiln_runtime|base_events/);
  });
});

describe('rich display forms that raise', () => {
  const kiln = useServer();

  const BROKEN = [
    'class Broken:',
    '    def _repr_png_(self):',
    '        raise ValueError("png is broken")',
    '    def _repr_html_(self):',
    '        raise ValueError("html is broken")',
    '    def _repr_markdown_(self):',
    '        raise ValueError("markdown is broken")',
    '    def __repr__(self):',
    '        return "Broken()"',
  ].join('\n');

  test('display() of an object whose rich forms raise shows its repr and the cell stays ok', opts, async () => {
    const sc = await run(kiln.client, `${BROKEN}\ndisplay(Broken())\n'after'`);
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, "'after'");
    assert.ok(sc.display.some((d) => d.mime === 'text/plain' && d.text === 'Broken()'), dump(sc.display));
    assert.match(sc.stderr, /_repr_png_.*ValueError: png is broken/);
    assert.match(sc.stderr, /_repr_html_.*ValueError: html is broken/);
    assert.match(sc.stderr, /_repr_markdown_.*ValueError: markdown is broken/);
  });

  test('a last expression whose rich forms raise is its repr and the cell stays ok', opts, async () => {
    const sc = await run(kiln.client, `${BROKEN}\nBroken()`);
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, 'Broken()');
    assert.match(sc.stderr, /_repr_png_.*ValueError: png is broken/);
  });

  test('a raising rich form falls back to the next one', opts, async () => {
    const sc = await run(
      kiln.client,
      [
        'class Half:',
        '    def _repr_png_(self):',
        '        raise RuntimeError("no png today")',
        '    def _repr_html_(self):',
        '        return "<b>half</b>"',
        'display(Half())',
      ].join('\n'),
    );
    assert.equal(sc.status, 'ok', dump(sc));
    assert.ok(sc.display.some((d) => d.mime === 'text/html' && d.text === '<b>half</b>'), dump(sc.display));
    assert.match(sc.stderr, /_repr_png_.*RuntimeError: no png today/);
  });

  test('a last expression whose __repr__ raises gives a short text, a note on stderr and status ok', opts, async () => {
    const sc = await run(kiln.client, 'class NoRepr:\n    def __repr__(self):\n        raise ValueError("no repr here")\nNoRepr()');
    assert.equal(sc.status, 'ok', dump(sc));
    assert.match(sc.result, /^<repr of .*NoRepr raised ValueError: no repr here>$/);
    assert.match(sc.stderr, /NoRepr.*ValueError: no repr here/);
  });

  test('display() of an object whose __repr__ raises keeps the cell ok', opts, async () => {
    const sc = await run(
      kiln.client,
      'class NoRepr:\n    def __repr__(self):\n        raise ValueError("no repr here")\ndisplay(NoRepr())\nprint("still running")',
    );
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.stdout, 'still running\n');
    assert.ok(sc.display.some((d) => /^<repr of .*NoRepr raised ValueError: no repr here>$/.test(d.text)), dump(sc.display));
  });
});

describe('cells that end at their deadline', () => {
  const kiln = useServer();

  // The interrupt sent at the deadline lands anywhere from the end of the
  // user's code to the start of the next cell: in kiln's own work it must
  // be dropped, never become an internal error or hit the next cell.
  // Files under /work make kiln's end-of-cell scan, and so that window,
  // longer.
  test('200 cells with a deadline equal to their run time are each ok or interrupted', { timeout: 120_000 }, async () => {
    const first = await run(
      kiln.client,
      'import os, time\nos.makedirs("many", exist_ok=True)\nfor i in range(3000):\n    open(f"many/{i}", "w").close()\nmarker = "alive"',
    );
    assert.equal(first.status, 'ok', dump(first));
    const sid = first.session_id;
    const counts = { ok: 0, interrupted: 0 };
    const bad = [];
    for (let i = 0; i < 200; i++) {
      const sc = await run(kiln.client, 'import time; time.sleep(0.05)', { session_id: sid, timeout_s: 0.05 });
      if (sc.state_lost || sc.error?.type === 'KilnInternalError' || !(sc.status in counts)) bad.push(sc);
      else counts[sc.status]++;
      if (sc.status === 'interrupted' && sc.error?.type !== 'KeyboardInterrupt') bad.push(sc);
    }
    assert.deepEqual(bad, [], `counts ${JSON.stringify(counts)}; ${dump(bad.slice(0, 3))}`);
    const after = await run(kiln.client, 'marker', { session_id: sid });
    assert.equal(after.status, 'ok', dump(after));
    assert.equal(after.result, "'alive'");
  });

  test('a figure drawn before the deadline is captured even when the interrupt comes during capture', { timeout: 120_000 }, async () => {
    const first = await run(kiln.client, 'import time\nimport matplotlib.pyplot as plt');
    const sid = first.session_id;
    const lost = [];
    const counts = { ok: 0, interrupted: 0 };
    for (let i = 0; i < 60; i++) {
      const result = await runFull(
        kiln.client,
        // A large figure makes the capture long; the cell's code takes
        // its whole 0.05 s, so the deadline falls in or near the capture.
        't0 = time.perf_counter()\nplt.figure(figsize=(6, 6), dpi=100)\nplt.plot(range(1000))\n'
          + 'time.sleep(max(0.0, 0.05 - (time.perf_counter() - t0)))',
        { session_id: sid, timeout_s: 0.05 },
      );
      const sc = result.structuredContent;
      if (sc.status in counts) counts[sc.status]++;
      const images = result.content.filter((c) => c.type === 'image');
      if (sc.state_lost || !(sc.status in counts) || images.length !== 1) lost.push(sc);
    }
    assert.deepEqual(lost, [], `counts ${JSON.stringify(counts)}; ${dump(lost.slice(0, 3))}`);
  });

  test('an interrupt that arrives after a cell has finished does not hit the next cell', opts, async () => {
    const first = await run(kiln.client, 'import time\nn = 0');
    const sid = first.session_id;
    for (let i = 0; i < 40; i++) {
      await run(kiln.client, 'time.sleep(0.02)', { session_id: sid, timeout_s: 0.02 });
      // A cell far from any deadline: only a stale interrupt could stop it.
      const sc = await run(kiln.client, 'n += 1\nsum(range(20000))\nn', { session_id: sid, timeout_s: 30 });
      assert.equal(sc.status, 'ok', dump(sc));
    }
  });
});
