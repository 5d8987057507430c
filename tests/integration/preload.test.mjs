// --preload chooses which modules every worker has imported before its first cell.

import { describe, test } from 'node:test';

import { useServer, expectResult, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('--preload colorsys', () => {
  const kiln = useServer({ args: ['--preload', 'colorsys'] });

  test('the listed module is imported before the first cell', opts, async () => {
    await expectResult(kiln.client, "import sys; 'colorsys' in sys.modules", 'True');
  });

  test('modules of the default preload list that were not asked for are not imported', opts, async () => {
    await expectResult(kiln.client, "import sys; [m for m in ('numpy', 'matplotlib', 'PIL', 'pandas') if m in sys.modules]", '[]');
  });

  test('modules that were not preloaded can still be imported by a cell', opts, async () => {
    await expectResult(kiln.client, 'import numpy\nint(numpy.arange(4).sum())', '6');
  });
});
