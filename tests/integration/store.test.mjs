// kiln.db: the code cache and the execution history, through the MCP
// client and `kiln cache` / `kiln history`.  A cell that missed the cache
// is compiled by the compile helper after its reply; a later run of the
// same source is a hit and runs the helper's code.  Whether a run was a
// hit is read from `kiln cache stats`, so that no test here passes with
// the cache doing nothing.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, run, dump, pollUntil, TEST_TIMEOUT, HOOK_TIMEOUT, REQUEST_TIMEOUT } from './helpers.mjs';
import { makeHome, kilnCli, cacheStats, statsWhen, helperReady } from './store-helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };
const slow = { timeout: 3 * TEST_TIMEOUT };

/**
 * A server for the enclosing suite on a KILN_HOME that outlives it
 * (removed after the suite), started with its compile helper ready.
 */
function useStoreServer(args = []) {
  const home = makeHome();
  const handle = { home: home.path };
  let server;
  before(async () => {
    server = await startServer({ args, env: { KILN_HOME: home.path } });
    Object.assign(handle, server, { home: home.path });
    await helperReady(server.client, home.path);
  }, { timeout: HOOK_TIMEOUT });
  after(async () => {
    await server?.close();
    home.remove();
  }, { timeout: HOOK_TIMEOUT });
  return handle;
}

/** structuredContent without what differs between two runs of one cell by nature. */
function comparable(sc) {
  const { session_id: _sid, duration_ms: _ms, ...rest } = sc;
  return rest;
}

/** Runs CODE in SESSION_ID as a miss; then waits until the helper stored it. */
async function runMiss(kiln, code, sessionId) {
  const before = cacheStats(kiln.home);
  const sc = await run(kiln.client, code, { session_id: sessionId });
  const stored = await statsWhen(kiln.home, (s) => s.misses > before.misses && s.entries > before.entries);
  assert.ok(stored.misses === before.misses + 1 && stored.hits === before.hits,
    `the first run was not a miss: ${dump({ before, stored })}`);
  assert.equal(stored.entries, before.entries + 1, `the helper did not store the cell: ${dump({ before, stored })}`);
  return sc;
}

/** Runs CODE in SESSION_ID and asserts that it was a hit. */
async function runHit(kiln, code, sessionId) {
  const before = cacheStats(kiln.home);
  const sc = await run(kiln.client, code, { session_id: sessionId });
  const counted = await statsWhen(kiln.home, (s) => s.hits > before.hits, 10_000);
  assert.equal(counted.hits, before.hits + 1, `the second run was not a hit: ${dump({ before, counted })}`);
  assert.equal(counted.misses, before.misses, `the second run was counted as a miss: ${dump({ before, counted })}`);
  return sc;
}

// The first cell of both sessions.  The builtin compile() is wrapped to
// note every filename the worker compiles for (kiln_runtime's _compile
// calls it): a hit compiles nothing in the worker, a miss compiles the
// cell, and the counters of `kiln cache stats` alone could not tell a
// hit that the front looked up but never sent.
const PRELUDE = [
  'import builtins',
  'prelude = "first"',
  'compiled_for = []',
  'def _noting_compile(source, filename, *args, _real=builtins.compile, **kwargs):',
  '    compiled_for.append(filename)',
  '    return _real(source, filename, *args, **kwargs)',
  'builtins.compile = _noting_compile',
].join('\n');

/** The filenames the worker of SESSION_ID compiled for since the last call. */
async function compiledFor(kiln, sessionId) {
  const sc = await run(kiln.client, 'seen = sorted(set(compiled_for))\ncompiled_for.clear()\nseen', {
    session_id: sessionId,
  });
  assert.equal(sc.status, 'ok', dump(sc));
  return sc.result;
}

