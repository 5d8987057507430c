// --preload chooses which modules every worker has imported before its first cell.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, run, dump, TEST_TIMEOUT, HOOK_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('--preload colorsys', () => {
  let server;

  before(async () => {
    server = await startServer(['--preload', 'colorsys']);
  }, { timeout: HOOK_TIMEOUT });

  after(async () => {
    await server?.close();
  }, { timeout: HOOK_TIMEOUT });

  test('the listed module is imported before the first cell', opts, async () => {
    const sc = await run(server.client, "import sys; 'colorsys' in sys.modules");
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, 'True');
  });

  test('modules of the default preload list that were not asked for are not imported', opts, async () => {
    const sc = await run(
      server.client,
      "import sys; [m for m in ('numpy', 'matplotlib', 'PIL', 'pandas') if m in sys.modules]",
    );
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, '[]');
  });

  test('modules that were not preloaded can still be imported by a cell', opts, async () => {
    const sc = await run(server.client, 'import numpy\nint(numpy.arange(4).sum())');
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, '6');
  });
});
