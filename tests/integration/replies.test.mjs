// What a model reads: the session named in the text, output streamed as
// progress while a cell runs, and a reply that fits a context window with
// the rest kept as resources.  Through the TypeScript SDK client.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import {
  useServer,
  useRawServer,
  runFull,
  dump,
  TEST_TIMEOUT,
  REQUEST_TIMEOUT,
} from './helpers.mjs';

const TICKS = `
import time
for i in range(10):
    print('tick', i)
    time.sleep(0.5)
`;

// Written by C while Python waits in C: no Python code runs to flush.
const C_TICKS = `
import os, ctypes
libc = ctypes.CDLL(None)
for i in range(10):
    os.write(1, b'c %d\\n' % i)
    libc.usleep(500000)
`;

function textOf(result) {
  return result.content.filter((b) => b.type === 'text').map((b) => b.text).join('\n');
}

/** Runs CODE with a progress callback; returns the result and the progress seen before it. */
async function runWithProgress(client, code) {
  const seen = [];
  let answered = false;
  const result = await client.callTool({ name: 'run_python', arguments: { code } }, undefined, {
    timeout: REQUEST_TIMEOUT,
    onprogress: (p) => seen.push({ ...p, beforeReply: !answered }),
  });
  answered = true;
  return { result, seen };
}

describe('the session in the text', () => {
  const kiln = useServer();

  test('the first line names the session and the cell', { timeout: TEST_TIMEOUT }, async () => {
    const first = await runFull(kiln.client, 'x = 6*7\nx');
    const sid = first.structuredContent.session_id;
    const line = textOf(first).split('\n')[0];
    assert.match(line, new RegExp(`^\\[session ${sid} · cell 1 · \\d+ ms · new session\\]$`), line);
    const second = await runFull(kiln.client, 'x + 1', { session_id: sid });
    const lines = textOf(second).split('\n');
    assert.match(lines[0], new RegExp(`^\\[session ${sid} · cell 2 · \\d+ ms\\]$`), lines[0]);
    assert.equal(lines[1], '43');
    const failed = await runFull(kiln.client, '1/0', { session_id: sid });
    assert.match(textOf(failed).split('\n')[0], / · error\]$/);
  });

  test('a notice on a successful cell is in the text too', { timeout: TEST_TIMEOUT }, async () => {
    const r = await runFull(kiln.client, 'print("bye")\nexit()');
    assert.equal(r.isError, false);
    assert.match(textOf(r), /^\[session .*\]\nbye\nThe cell called exit\(0\)/, textOf(r));
  });
});