// Each cell runs in both sessions as the same cell number (not the first),
// so that a hit's code must be renamed from the helper's "<cell>".
const CELLS = {
  'prints and returns a value': [
    'print("hello", 6 * 7)',
    'squares = [i * i for i in range(5)]',
    'total = sum(i for i in range(10))',
    'print("total", total, file=__import__("sys").stderr)',
    '(total, squares, prelude)',
  ].join('\n'),
  'raises inside a nested function': [
    'def outer(n):',
    '    def inner(k):',
    '        return 10 // k',
    '    return inner(n - 1)',
    'print("before")',
    'outer(1)',
  ].join('\n'),
  'awaits at top level': [
    'import asyncio',
    'async def twice(x):',
    '    await asyncio.sleep(0)',
    '    return 2 * x',
    'r = await twice(21)',
    'print("awaited", r)',
    'await twice(r)',
  ].join('\n'),
  'awaits at top level and raises in the coroutine': [
    'import asyncio',
    'async def fails():',
    '    await asyncio.sleep(0)',
    '    raise KeyError("deep")',
    'await fails()',
  ].join('\n'),
  'defines a class, lambdas and reads its own source': [
    'import inspect',
    'class Shape:',
    '    sides = 4',
    '    def area(self, f=lambda s: s * s):',
    '        return f(3)',
    '    def broken(self):',
    '        return (lambda: self.missing)()',
    'print(Shape().area(), Shape.area.__code__.co_filename, Shape.area.__defaults__[0].__code__.co_filename)',
    'print(inspect.getsource(Shape.area).strip())',
    'Shape().broken()',
  ].join('\n'),
};

describe('the code cache: a hit answers as the miss did', () => {
  const kiln = useStoreServer();
  const sessions = {};

  test('both sessions start', opts, async () => {
    for (const name of ['miss', 'hit']) {
      const sc = await run(kiln.client, PRELUDE);
      assert.equal(sc.status, 'ok', dump(sc));
      sessions[name] = sc.session_id;
    }
  });

  for (const [name, code] of Object.entries(CELLS)) {
    test(`a cell that ${name}: the hit's structuredContent is the miss's, character for character`, opts, async () => {
      const miss = await runMiss(kiln, code, sessions.miss);
      const missCompiled = await compiledFor(kiln, sessions.miss);
      const hit = await runHit(kiln, code, sessions.hit);
      const hitCompiled = await compiledFor(kiln, sessions.hit);
      assert.deepEqual(comparable(hit), comparable(miss));
      // The miss was compiled by its worker, the hit was not: it ran the
      // helper's code.
      assert.ok(missCompiled.includes(`'<cell ${miss.execution_count}>'`), missCompiled);
      assert.ok(!hitCompiled.includes(`'<cell ${hit.execution_count}>'`), hitCompiled);
      // What the cell is about really happened (not two equal failures).
      assert.equal(miss.new_session, false, dump(miss));
      if (miss.error) {
        assert.match(miss.error.traceback, /File "<cell \d+>", line \d+/, dump(miss));
        assert.doesNotMatch(hit.error.traceback, /"<cell>"/, dump(hit));
      }
      // Both sessions ran the same cells: the next is numbered alike.
      assert.equal(miss.execution_count, hit.execution_count);
    });
  }

  test('what each cell shows is what the source says', opts, async () => {
    // Spot checks that the cells above did what they are named for, so
    // that the equality above is not between two broken runs.
    const again = async (code) => {
      const sc = await run(kiln.client, code, { session_id: sessions.hit });
      assert.ok(!(await compiledFor(kiln, sessions.hit)).includes(`<cell ${sc.execution_count}>`));
      return sc;
    };
    const printed = await again(CELLS['prints and returns a value']);
    assert.equal(printed.stdout, 'hello 42\n');
    assert.equal(printed.stderr, 'total 45\n');
    assert.equal(printed.result, "(45, [0, 1, 4, 9, 16], 'first')");
    const nested = await again(CELLS['raises inside a nested function']);
    assert.equal(nested.error.type, 'ZeroDivisionError');
    assert.match(nested.error.traceback, /in outer\n    return inner\(n - 1\)\n.*in inner\n    return 10 \/\/ k/s);
    const awaited = await again(CELLS['awaits at top level']);
    assert.equal(awaited.stdout, 'awaited 42\n');
    assert.equal(awaited.result, '84');
    const shaped = await again(CELLS['defines a class, lambdas and reads its own source']);
    const n = shaped.execution_count;
    assert.equal(shaped.stdout.split('\n')[0], `9 <cell ${n}> <cell ${n}>`);
    assert.match(shaped.stdout, /def area\(self, f=lambda s: s \* s\):\n\s+return f\(3\)/);
    assert.equal(shaped.error.type, 'AttributeError');
    assert.match(shaped.error.traceback, /in <lambda>\n    return \(lambda: self.missing\)\(\)/);
  });
});

