// A cell has what a normal interpreter has: help, exit, quit, copyright,
// credits and license as builtins; exit() stops the cell, not the session;
// tracebacks show the user's lines and none of kiln's.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, runFull, assertKept, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

/** Asserts that no line of TEXT comes from one of kiln's own files. */
function assertNoKilnFrame(text) {
  assert.doesNotMatch(text, /kiln_runtime|kiln_capture|sitecustomize|_sitebuiltins/, text);
}

describe('the interpreter a cell sees', () => {
  const kiln = useServer();

  describe('site builtins', () => {
    test('help, exit, quit, copyright, credits and license are builtins', opts, async () => {
      const sc = await run(
        kiln.client,
        "import builtins\n[n for n in ('help', 'exit', 'quit', 'copyright', 'credits', 'license') if not hasattr(builtins, n)]",
      );
      assert.equal(sc.status, 'ok', dump(sc));
      assert.equal(sc.result, '[]');
    });

    test('help(len) prints its help text to stdout, through no pager', opts, async () => {
      // Even where pydoc would page (a terminal, a PAGER), the text is
      // printed: the pager here swallows it.
      const code = [
        'import os, sys',
        'class Terminal:',
        '    def __init__(self, f): self.f = f',
        '    def isatty(self): return True',
        '    def __getattr__(self, name): return getattr(self.f, name)',
        "os.environ['PAGER'] = os.environ['MANPAGER'] = 'true'",
        'real = sys.stdin, sys.stdout',
        'sys.stdin, sys.stdout = Terminal(sys.stdin), Terminal(sys.stdout)',
        'try:',
        '    help(len)',
        'finally:',
        '    sys.stdin, sys.stdout = real',
      ].join('\n');
      const sc = await run(kiln.client, code, { timeout_s: 20 });
      assert.equal(sc.status, 'ok', dump(sc));
      assert.match(sc.stdout, /Help on built-in function len in module builtins/);
      assert.match(sc.stdout, /Return the number of items in a container/);
      assert.equal(sc.stderr, '', dump(sc));
    });

    test('help() without an argument says what to ask instead of waiting at a prompt', opts, async () => {
      const sc = await run(kiln.client, 'help()', { timeout_s: 20 });
      assert.equal(sc.status, 'ok', dump(sc));
      assert.match(sc.stdout, /help\(len\)/);
      assert.doesNotMatch(sc.stdout, /help> /);
    });

    test('license() prints the whole text without asking for Return', opts, async () => {
      const sc = await run(kiln.client, 'license()', { timeout_s: 20 });
      assert.equal(sc.status, 'ok', dump(sc));
      assert.ok(sc.stdout.length > 0, dump(sc));
      assert.doesNotMatch(sc.stdout, /Hit Return/);
    });

    test('copyright and credits show their text', opts, async () => {
      const sc = await run(kiln.client, 'print(copyright)\nprint(credits)');
      assert.equal(sc.status, 'ok', dump(sc));
      assert.match(sc.stdout, /Python Software Foundation/);
      assert.match(sc.stdout, /CWI/);
    });
  });

  describe('exit', () => {
    for (const code of ['exit()', 'quit()', 'exit(0)', 'sys.exit()', 'sys.exit(0)', 'sys.exit(None)', 'raise SystemExit']) {
      test(`${code} ends the cell cleanly: status ok, no error, a notice, the session keeps its state`, opts, async () => {
        const first = await run(kiln.client, 'import sys\nkeep_me = "yes"');
        const sc = await run(kiln.client, `print("before")\n${code}\nprint("after")`, { session_id: first.session_id });
        assert.equal(sc.status, 'ok', dump(sc));
        assert.equal(sc.error, null, dump(sc));
        assert.equal(sc.stdout, 'before\n', dump(sc));
        assert.match(sc.notice ?? '', /called exit\(0\)/, dump(sc));
        assert.match(sc.notice, /keeps its state/, dump(sc));
        await assertKept(kiln.client, first.session_id, 'keep_me', "'yes'");
      });
    }

    test('the reply of a clean exit is no tool error', opts, async () => {
      const result = await runFull(kiln.client, 'exit()');
      assert.equal(result.isError, false, dump(result));
    });

    for (const [code, status] of [
      ['sys.exit(3)', 3],
      ['exit(3)', 3],
      ['raise SystemExit(3)', 3],
    ]) {
      test(`${code} is a SystemExit error that gives the exit status, with no frame of kiln's`, opts, async () => {
        const first = await run(kiln.client, 'import sys\nkeep_me = "yes"');
        const sc = await run(kiln.client, code, { session_id: first.session_id });
        assert.equal(sc.status, 'error', dump(sc));
        assert.equal(sc.error.type, 'SystemExit', dump(sc));
        assert.match(sc.error.message, new RegExp(`^exit status ${status}\\b`), dump(sc));
        assert.match(sc.error.traceback, /File "<cell \d+>", line 1, in <module>/);
        assert.match(sc.error.traceback, new RegExp(`SystemExit: ${status}\\n$`));
        assertNoKilnFrame(sc.error.traceback);
        await assertKept(kiln.client, first.session_id, 'keep_me', "'yes'");
      });
    }

    test('sys.exit("message") is a SystemExit error that gives the message', opts, async () => {
      const sc = await run(kiln.client, 'import sys\nsys.exit("no data to work on")');
      assert.equal(sc.status, 'error', dump(sc));
      assert.equal(sc.error.type, 'SystemExit', dump(sc));
      assert.match(sc.error.message, /no data to work on/);
      assert.match(sc.error.message, /exit status 1/);
      assert.match(sc.error.traceback, /SystemExit: no data to work on\n$/);
      assertNoKilnFrame(sc.error.traceback);
    });

    test('exit() inside a function called by the cell shows the call and the function, nothing of kiln', opts, async () => {
      const sc = await run(kiln.client, 'def stop():\n    exit(2)\nstop()');
      assert.equal(sc.status, 'error', dump(sc));
      const tb = sc.error.traceback;
      assert.match(tb, /line 3, in <module>\n    stop\(\)/, tb);
      assert.match(tb, /line 2, in stop\n    exit\(2\)\nSystemExit: 2\n$/, tb);
      assertNoKilnFrame(tb);
    });
  });

  describe('input()', () => {
    test("input()'s traceback ends at the cell's line, with no frame of kiln's", opts, async () => {
      const sc = await run(kiln.client, 'x = 1\nname = input("name? ")', { timeout_s: 20 });
      assert.equal(sc.status, 'error', dump(sc));
      assert.equal(sc.error.type, 'EOFError', dump(sc));
      const tb = sc.error.traceback;
      // The last frame is the cell's line (and its caret line), then the error.
      assert.match(tb, /File "<cell \d+>", line 2, in <module>\n    name = input\("name\? "\)\n( *\^+\n)?EOFError: /, tb);
      assertNoKilnFrame(tb);
    });

    test('an exception raised while handling input()\'s shows neither traceback with a frame of kiln\'s', opts, async () => {
      const sc = await run(kiln.client, 'try:\n    input()\nexcept EOFError:\n    raise ValueError("no input")', {
        timeout_s: 20,
      });
      assert.equal(sc.error?.type, 'ValueError', dump(sc));
      assert.match(sc.error.traceback, /During handling of the above exception/);
      assertNoKilnFrame(sc.error.traceback);
    });
  });
});
