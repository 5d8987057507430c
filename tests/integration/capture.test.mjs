// What a cell shows comes back: figures, PIL images and display() as MCP
// image content (checked with an independent decoder, PIL in kiln's venv),
// kept as artifacts the client can read as resources.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';

import { useServer, withServer, runFull, run, dump, KILN_BIN, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };
const VENV_PYTHON = join(dirname(KILN_BIN), '..', '.venv', 'bin', 'python3');

/** Decodes PNG bytes with PIL: { width, height, mode, format }. */
function decode(bytes) {
  const r = spawnSync(
    VENV_PYTHON,
    ['-c', 'import sys, io, json, PIL.Image as I; im = I.open(io.BytesIO(sys.stdin.buffer.read())); im.load(); '
      + 'print(json.dumps({"width": im.width, "height": im.height, "mode": im.mode, "format": im.format}))'],
    { input: bytes, encoding: 'buffer' },
  );
  assert.equal(r.status, 0, `PIL could not decode the image: ${r.stderr}`);
  return JSON.parse(r.stdout.toString());
}

const images = (result) => result.content.filter((c) => c.type === 'image');

/** The first image content of RESULT, and what PIL makes of it. */
function firstImage(result) {
  const [img] = images(result);
  assert.ok(img, dump(result));
  return { img, decoded: decode(Buffer.from(img.data, 'base64')) };
}