describe('cells the cache must not hold', () => {
  const kiln = useStoreServer();

  test('a cell whose compile warns is never cached and shows its SyntaxWarning on every run', opts, async () => {
    const before = cacheStats(kiln.home);
    const code = 'x = "\\d"\nprint("ran")\nx';
    const first = await run(kiln.client, code);
    const runs = [
      first,
      await run(kiln.client, code, { session_id: first.session_id }),
      await run(kiln.client, code),
      await run(kiln.client, code),
    ];
    for (const sc of runs) {
      assert.equal(sc.status, 'ok', dump(sc));
      assert.equal(sc.stdout, 'ran\n', dump(sc));
      assert.equal(sc.result, "'\\\\d'", dump(sc));
      assert.match(sc.stderr, /SyntaxWarning: invalid escape sequence '\\d'/, dump(sc));
    }
    // The helper answers in order: once a later cell is stored, the
    // warning's every run has been answered, and none was stored.
    await run(kiln.client, '"a cell after the warnings"');
    const after = await statsWhen(kiln.home, (s) => s.entries > before.entries);
    assert.equal(after.entries, before.entries + 1, dump({ before, after }));
    assert.equal(after.hits, before.hits, dump({ before, after }));
    assert.equal(after.misses, before.misses + runs.length + 1, dump({ before, after }));
  });

  test('a SyntaxError cell shows the same error every time and is never cached', opts, async () => {
    const before = cacheStats(kiln.home);
    const code = 'print("never")\ndef f(:\n    pass';
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await run(kiln.client, code));
    for (const sc of runs) {
      assert.equal(sc.status, 'error', dump(sc));
      assert.equal(sc.error.type, 'SyntaxError', dump(sc));
      assert.equal(sc.stdout, '', dump(sc));
      assert.match(sc.error.traceback, /line 2\n    def f\(:\n +\^/, dump(sc));
      assert.deepEqual(comparable(sc), comparable(runs[0]));
    }
    await run(kiln.client, '"a cell after the syntax errors"');
    const after = await statsWhen(kiln.home, (s) => s.entries > before.entries);
    assert.equal(after.entries, before.entries + 1, dump({ before, after }));
    assert.equal(after.hits, before.hits, dump({ before, after }));
  });
});

/** Reads a history page (the session's first, or URI) and returns its JSON. */
async function historyPage(client, sessionOrUri) {
  const uri = sessionOrUri.startsWith('kiln://') ? sessionOrUri : `kiln://sessions/${sessionOrUri}/history`;
  const read = await client.readResource({ uri }, { timeout: REQUEST_TIMEOUT });
  assert.equal(read.contents.length, 1);
  assert.equal(read.contents[0].uri, uri);
  assert.equal(read.contents[0].mimeType, 'application/json');
  return JSON.parse(read.contents[0].text);
}

/** A session's whole history, following "next"; waits for its N newest rows to be written. */
async function wholeHistory(client, sessionId, n) {
  // The history is written by the store's writer after the reply: a read
  // right after it may not see the last cell yet.
  await pollUntil(async () => {
    const page = await historyPage(client, sessionId);
    return page.cells.length >= Math.min(n, 20);
  });
  const pages = [];
  let next = `kiln://sessions/${sessionId}/history`;
  while (next) {
    const page = await historyPage(client, next);
    assert.equal(page.session_id, sessionId);
    pages.push(page);
    next = page.next;
    assert.ok(pages.length < 20, 'the history never ends');
  }
  return pages;
}

