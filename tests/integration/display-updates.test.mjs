// What a cell's reply shows after it updated or cleared its displays:
// what a notebook would show at the end.  An updated display holds its
// latest content in its first place; clear_output leaves out what was
// shown before it (its printed text stays: the reply's text is the
// cell's log).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, runFull, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

const textBlock = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

describe('display updates and clear_output', () => {
  const kiln = useServer();

  test('an updated display shows its latest content in its original place', opts, async () => {
    const result = await runFull(
      kiln.client,
      [
        'from IPython.display import display, update_display, HTML',
        "print('before')",
        "h = display(HTML('<i>first</i>'), display_id=True)",
        "print('after')",
        "h.update(HTML('<i>second</i>'))",
        "display('other')",
        "update_display(HTML('<i>third</i>'), display_id=h.display_id)",
      ].join('\n'),
    );
    const sc = result.structuredContent;
    assert.equal(sc.status, 'ok', dump(sc));
    const html = sc.display.filter((d) => d.mime === 'text/html').map((d) => d.text);
    assert.deepEqual(html, ['<i>third</i>'], dump(sc.display));
    const plain = sc.display.filter((d) => d.mime === 'text/plain').map((d) => d.text);
    assert.deepEqual(plain, ['<IPython.core.display.HTML object>', "'other'"], dump(sc.display));
    // In the text the model reads, the display sits between the lines
    // printed around it, before the one shown later.
    const text = textBlock(result);
    const at = (s) => text.indexOf(s);
    assert.ok(at('before') >= 0 && at('before') < at('<IPython.core.display.HTML object>'), text);
    assert.ok(at('<IPython.core.display.HTML object>') < at('after'), text);
    assert.ok(at('after') < at("'other'"), text);
  });

  test('clear_output leaves out of the reply what was shown before it, and keeps the text', opts, async () => {
    const sc = (
      await runFull(
        kiln.client,
        [
          'from IPython.display import clear_output',
          "display('gone')",
          "print('printed')",
          'clear_output()',
          "display('kept')",
        ].join('\n'),
      )
    ).structuredContent;
    assert.equal(sc.status, 'ok', dump(sc));
    assert.deepEqual(sc.display.map((d) => d.text), ["'kept'"], dump(sc.display));
    assert.equal(sc.stdout, 'printed\n', dump(sc));
  });

  test('clear_output(wait=True) clears once the next display comes, as a notebook does', opts, async () => {
    const sc = (
      await runFull(
        kiln.client,
        [
          'from IPython.display import clear_output',
          'for i in range(3):',
          '    clear_output(wait=True)',
          '    display(f"step {i}")',
        ].join('\n'),
      )
    ).structuredContent;
    assert.equal(sc.status, 'ok', dump(sc));
    assert.deepEqual(sc.display.map((d) => d.text), ["'step 2'"], dump(sc.display));
  });

  test('clear_output(wait=True) with nothing shown after it keeps what was shown', opts, async () => {
    const sc = (
      await runFull(kiln.client, "from IPython.display import clear_output\ndisplay('still here')\nclear_output(wait=True)")
    ).structuredContent;
    assert.deepEqual(sc.display.map((d) => d.text), ["'still here'"], dump(sc.display));
  });
});
