// Rich forms of what a cell shows: DataFrames and Series as Markdown tables
// for the model (HTML kept beside them), and the _repr_markdown_,
// _repr_latex_, _repr_json_ and _repr_svg_ forms of any object.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, runFull, run, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

/** The lines of a Markdown table at the start of TEXT, split into cells
    at the pipes that are not escaped. */
function tableRows(text) {
  return text
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .map((line) => line.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim()));
}

const textBlock = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

describe('rich display', () => {
  const kiln = useServer();

  describe('pandas', () => {
    test('a long DataFrame result is a Markdown table of its head and tail with the shape below', opts, async () => {
      const result = await runFull(
        kiln.client,
        'import pandas as pd\ndf = pd.DataFrame({"a": range(50000), "b": [1.5] * 50000, "c": ["x"] * 50000})\ndf',
      );
      const sc = result.structuredContent;
      assert.equal(sc.status, 'ok', dump(sc));
      const rows = tableRows(sc.result);
      assert.deepEqual(rows[0], ['', 'a', 'b', 'c']);
      assert.deepEqual(rows[1], ['---', '---:', '---:', '---']);
      // 10 rows, an ellipsis row, 10 rows.
      assert.equal(rows.length, 2 + 10 + 1 + 10, sc.result);
      assert.deepEqual(rows[2], ['0', '0', '1.5', 'x']);
      assert.deepEqual(rows[12], ['…', '…', '…', '…']);
      assert.deepEqual(rows[13], ['49990', '49990', '1.5', 'x']);
      assert.deepEqual(rows.at(-1), ['49999', '49999', '1.5', 'x']);
      assert.match(sc.result, /\n\n\[50000 rows x 3 columns\]$/);
      // The model reads the table in the text block, once.
      const text = textBlock(result);
      assert.ok(text.includes(sc.result), text);
      assert.equal(text.split('[50000 rows x 3 columns]').length, 2, text);
      // The HTML form stays for a client that renders it.
      assert.ok(sc.display.some((d) => d.mime === 'text/html' && /<table/.test(d.text)), dump(sc.display));
    });

    test('a short DataFrame is shown whole, with no ellipsis row', opts, async () => {
      const sc = await run(kiln.client, 'import pandas as pd\npd.DataFrame({"alpha": [1, 2], "beta": ["p", "q"]})');
      assert.equal(sc.result, '|  | alpha | beta |\n|---|---:|---|\n| 0 | 1 | p |\n| 1 | 2 | q |\n\n[2 rows x 2 columns]');
    });

    test('a wide DataFrame shows its first and last columns with an ellipsis column between', opts, async () => {
      const sc = await run(kiln.client, 'import pandas as pd\npd.DataFrame([list(range(30))], columns=[f"c{i}" for i in range(30)])');
      const [header, , row] = tableRows(sc.result);
      const first = Array.from({ length: 10 }, (_, i) => `c${i}`);
      const last = Array.from({ length: 10 }, (_, i) => `c${20 + i}`);
      assert.deepEqual(header, ['', ...first, '…', ...last]);
      assert.equal(row[11], '…');
      assert.equal(row[12], '20');
      assert.match(sc.result, /\[1 rows x 30 columns\]$/);
    });

    test('a long Series is a Markdown table with its name, length and dtype below', opts, async () => {
      const sc = await run(kiln.client, 'import pandas as pd\npd.Series(range(50000), name="x")');
      const rows = tableRows(sc.result);
      assert.deepEqual(rows[0], ['', 'x']);
      assert.equal(rows.length, 2 + 10 + 1 + 10, sc.result);
      assert.match(sc.result, /\n\nName: x, Length: 50000, dtype: int64$/);
    });

    test('pipes and line breaks in values and labels do not break the table', opts, async () => {
      const sc = await run(kiln.client, 'import pandas as pd\npd.DataFrame({"a|b": ["x|y", "two\\nlines"]})');
      const rows = tableRows(sc.result);
      assert.deepEqual(rows[0], ['', 'a\\|b']);
      assert.deepEqual(rows[2], ['0', 'x\\|y']);
      assert.deepEqual(rows[3], ['1', 'two\\nlines']);
      assert.equal(sc.result.split('\n').length, 2 + 2 + 2, sc.result);
    });

    test('display(df) shows the Markdown table and the HTML, and no plain-text copy', opts, async () => {
      const result = await runFull(kiln.client, 'import pandas as pd\ndisplay(pd.DataFrame({"alpha": [1, 2]}))');
      const sc = result.structuredContent;
      assert.equal(sc.result, null);
      const mimes = sc.display.map((d) => d.mime).sort();
      assert.deepEqual(mimes, ['text/html', 'text/markdown'], dump(sc.display));
      const md = sc.display.find((d) => d.mime === 'text/markdown').text;
      assert.match(md, /^\|  \| alpha \|\n/);
      assert.match(md, /\[2 rows x 1 columns\]$/);
      assert.ok(textBlock(result).includes(md), textBlock(result));
    });

    test('the table needs no tabulate package', opts, async () => {
      const sc = await run(kiln.client, 'import sys, pandas as pd\nsys.modules["tabulate"] = None\npd.DataFrame({"alpha": [1]})');
      assert.equal(sc.status, 'ok', dump(sc));
      assert.equal(sc.stderr, '', dump(sc));
      assert.deepEqual(tableRows(sc.result)[2], ['0', '1']);
    });
  });

  describe('_repr_*_ forms', () => {
    const rich = [
      'class Rich:',
      '    def _repr_markdown_(self): return "**bold** text"',
      '    def _repr_latex_(self): return r"$x^2 + y$"',
      '    def _repr_json_(self): return {"a": [1, 2]}',
      '    def __repr__(self): return "Rich()"',
    ].join('\n');

    test('a result with _repr_markdown_ has its Markdown as the result', opts, async () => {
      const result = await runFull(kiln.client, `${rich}\nRich()`);
      const sc = result.structuredContent;
      assert.equal(sc.result, '**bold** text');
      assert.match(textBlock(result), /\*\*bold\*\* text/);
    });

    test('_repr_latex_ and _repr_json_ become text/latex and application/json forms', opts, async () => {
      const sc = await run(kiln.client, `${rich}\ndisplay(Rich())`);
      const form = (mime) => sc.display.find((d) => d.mime === mime)?.text;
      assert.equal(form('text/latex'), '$x^2 + y$', dump(sc.display));
      assert.deepEqual(JSON.parse(form('application/json')), { a: [1, 2] });
      assert.equal(form('text/markdown'), '**bold** text');
    });

    test('_repr_svg_ is an image: image content of type image/svg+xml, kept as an artifact', opts, async () => {
      const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="30pt" height="12"><rect width="5" height="5"/></svg>';
      const result = await runFull(kiln.client, `class Pic:\n    def _repr_svg_(self): return ${JSON.stringify(svg)}\nPic()`);
      const images = result.content.filter((c) => c.type === 'image');
      assert.equal(images.length, 1, dump(result));
      assert.equal(images[0].mimeType, 'image/svg+xml');
      assert.equal(Buffer.from(images[0].data, 'base64').toString('utf8'), svg);
      const [meta] = result.structuredContent.artifacts;
      assert.equal(meta.mime, 'image/svg+xml');
      assert.match(meta.name, /\.svg$/);
      assert.deepEqual([meta.width, meta.height], [40, 12]);
      const read = await kiln.client.readResource({ uri: meta.uri });
      assert.equal(read.contents[0].mimeType, 'image/svg+xml');
      assert.equal(Buffer.from(read.contents[0].blob, 'base64').toString('utf8'), svg);
    });
  });
});