describe('the history', () => {
  const kiln = useStoreServer(['--grace', '0.5']);
  // One session's cells, in the order run, each with its reply.
  const mixed = [];
  let mixedId;
  const other = [];
  let otherId;

  test('a session of every outcome, and another beside it', slow, async () => {
    const cells = [
      { code: 'print("one")  # ok\n1 + 1', status: 'ok' },
      { code: 'print("two")  # error\nraise ValueError("no")', status: 'error' },
      { code: 'import time  # interrupted\ntime.sleep(30)', status: 'interrupted', timeout_s: 1 },
      {
        code: 'import signal  # killed\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass',
        status: 'killed',
        timeout_s: 1,
      },
      { code: 'import os  # crashed\nprint("bye", flush=True)\nos._exit(3)', status: 'crashed' },
      { code: 'import os, signal  # crashed by a signal\nos.kill(os.getpid(), signal.SIGKILL)', status: 'crashed' },
      { code: 'print("after it all")  # ok again', status: 'ok' },
    ];
    for (const cell of cells) {
      const sc = await run(kiln.client, cell.code, { session_id: mixedId, timeout_s: cell.timeout_s });
      assert.equal(sc.status, cell.status, dump(sc));
      mixedId = sc.session_id;
      mixed.push({ ...cell, sc });
      const o = await run(kiln.client, `other_${other.length} = "not in the first session's history"`, {
        session_id: otherId,
      });
      otherId = o.session_id;
      other.push({ code: `other_${other.length} = "not in the first session's history"`, sc: o });
    }
  });

  test('resources/read of kiln://sessions/ID/history: newest first, each cell as its reply said', opts, async () => {
    const pages = await wholeHistory(kiln.client, mixedId, mixed.length);
    assert.equal(pages.length, 1);
    assert.equal(pages[0].next, null);
    const cells = pages[0].cells;
    assert.equal(cells.length, mixed.length, dump(cells));
    const expected = [...mixed].reverse();
    let previous = Infinity;
    cells.forEach((cell, i) => {
      const { code, status, sc } = expected[i];
      assert.equal(cell.code, code);
      assert.equal(cell.status, status);
      assert.equal(cell.error_type, status === 'ok' ? null : sc.error?.type ?? null, dump({ cell, sc }));
      assert.equal(cell.execution_count, sc.execution_count, dump({ cell, sc }));
      assert.equal(cell.stdout_bytes, sc.stdout_bytes, dump({ cell, sc }));
      assert.equal(cell.stderr_bytes, sc.stderr_bytes, dump({ cell, sc }));
      assert.deepEqual(cell.artifacts, []);
      assert.ok(cell.started_ms <= previous, 'newest first');
      assert.ok(cell.duration_ms >= 0);
      previous = cell.started_ms;
    });
    assert.equal(cells.find((c) => c.status === 'error').error_type, 'ValueError');
    assert.equal(cells.find((c) => c.status === 'ok').stdout_bytes, 'after it all\n'.length);
    for (const cell of cells) assert.doesNotMatch(cell.code, /other_/);
  });

  test('another session\'s history holds its cells only', opts, async () => {
    const pages = await wholeHistory(kiln.client, otherId, other.length);
    const cells = pages.flatMap((p) => p.cells);
    assert.deepEqual(cells.map((c) => c.code), [...other].reverse().map((o) => o.code));
    assert.ok(cells.every((c) => c.status === 'ok'));
  });

  test('more than a page: "next" names the rest, and pages do not overlap', opts, async () => {
    const codes = [];
    let sid;
    for (let i = 0; i < 23; i++) {
      const code = `print(${i})  # paged ${i}`;
      const sc = await run(kiln.client, code, { session_id: sid });
      sid = sc.session_id;
      codes.push(code);
    }
    await pollUntil(async () => {
      const first = await historyPage(kiln.client, sid);
      return first.next && first.cells[0].code === codes.at(-1);
    });
    const pages = await wholeHistory(kiln.client, sid, codes.length);
    assert.deepEqual(pages.map((p) => p.cells.length), [20, 3]);
    assert.match(pages[0].next, new RegExp(`^kiln://sessions/${sid}/history/\\d+$`));
    assert.equal(pages[1].next, null);
    const counts = pages.flatMap((p) => p.cells.map((c) => c.execution_count));
    assert.equal(new Set(counts).size, counts.length, 'a cell on two pages');
    assert.deepEqual(pages.flatMap((p) => p.cells.map((c) => c.code)), [...codes].reverse());
    assert.deepEqual(counts, codes.map((_, i) => i + 1).reverse());
  });

  test('`kiln history ID` after the server stopped prints the session\'s cells, newest first', opts, async () => {
    await kiln.close();
    const text = kilnCli(kiln.home, 'history', mixedId);
    const lines = text.split('\n');
    const heads = lines.filter((l) => l.startsWith(mixedId));
    assert.equal(heads.length, mixed.length, text);
    [...mixed].reverse().forEach(({ code, status, sc }, i) => {
      assert.match(heads[i], new RegExp(`^${mixedId}  \\[${sc.execution_count}\\]  \\S+  [\\d.]+ ms  ${status}\\b`), text);
      if (status === 'error') assert.match(heads[i], /error ValueError/);
    });
    // Each cell's code, indented, below its line, in the same order.
    let at = -1;
    for (const { code } of [...mixed].reverse()) {
      const first = `    ${code.split('\n')[0]}`;
      const found = lines.indexOf(first, at + 1);
      assert.ok(found > at, `${first} missing or out of order in:\n${text}`);
      at = found;
    }
    assert.doesNotMatch(text, /other_/);
    // And every session's, when none is named.
    const all = kilnCli(kiln.home, 'history');
    assert.match(all, /other_0 = /);
    assert.match(all, /paged 22/);
  });
});