describe('output streamed as progress', () => {
  const kiln = useServer();

  test('a 5-second loop printing every 0.5 s streams each line before the reply', { timeout: TEST_TIMEOUT }, async () => {
    const { result, seen } = await runWithProgress(kiln.client, TICKS);
    const before = seen.filter((p) => p.beforeReply);
    assert.ok(before.length >= 8, `only ${before.length} progress notifications: ${dump(seen)}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress > seen[i - 1].progress, dump(seen));
    const streamed = seen.map((p) => p.message).join('');
    for (let i = 0; i < 10; i++) assert.ok(streamed.includes(`tick ${i}\n`), streamed);
    // The reply still carries all of it.
    for (let i = 0; i < 10; i++) assert.ok(textOf(result).includes(`tick ${i}`), textOf(result));
  });

  test('output written by C code while Python waits in C is streamed too', { timeout: TEST_TIMEOUT }, async () => {
    const { seen } = await runWithProgress(kiln.client, C_TICKS);
    assert.ok(seen.filter((p) => p.beforeReply).length >= 8, dump(seen));
    assert.ok(seen.map((p) => p.message).join('').includes('c 9\n'));
  });

  test('a flood is coalesced: few notifications, each at most 8 KiB of output', { timeout: TEST_TIMEOUT }, async () => {
    const { result, seen } = await runWithProgress(
      kiln.client,
      'import sys\nfor i in range(200000): print(i)\nsys.stderr.write("done\\n")',
    );
    assert.equal(result.isError, false, dump(result));
    assert.ok(seen.length > 0 && seen.length < 100, `${seen.length} notifications`);
    for (const p of seen) assert.ok(p.message.length <= 8192 + 64, `${p.message.length} characters`);
    assert.match(seen.map((p) => p.message).join(''), /bytes not streamed/);
  });
});

describe('progress over raw stdio', () => {
  const raw = useRawServer({});

  test('the last of the output streams before the reply, stderr marked', { timeout: TEST_TIMEOUT }, async () => {
    const id = 'flood';
    await raw.sendLine({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: {
        name: 'run_python',
        arguments: { code: 'import sys\nfor i in range(200000): print(i)\nsys.stderr.write("done\\n")' },
        _meta: { progressToken: 7 },
      },
    });
    const seen = [];
    for (;;) {
      const m = await raw.waitFor((x) => x?.method === 'notifications/progress' || x?.id === id);
      if (m.id === id) break;
      assert.equal(m.params.progressToken, 7);
      seen.push(m.params);
    }
    assert.equal(seen.at(-1).message, '[stderr] done\n', dump(seen.at(-1)));
    assert.ok(seen.some((p) => /^\[\.\.\. \d+ bytes not streamed \.\.\.\]\n/.test(p.message)));
  });

  test('a call without _meta.progressToken gets its reply and nothing else', { timeout: TEST_TIMEOUT }, async () => {
    const r = await raw.runPython('import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)');
    assert.match(r.result.content[0].text, /\n0\n1\n2\n?$/, dump(r));
    const progress = await raw
      .waitFor((m) => m?.method === 'notifications/progress', 500)
      .catch(() => null);
    assert.equal(progress, null, dump(progress));
  });
});

describe('the reply budget', () => {
  const kiln = useServer();

  test('a 1 MB print: the text holds the head and the tail, and the rest is a resource', { timeout: TEST_TIMEOUT }, async () => {
    const result = await runFull(kiln.client, 'print("H" * 10 + "x" * 1_000_000 + "T" * 10)');
    const text = textOf(result);
    const sc = result.structuredContent;
    assert.ok(text.length <= 20 * 1024 + 512, `text of ${text.length} characters`);
    const uri = `kiln://sessions/${sc.session_id}/cells/1/stdout`;
    assert.equal(sc.stdout_uri, uri, dump(sc));
    assert.ok(text.includes(`bytes not shown; all of it: ${uri}`), text.slice(0, 500));
    assert.equal(sc.stdout, undefined, 'structuredContent repeats the output');
    assert.ok(JSON.stringify(sc).length < 4096, `structuredContent of ${JSON.stringify(sc).length}`);
    assert.ok(text.split('\n')[1].startsWith('HHHHHHHHHH'));
    assert.ok(text.trimEnd().endsWith('TTTTTTTTTT'));
    const read = await kiln.client.readResource({ uri });
    const whole = read.contents[0].text;
    assert.equal(Buffer.byteLength(whole), sc.stdout_bytes);
    assert.ok(whole.startsWith('HHHHHHHHHH') && whole.trimEnd().endsWith('TTTTTTTTTT'));
    assert.ok(sc.stdout_dropped > 0, dump(sc));
    assert.ok(sc.stdout_bytes + sc.stdout_dropped >= 1_000_021, dump(sc));
  });

  test('a closed session takes its kept outputs with it', { timeout: TEST_TIMEOUT }, async () => {
    const result = await runFull(kiln.client, 'print("z" * 10000)');
    const sid = result.structuredContent.session_id;
    assert.ok(existsSync(join(kiln.home, 'sessions', sid, 'cells')), 'no kept output');
    await kiln.client.callTool({ name: 'close_session', arguments: { session_id: sid } });
    assert.equal(existsSync(join(kiln.home, 'sessions', sid)), false, 'the session directory is left');
    const read = await kiln.client
      .readResource({ uri: result.structuredContent.stdout_uri })
      .then(() => 'read', (err) => err.message);
    assert.match(read, /resource not found/);
  });

  test('short output stays whole in both the text and structuredContent', { timeout: TEST_TIMEOUT }, async () => {
    const result = await runFull(kiln.client, 'print("a" * 3000)');
    const sc = result.structuredContent;
    assert.equal(sc.stdout, `${'a'.repeat(3000)}\n`);
    assert.equal(sc.stdout_uri, undefined);
    assert.ok(textOf(result).includes('a'.repeat(3000)));
  });

  test('each stream and the result share the budget', { timeout: TEST_TIMEOUT }, async () => {
    const result = await runFull(
      kiln.client,
      'import sys\nprint("o" * 100000)\nsys.stderr.write("e" * 100000)\n"r" * 30000',
    );
    const text = textOf(result);
    assert.ok(text.length <= 20 * 1024 + 1024, `${text.length}`);
    assert.match(text, /\[stderr\]\neeee/);
    assert.equal((text.match(/bytes not shown/g) ?? []).length, 3, text.replace(/(.)\1{20,}/g, '$1…'));
    assert.match(text, /cells\/\d+\/stderr/);
  });

  test('an image byte budget: past 1 MiB of inline images, the rest are links', { timeout: TEST_TIMEOUT }, async () => {
    // Noise does not compress: each PNG is about 480 KB.
    const result = await runFull(
      kiln.client,
      'import numpy as np\nfrom PIL import Image\nrng = np.random.default_rng(1)\n' +
        'for i in range(5):\n    Image.fromarray(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)).show()',
    );
    const images = result.content.filter((b) => b.type === 'image');
    const links = result.content.filter((b) => b.type === 'resource_link');
    const inlineBytes = images.reduce((n, b) => n + Buffer.from(b.data, 'base64').length, 0);
    assert.ok(inlineBytes <= 1 << 20, `${inlineBytes} inline bytes`);
    assert.equal(images.length + links.length, 5, dump(result.content.map((b) => b.type)));
    assert.ok(links.length >= 2, `${links.length} links`);
  });
});

describe('--max-reply', () => {
  const kiln = useServer({ args: ['--max-reply', '2000'] });

  test('a smaller budget gives a shorter text', { timeout: TEST_TIMEOUT }, async () => {
    const result = await runFull(kiln.client, 'print("x" * 100000)');
    const text = textOf(result);
    assert.ok(text.length <= 4096 + 400, `${text.length}`);
    assert.match(text, /bytes not shown/);
  });
});

describe('display in code order', () => {
  const kiln = useServer();

  test('print, display(df), a figure, print again: in that order in content', { timeout: TEST_TIMEOUT }, async () => {
    const result = await runFull(
      kiln.client,
      'import pandas as pd\nimport matplotlib.pyplot as plt\nprint("first")\n' +
        'display(pd.DataFrame({"col": [1, 2]}))\nplt.plot([1, 2])\nplt.show()\nprint("second")\n"value"',
    );
    const blocks = result.content.map((b) => (b.type === 'text' ? b.text : `<${b.type}>`));
    const flat = blocks.join('\n');
    const order = ['first', '| col', '<image>', 'second', "'value'"].map((s) => flat.indexOf(s));
    assert.ok(order.every((i) => i >= 0), dump(blocks));
    assert.deepEqual([...order].sort((a, b) => a - b), order, dump(blocks));
    assert.equal(result.content[0].type, 'text');
    assert.match(result.content[0].text, /^\[session /);
  });

  test('a figure still open at the end comes after the value', { timeout: TEST_TIMEOUT }, async () => {
    const result = await runFull(kiln.client, 'import matplotlib.pyplot as plt\nprint("before")\nplt.plot([3, 1])\n"out"');
    const types = result.content.map((b) => b.type);
    assert.deepEqual(types, ['text', 'image'], dump(types));
    assert.match(result.content[0].text, /before\n'out'$/);
  });

  test('an image shown in the middle of a long output lands where it was shown', { timeout: TEST_TIMEOUT }, async () => {
    const result = await runFull(
      kiln.client,
      'from PIL import Image\nprint("a" * 50000)\nprint("MIDDLE")\nImage.new("RGB", (4, 4)).show()\nprint("b" * 50000)',
    );
    const types = result.content.map((b) => b.type);
    assert.deepEqual(types, ['text', 'image', 'text'], dump(types));
    // The first text ends where the image was shown; the cut may have
    // taken the line before it, but nothing after it comes first.
    assert.ok(!result.content[0].text.includes('bbbb'), result.content[0].text.slice(-200));
    assert.ok(result.content[2].text.startsWith('bbbb'), result.content[2].text.slice(0, 200));
  });
});
