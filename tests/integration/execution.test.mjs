// Core run_python semantics: sessions, results, output capture and errors.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, expectResult, assertKept, runFull, dump, TEST_TIMEOUT, sessionPid } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('run_python', () => {
  const kiln = useServer();

  describe('sessions', () => {
    test('a call without session_id creates a new session and reports its id', opts, async () => {
      const result = await runFull(kiln.client, '1+1');
      assert.ok(!result.isError, dump(result));
      const sc = result.structuredContent;
      assert.equal(typeof sc.session_id, 'string');
      assert.ok(sc.session_id.length > 0);
      assert.equal(sc.new_session, true);
      assert.equal(sc.state_lost, false);
      assert.equal(sc.status, 'ok');
      assert.equal(sc.execution_count, 1);
    });

    test('two calls without session_id get two different sessions', opts, async () => {
      const a = await run(kiln.client, 'pass');
      const b = await run(kiln.client, 'pass');
      assert.notEqual(a.session_id, b.session_id);
      assert.equal(a.new_session, true);
      assert.equal(b.new_session, true);
    });

    test('a variable defined in one cell is visible in the next cell of the same session', opts, async () => {
      const first = await run(kiln.client, 'x = 41');
      assert.equal(first.status, 'ok', dump(first));
      const second = await run(kiln.client, 'x + 1', { session_id: first.session_id });
      assert.equal(second.status, 'ok', dump(second));
      assert.equal(second.result, '42');
      assert.equal(second.session_id, first.session_id);
      assert.equal(second.new_session, false);
      assert.equal(second.state_lost, false);
    });

    test('functions, imports and classes defined in a cell persist in the session', opts, async () => {
      const first = await run(
        kiln.client,
        'import math\nclass Point:\n    def __init__(self, x):\n        self.x = x\ndef double(v):\n    return 2 * v',
      );
      assert.equal(first.status, 'ok', dump(first));
      const second = await run(kiln.client, 'double(Point(math.floor(2.5)).x)', { session_id: first.session_id });
      assert.equal(second.status, 'ok', dump(second));
      assert.equal(second.result, '4');
    });

    test('different sessions do not share globals', opts, async () => {
      const a = await run(kiln.client, 'only_in_session_a = 1');
      assert.equal(a.status, 'ok', dump(a));
      const b = await run(kiln.client, "'only_in_session_a' in globals()");
      assert.notEqual(b.session_id, a.session_id);
      assert.equal(b.result, 'False');
      const again = await run(kiln.client, "'only_in_session_a' in globals()", { session_id: a.session_id });
      assert.equal(again.result, 'True');
    });

    test('execution_count is 1 for the first cell of a session and then counts up', opts, async () => {
      const first = await run(kiln.client, 'a = 1');
      assert.equal(first.execution_count, 1);
      const second = await run(kiln.client, 'a += 1', { session_id: first.session_id });
      assert.equal(second.execution_count, 2);
      const third = await run(kiln.client, 'a', { session_id: first.session_id });
      assert.equal(third.execution_count, 3);
      assert.equal(third.result, '2');
    });
  });

  describe('results and output', () => {
    test('an expression as the last statement yields its repr: 1+1 gives "2"', opts, async () => {
      const sc = await run(kiln.client, '1+1');
      assert.equal(sc.status, 'ok', dump(sc));
      assert.equal(sc.result, '2');
      assert.equal(sc.error, null);
    });

    test('the result is the repr of the value, so strings are quoted', opts, async () => {
      const sc = await run(kiln.client, "'a' + 'b'");
      assert.equal(sc.result, "'ab'");
    });

    test('only the last statement of a multi-statement cell gives the result', opts, async () => {
      const sc = await run(kiln.client, 'v = 10\nv * 3\nv * 4');
      assert.equal(sc.result, '40');
    });

    test('a cell ending in None has a null result', opts, async () => {
      await expectResult(kiln.client, 'None', null);
    });

    test('a cell ending in a statement has a null result', opts, async () => {
      await expectResult(kiln.client, 'y = 3', null);
    });

    test('print("hi") gives stdout "hi\\n" and a null result', opts, async () => {
      const sc = await run(kiln.client, 'print("hi")');
      assert.equal(sc.status, 'ok', dump(sc));
      assert.equal(sc.stdout, 'hi\n');
      assert.equal(sc.stderr, '');
      assert.equal(sc.result, null);
    });

    test('a successful cell has no error, no dropped output, no notice and a duration', opts, async () => {
      const result = await runFull(kiln.client, 'print("fine")');
      assert.ok(!result.isError, dump(result));
      const sc = result.structuredContent;
      assert.equal(sc.status, 'ok');
      assert.equal(sc.error, null);
      assert.equal(sc.stdout_dropped, 0);
      assert.equal(sc.stderr_dropped, 0);
      assert.equal(sc.notice, null);
      assert.equal(sc.state_lost, false);
      assert.equal(typeof sc.duration_ms, 'number');
      assert.ok(sc.duration_ms >= 0);
    });

    test('the result has exactly one text content block showing stdout and the result', opts, async () => {
      const result = await runFull(kiln.client, 'print("visible-marker")\n40 + 2');
      assert.equal(result.content.length, 1, dump(result.content));
      assert.equal(result.content[0].type, 'text');
      assert.ok(result.content[0].text.includes('visible-marker'), dump(result.content));
      assert.ok(result.content[0].text.includes('42'), dump(result.content));
    });

    test('top-level await works in a cell', opts, async () => {
      await expectResult(kiln.client, "import asyncio\nawait asyncio.sleep(0.1)\n'done'", "'done'");
    });

    test('stdout and stderr are kept apart', opts, async () => {
      const sc = await run(kiln.client, 'import sys; print("out"); print("err", file=sys.stderr)');
      assert.equal(sc.status, 'ok', dump(sc));
      assert.equal(sc.stdout, 'out\n');
      assert.equal(sc.stderr, 'err\n');
    });

    test('writes straight to file descriptors 1 and 2 are captured', opts, async () => {
      const sc = await run(kiln.client, 'import os; os.write(1, b"fd-out\\n"); os.write(2, b"fd-err\\n")');
      assert.equal(sc.status, 'ok', dump(sc));
      assert.ok(sc.stdout.includes('fd-out'), dump(sc));
      assert.ok(sc.stderr.includes('fd-err'), dump(sc));
      assert.ok(!sc.stdout.includes('fd-err'), dump(sc));
      assert.ok(!sc.stderr.includes('fd-out'), dump(sc));
    });

    test('output of a child process started by the cell is captured', opts, async () => {
      const sc = await run(kiln.client, 'import subprocess; subprocess.run(["echo","hi"])');
      assert.equal(sc.status, 'ok', dump(sc));
      assert.ok(sc.stdout.includes('hi'), dump(sc));
    });

    test('non-ASCII text in stdout and in the result comes back intact', opts, async () => {
      const sc = await run(kiln.client, 'print("h\u00e9llo \u2713 \u{1F600}")\n"\u00e9\u2713\u{1F600}"');
      assert.equal(sc.status, 'ok', dump(sc));
      assert.equal(sc.stdout, 'h\u00e9llo \u2713 \u{1F600}\n');
      assert.equal(sc.result, "'\u00e9\u2713\u{1F600}'");
    });

    test('control characters in output are carried through the JSON encoding', opts, async () => {
      const sc = await run(kiln.client, 'import sys; sys.stdout.write("a\\tb\\x00c\\x1bd\\n")');
      assert.equal(sc.status, 'ok', dump(sc));
      assert.equal(sc.stdout, 'a\tb\u0000c\u001bd\n');
    });

    test('bytes that are not valid UTF-8 on a file descriptor do not break the reply', opts, async () => {
      const sc = await run(kiln.client, 'import os; os.write(1, b"\\xff\\xfe still ok\\n")');
      assert.equal(sc.status, 'ok', dump(sc));
      assert.ok(sc.stdout.includes(' still ok'), dump(sc));
    });

    test('output printed before an exception is kept', opts, async () => {
      const sc = await run(kiln.client, 'print("before")\nraise ValueError("boom")');
      assert.equal(sc.status, 'error', dump(sc));
      assert.ok(sc.stdout.includes('before'), dump(sc));
      assert.equal(sc.error.type, 'ValueError');
      assert.ok(sc.error.message.includes('boom'), dump(sc));
    });

    test('output from one cell does not leak into the next cell', opts, async () => {
      const first = await run(kiln.client, 'print("first-cell-output")');
      const second = await run(kiln.client, 'print("second-cell-output")', { session_id: first.session_id });
      assert.equal(second.stdout, 'second-cell-output\n');
    });
  });

  describe('errors', () => {
    test('a failing cell reports status "error" and sets isError', opts, async () => {
      const result = await runFull(kiln.client, 'def f():\n    return 1/0\nf()');
      assert.equal(result.isError, true, dump(result));
      const sc = result.structuredContent;
      assert.equal(sc.status, 'error');
      assert.equal(sc.result, null);
      assert.equal(sc.error.type, 'ZeroDivisionError');
      assert.ok(sc.error.message.includes('division by zero'), dump(sc.error));
    });

    test('a traceback contains the failing source line of the cell', opts, async () => {
      const sc = await run(kiln.client, 'def f():\n    return 1/0\nf()');
      assert.equal(sc.error.type, 'ZeroDivisionError', dump(sc));
      assert.equal(typeof sc.error.traceback, 'string');
      assert.ok(sc.error.traceback.includes('return 1/0'), sc.error.traceback);
      assert.ok(sc.error.traceback.includes('ZeroDivisionError'), sc.error.traceback);
    });

    test("a traceback does not contain kiln's own frames", opts, async () => {
      const sc = await run(kiln.client, 'def f():\n    return 1/0\nf()');
      assert.ok(!sc.error.traceback.includes('kiln_runtime'), sc.error.traceback);
    });

    test('the human-readable text of a failing cell shows the exception', opts, async () => {
      const result = await runFull(kiln.client, 'raise KeyError("missing-key")');
      assert.equal(result.content.length, 1, dump(result.content));
      assert.ok(result.content[0].text.includes('KeyError'), dump(result.content));
      assert.ok(result.content[0].text.includes('missing-key'), dump(result.content));
    });

    for (const code of ['x = (1,\n', 'def f(:']) {
      test(`a syntax error (${JSON.stringify(code)}) reports SyntaxError with line, offset and a caret`, opts, async () => {
        const result = await runFull(kiln.client, code);
        assert.equal(result.isError, true, dump(result));
        const sc = result.structuredContent;
        assert.equal(sc.status, 'error', dump(sc));
        assert.equal(sc.error.type, 'SyntaxError');
        assert.ok(Number.isInteger(sc.error.lineno), `lineno: ${dump(sc.error)}`);
        assert.ok(Number.isInteger(sc.error.offset), `offset: ${dump(sc.error)}`);
        assert.ok(sc.error.lineno >= 1, dump(sc.error));
        assert.ok(sc.error.traceback.includes('^'), sc.error.traceback);
        assert.ok(!sc.error.traceback.includes('kiln_runtime'), sc.error.traceback);
      });
    }

    test('a syntax error leaves the session state untouched', opts, async () => {
      const first = await run(kiln.client, 'kept = "still here"');
      const bad = await run(kiln.client, 'kept = (', { session_id: first.session_id });
      assert.equal(bad.error?.type, 'SyntaxError', dump(bad));
      const after = await run(kiln.client, 'kept', { session_id: first.session_id });
      assert.equal(after.result, "'still here'");
    });

    test('an exception leaves earlier variables of the session in place', opts, async () => {
      const first = await run(kiln.client, 'survivor = 7');
      const bad = await run(kiln.client, 'survivor = 8\nraise RuntimeError("x")', { session_id: first.session_id });
      assert.equal(bad.status, 'error', dump(bad));
      await assertKept(kiln.client, first.session_id, 'survivor', '8');
    });

    test('input() fails with a clear error instead of waiting for a terminal', opts, async () => {
      const sc = await run(kiln.client, 'name = input("name? ")', { timeout_s: 30 });
      assert.equal(sc.status, 'error', dump(sc));
      assert.ok(sc.error, dump(sc));
      assert.match(sc.error.message, /input/i);
    });

    test('the session is still usable after input() failed', opts, async () => {
      const first = await run(kiln.client, 'before_input = 1');
      const bad = await run(kiln.client, 'input()', { session_id: first.session_id, timeout_s: 30 });
      assert.equal(bad.status, 'error', dump(bad));
      await assertKept(kiln.client, first.session_id, 'before_input + 1', '2');
    });

    for (const code of ['sys.exit(3)', 'raise SystemExit("stop")']) {
      test(`${code} is reported as a SystemExit error and the session keeps its variables`, opts, async () => {
        const first = await run(kiln.client, 'import sys\nkeep_me = "yes"');
        const exit = await run(kiln.client, code, { session_id: first.session_id });
        assert.equal(exit.status, 'error', dump(exit));
        assert.equal(exit.error.type, 'SystemExit', dump(exit));
        await assertKept(kiln.client, first.session_id, 'keep_me', "'yes'");
      });
    }
  });

  describe('worker environment', () => {
    test('numpy and matplotlib are preloaded without importing them in the cell', opts, async () => {
      await expectResult(kiln.client, "import sys; 'numpy' in sys.modules and 'matplotlib' in sys.modules", 'True');
    });

    test('PIL and pandas are preloaded by default as well', opts, async () => {
      await expectResult(kiln.client, "import sys; 'PIL' in sys.modules and 'pandas' in sys.modules", 'True');
    });

    test('two new sessions get distinct random streams from random and numpy', opts, async () => {
      const code = 'import random, numpy\n(random.random(), float(numpy.random.rand()))';
      const a = await run(kiln.client, code);
      const b = await run(kiln.client, code);
      assert.equal(a.status, 'ok', dump(a));
      assert.equal(b.status, 'ok', dump(b));
      assert.notEqual(a.result, b.result);
      const parse = (text) => text.replace(/[()\s]/g, '').split(',');
      const [aPy, aNp] = parse(a.result);
      const [bPy, bNp] = parse(b.result);
      assert.notEqual(aPy, bPy, `random.random() repeated across sessions: ${a.result} vs ${b.result}`);
      assert.notEqual(aNp, bNp, `numpy.random.rand() repeated across sessions: ${a.result} vs ${b.result}`);
    });

    test('each session runs in its own worker process', opts, async () => {
      const a = await run(kiln.client, 'x = 1');
      const b = await run(kiln.client, 'x = 2');
      assert.equal(a.status, 'ok', dump(a));
      const pa = await sessionPid(kiln.client, a.session_id);
      const pb = await sessionPid(kiln.client, b.session_id);
      assert.notEqual(pa, pb);
      await run(kiln.client, 'x', { session_id: a.session_id });
      assert.equal(await sessionPid(kiln.client, a.session_id), pa);
    });
  });
});