describe('--cache-size', () => {
  const kiln = useStoreServer(['--cache-size', '8K']);

  test('a small cache evicts the least recently used cells and stays within its size', opts, async () => {
    const before = cacheStats(kiln.home);
    const n = 12;
    for (let i = 0; i < n; i++) {
      const lines = [];
      for (let k = 0; k < 30; k++) lines.push(`v${k} = "cell ${i} value ${k} ${'x'.repeat(20)}"`);
      lines.push('v0.split()[1]');
      const sc = await run(kiln.client, lines.join('\n'));
      assert.equal(sc.result, `'${i}'`, dump(sc));
    }
    // Each miss is stored, then evicted or kept: wait for all of them.
    const after = await statsWhen(
      kiln.home,
      (s) => s.misses - before.misses === n && s.entries + s.evictions - before.entries - before.evictions === n,
    );
    assert.ok(after.evictions > before.evictions, dump({ before, after }));
    assert.ok(after.bytes <= 8 * 1024, dump(after));
    assert.ok(after.entries > 0 && after.entries < before.entries + n, dump({ before, after }));
  });
});

describe('kiln cache clear', () => {
  const kiln = useStoreServer();

  test('empties the cache of a running server; the next run is a miss that still works', opts, async () => {
    const code = 'import math\nmath.factorial(10)';
    const sid = (await run(kiln.client, PRELUDE)).session_id;
    const first = await runMiss(kiln, code, sid);
    assert.equal(first.result, '3628800');
    assert.ok((await compiledFor(kiln, sid)).includes(`<cell ${first.execution_count}>`));
    const cleared = cacheStats(kiln.home);
    assert.ok(cleared.entries > 0);
    const out = kilnCli(kiln.home, 'cache', 'clear');
    assert.match(out, new RegExp(`^removed ${cleared.entries} compiled cells$`, 'm'));
    const empty = cacheStats(kiln.home);
    assert.equal(empty.entries, 0, dump(empty));
    assert.equal(empty.bytes, 0, dump(empty));
    // The counters are kept.
    assert.equal(empty.misses, cleared.misses);
    const again = await runMiss(kiln, code, sid);
    assert.equal(again.status, 'ok', dump(again));
    assert.equal(again.result, '3628800');
    assert.ok((await compiledFor(kiln, sid)).includes(`<cell ${again.execution_count}>`));
    // And once stored again, a hit.
    const hit = await runHit(kiln, code, sid);
    assert.equal(hit.result, '3628800');
    assert.ok(!(await compiledFor(kiln, sid)).includes(`<cell ${hit.execution_count}>`));
  });

  test('`kiln cache stats` of a home with no database fails and says so', opts, () => {
    const empty = makeHome();
    try {
      assert.throws(() => kilnCli(empty.path, 'cache', 'stats'), (err) => {
        assert.notEqual(err.status, 0);
        assert.match(String(err.stderr), /kiln cache: .*kiln\.db/);
        return true;
      });
    } finally {
      empty.remove();
    }
  });
});