describe('capture', () => {
  const kiln = useServer();

  test('a figure never shown is captured as a valid PNG of its pixel size', opts, async () => {
    const result = await runFull(kiln.client, 'import matplotlib.pyplot as plt\nfig = plt.figure(figsize=(4, 3), dpi=50)\nplt.plot([1, 3, 2])');
    assert.equal(result.isError, false, dump(result));
    const { img, decoded } = firstImage(result);
    assert.equal(img.mimeType, 'image/png');
    assert.deepEqual(decoded, { width: 200, height: 150, mode: 'RGB', format: 'PNG' });
    const [meta] = result.structuredContent.artifacts;
    assert.equal(meta.width, 200);
    assert.equal(meta.height, 150);
    assert.match(meta.uri, /^kiln:\/\/sessions\/[0-9a-f]+\/artifacts\//);
  });

  test('two figures with one show() come back as two images, in order', opts, async () => {
    const result = await runFull(
      kiln.client,
      'import matplotlib.pyplot as plt\nplt.figure(figsize=(2, 1), dpi=100)\nplt.plot([1, 2])\nplt.figure(figsize=(3, 1), dpi=100)\nplt.plot([2, 1])\nplt.show()\nprint("after")',
    );
    const sizes = images(result).map((i) => decode(Buffer.from(i.data, 'base64')).width);
    assert.deepEqual(sizes, [200, 300]);
    assert.equal(result.structuredContent.stdout, 'after\n');
  });

  test('a figure is not sent again by the next cell', opts, async () => {
    const first = await run(kiln.client, 'import matplotlib.pyplot as plt\nplt.plot([1, 2])');
    assert.equal(first.artifacts.length, 1, dump(first));
    const second = await runFull(kiln.client, 'x = 1', { session_id: first.session_id });
    assert.deepEqual(images(second), []);
    assert.deepEqual(second.structuredContent.artifacts, []);
  });

  test('PIL Image.show() captures the image', opts, async () => {
    const result = await runFull(kiln.client, 'from PIL import Image\nImage.new("RGB", (37, 21), (200, 30, 30)).show()');
    const { decoded } = firstImage(result);
    assert.deepEqual([decoded.width, decoded.height], [37, 21]);
  });

  test('display() of an object with _repr_png_ shows its PNG', opts, async () => {
    const result = await runFull(
      kiln.client,
      [
        'import io',
        'from PIL import Image',
        'class Chart:',
        '    def _repr_png_(self):',
        '        b = io.BytesIO(); Image.new("RGB", (9, 7), "blue").save(b, "PNG"); return b.getvalue()',
        'display(Chart())',
      ].join('\n'),
    );
    assert.equal(firstImage(result).decoded.width, 9);
  });

  test('a DataFrame result is a text table for the model, with HTML among the display forms', opts, async () => {
    const result = await runFull(kiln.client, 'import pandas as pd\npd.DataFrame({"alpha": [1, 2], "beta": [3, 4]})');
    const sc = result.structuredContent;
    assert.match(sc.result, /\| alpha \| beta \|\n.*\n\| 0 \| 1 \| 3 \|\n\| 1 \| 2 \| 4 \|/);
    assert.match(result.content[0].text, /\| alpha \| beta \|/);
    assert.ok(sc.display.some((d) => d.mime === 'text/html' && /<table/.test(d.text)), dump(sc.display));
  });

  test('the encoder reproduces the pixels of palette, RGB and RGBA images exactly (PIL decodes them)', opts, async () => {
    const sc = await run(
      kiln.client,
      [
        'import _kiln_png, io, numpy as np',
        'from PIL import Image',
        'rng = np.random.default_rng(7)',
        'def check(arr):',
        '    h, w = arr.shape[:2]',
        '    png, kind = _kiln_png.encode(arr.tobytes(), w, h)',
        '    back = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))',
        '    return kind, bool((back == arr).all())',
        'few = rng.integers(0, 5, (40, 30))',
        'pal = np.stack([few * 50, few * 20, 255 - few * 10, np.full_like(few, 255)], -1).astype(np.uint8)',
        'rgb = rng.integers(0, 256, (33, 17, 4), dtype=np.uint8); rgb[..., 3] = 255',
        'rgba = rng.integers(0, 256, (40, 41, 4), dtype=np.uint8)',
        'two = np.zeros((5, 9, 4), np.uint8); two[..., 3] = 255; two[2] = 255',
        '[check(a) for a in (pal, rgb, rgba, two)]',
      ].join('\n'),
    );
    assert.equal(sc.result, "[('palette', True), ('rgb', True), ('rgba', True), ('palette', True)]", dump(sc));
  });

  test('a large figure is sent downscaled, with the full size kept as the artifact', opts, async () => {
    const result = await runFull(kiln.client, 'import matplotlib.pyplot as plt\nplt.figure(figsize=(20, 10), dpi=100)\nplt.plot([1, 2])');
    assert.equal(firstImage(result).decoded.width, 1568);
    const [meta] = result.structuredContent.artifacts;
    assert.equal(meta.width, 2000);
    const read = await kiln.client.readResource({ uri: meta.uri });
    const full = decode(Buffer.from(read.contents[0].blob, 'base64'));
    assert.deepEqual([full.width, full.height], [2000, 1000]);
  });

  test('past the per-reply cap, images come as resource links', opts, async () => {
    const result = await runFull(
      kiln.client,
      'import matplotlib.pyplot as plt\nfor i in range(11):\n    plt.figure(figsize=(1, 1), dpi=30); plt.plot([i, 0])',
    );
    assert.equal(images(result).length, 8);
    const links = result.content.filter((c) => c.type === 'resource_link');
    assert.equal(links.length, 3);
    assert.equal(result.structuredContent.artifacts.length, 11);
    const read = await kiln.client.readResource({ uri: links[0].uri });
    assert.equal(decode(Buffer.from(read.contents[0].blob, 'base64')).width, 30);
  });

  test('artifacts are listed as resources, with a URI template, and read back byte for byte', opts, async () => {
    const result = await runFull(kiln.client, 'import matplotlib.pyplot as plt\nplt.figure(figsize=(1, 1), dpi=40)\nplt.plot([1])');
    const [img] = images(result);
    const [meta] = result.structuredContent.artifacts;
    const listed = await kiln.client.listResources();
    assert.ok(listed.resources.some((r) => r.uri === meta.uri), dump(listed));
    const read = await kiln.client.readResource({ uri: meta.uri });
    assert.equal(read.contents[0].blob, img.data);
    const templates = await kiln.client.listResourceTemplates();
    assert.deepEqual(templates.resourceTemplates.map((t) => t.uriTemplate), [
      'kiln://sessions/{session_id}/artifacts/{name}',
      'kiln://sessions/{session_id}/files/{path}',
      'kiln://sessions/{session_id}/cells/{cell}/{stream}',
      'kiln://sessions/{session_id}/history',
    ]);
  });

  test('an artifact of an unknown session, or an artifact a session does not have, is not found, saying which', opts, async () => {
    const { session_id } = await run(kiln.client, 'pass');
    for (const [uri, why] of [
      [`kiln://sessions/${session_id}/artifacts/none.png`, ` (session ${session_id} has no artifact 'none.png'; it may have been evicted)`],
      ['kiln://sessions/00/artifacts/none.png', " (unknown session '00')"],
    ]) {
      await assert.rejects(kiln.client.readResource({ uri }), { code: -32002, message: `MCP error -32002: resource not found: ${uri}${why}` });
    }
    assert.equal((await run(kiln.client, '1+1')).result, '2');
  });
});

describe('--max-image-side', () => {
  test('sets the size past which images are sent downscaled', opts, async () => {
    await withServer({ args: ['--max-image-side', '100'] }, async ({ client }) => {
      const result = await runFull(client, 'import matplotlib.pyplot as plt\nplt.figure(figsize=(3, 2), dpi=100)\nplt.plot([1, 2])');
      const { decoded } = firstImage(result);
      assert.deepEqual([decoded.width, decoded.height], [100, 67]);
      assert.equal(result.structuredContent.artifacts[0].width, 300);
    });
  });
});
