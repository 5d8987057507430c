// Notebook semantics that go beyond "exec the cell": top-level await on one
// event loop per session.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, run, dump, TEST_TIMEOUT, HOOK_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('top-level await', () => {
  let server;
  let client;

  before(async () => {
    server = await startServer();
    client = server.client;
  }, { timeout: HOOK_TIMEOUT });

  after(async () => {
    await server?.close();
  }, { timeout: HOOK_TIMEOUT });

  test('a task made with ensure_future can be awaited later in the same cell', opts, async () => {
    const sc = await run(
      client,
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
      client,
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
    const second = await run(client, 'await pending', { session_id: sid });
    assert.equal(second.status, 'ok', dump(second));
    assert.equal(second.result, "'later'");
    // The ticker ran while the loop ran the second cell.
    const third = await run(client, 'ticks > 5 and not background.done()', { session_id: sid });
    assert.equal(third.result, 'True', dump(third));
    await run(client, 'background.cancel()', { session_id: sid });
  });

  test('every cell of a session runs on the same loop, and the last expression runs on it too', opts, async () => {
    const first = await run(client, 'import asyncio\nawait asyncio.sleep(0)\nfirst_loop = asyncio.get_running_loop()');
    assert.equal(first.status, 'ok', dump(first));
    const sid = first.session_id;
    const second = await run(client, 'await asyncio.sleep(0)\nasyncio.get_running_loop() is first_loop', { session_id: sid });
    assert.equal(second.status, 'ok', dump(second));
    assert.equal(second.result, 'True');
  });

  test('outside a coroutine, get_event_loop() and ensure_future() use the session loop', opts, async () => {
    const first = await run(client, 'import asyncio\nawait asyncio.sleep(0)\nsession_loop = asyncio.get_running_loop()');
    const sid = first.session_id;
    const same = await run(client, 'asyncio.get_event_loop() is session_loop', { session_id: sid });
    assert.equal(same.status, 'ok', dump(same));
    assert.equal(same.result, 'True');
    const made = await run(
      client,
      'async def two():\n    return 2\nfuture = asyncio.ensure_future(two())\nfuture.get_loop() is session_loop',
      { session_id: sid },
    );
    assert.equal(made.status, 'ok', dump(made));
    assert.equal(made.result, 'True');
    const awaited = await run(client, 'await future', { session_id: sid });
    assert.equal(awaited.status, 'ok', dump(awaited));
    assert.equal(awaited.result, '2');
  });

  test('a cell without await does not run inside an event loop', opts, async () => {
    const sc = await run(
      client,
      'import asyncio\ntry:\n    asyncio.get_running_loop()\n    where = "in a loop"\nexcept RuntimeError:\n    where = "plain"\nwhere',
    );
    assert.equal(sc.result, "'plain'", dump(sc));
  });

  test('an interrupted async cell does not resume in a later cell', opts, async () => {
    const first = await run(client, 'import asyncio\nresumed = False');
    const sid = first.session_id;
    const stopped = await run(client, 'await asyncio.sleep(0.6)\nresumed = True', { session_id: sid, timeout_s: 0.2 });
    assert.equal(stopped.status, 'interrupted', dump(stopped));
    const later = await run(client, 'await asyncio.sleep(0.8)\nresumed', { session_id: sid });
    assert.equal(later.status, 'ok', dump(later));
    assert.equal(later.result, 'False');
  });

  test('an error inside an async cell is reported with the cell line', opts, async () => {
    const sc = await run(client, 'import asyncio\nawait asyncio.sleep(0)\nraise ValueError("async boom")');
    assert.equal(sc.status, 'error', dump(sc));
    assert.equal(sc.error.type, 'ValueError');
    assert.match(sc.error.traceback, /<cell \d+>", line 3/);
    assert.doesNotMatch(sc.error.traceback, /kiln_runtime|base_events/);
  });
});
