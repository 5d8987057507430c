// Bad input: every mistake gets a clear error and the server keeps answering.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, useRawServer, withRawServer, run, expectResult, assertKept, runFull, callTool, resultText, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

async function assertStillAnswers(client) {
  const sc = await run(client, '1+1');
  assert.equal(sc.status, 'ok', dump(sc));
  assert.equal(sc.result, '2');
}

describe('bad tool calls through the SDK client', () => {
  const kiln = useServer();

  test('calling an unknown tool is refused with invalid params (-32602) naming the tool', opts, async () => {
    await assert.rejects(callTool(kiln.client, 'no_such_tool', {}), {
      code: -32602,
      message: /unknown tool 'no_such_tool' \(kiln offers run_python, /,
    });
    await assertStillAnswers(kiln.client);
  });

  const badArguments = [
    ['a missing code argument', {}, /code/],
    ['code that is not a string', { code: 42 }, /code/],
    ['a negative timeout_s', { code: '1+1', timeout_s: -1 }, /timeout_s/],
    ['a timeout_s that is a string', { code: '1+1', timeout_s: '5' }, /timeout_s/],
    ['a session_id that is not a string', { code: '1+1', session_id: 42 }, /session_id/],
  ];
  for (const [label, args, pattern] of badArguments) {
    test(`run_python with ${label} returns isError naming the argument, and the server still answers`, opts, async () => {
      const result = await callTool(kiln.client, 'run_python', args);
      assert.equal(result.isError, true, dump(result));
      assert.match(resultText(result), pattern);
      await assertStillAnswers(kiln.client);
    });
  }

  test('run_python with an unknown session id returns isError mentioning "unknown session"', opts, async () => {
    const result = await runFull(kiln.client, '1+1', { session_id: 'this-session-does-not-exist' });
    assert.equal(result.isError, true, dump(result));
    assert.match(resultText(result), /unknown session/i);
    await assertStillAnswers(kiln.client);
  });

  test('a bad argument on an existing session leaves that session intact', opts, async () => {
    const first = await run(kiln.client, 'precious = 123');
    const bad = await callTool(kiln.client, 'run_python', { session_id: first.session_id, code: 7 });
    assert.equal(bad.isError, true, dump(bad));
    await assertKept(kiln.client, first.session_id, 'precious', '123');
  });
});

describe('code size limit with --max-code 1000', () => {
  const kiln = useServer({ args: ['--max-code', '1000'] });

  test('code over the size limit is refused with a message giving its size and the limit', opts, async () => {
    const code = `x = ${JSON.stringify('a'.repeat(2000))}`;
    const result = await runFull(kiln.client, code);
    assert.equal(result.isError, true, dump(result));
    assert.equal(resultText(result), `the code is ${code.length} bytes, over the 1000-byte limit (--max-code)`);
    await assertStillAnswers(kiln.client);
  });

  test('code under the size limit still runs', opts, async () => {
    await expectResult(kiln.client, `len(${JSON.stringify('b'.repeat(500))})`, '500');
  });
});

describe('malformed JSON-RPC over raw stdio (--max-message 100000)', () => {
  const raw = useRawServer({ args: ['--max-message', '100000'] });

  async function assertRawStillAnswers() {
    const response = await raw.runPython('1+1');
    assert.equal(response.result?.structuredContent?.result, '2', dump(response));
    assert.equal(raw.child.exitCode, null, 'kiln exited');
  }

  const isError = (m) => m && typeof m === 'object' && !Array.isArray(m) && 'error' in m;

  test('a line that is not JSON gets a parse error (-32700) with id null', opts, async () => {
    await raw.sendLine('this is {not json');
    const response = await raw.waitFor(isError);
    assert.equal(response.jsonrpc, '2.0');
    assert.equal(response.error.code, -32700, dump(response));
    assert.equal(response.id, null);
    assert.equal(typeof response.error.message, 'string');
    await assertRawStillAnswers();
  });

  for (const line of ['[]', '42', '"hello"', '{"jsonrpc":"2.0"}']) {
    test(`a JSON line that is not a request object (${line}) gets an invalid request error (-32600)`, opts, async () => {
      await raw.sendLine(line);
      const response = await raw.waitFor(isError);
      assert.equal(response.jsonrpc, '2.0');
      assert.equal(response.error.code, -32600, dump(response));
      assert.equal(response.id, null);
      await assertRawStillAnswers();
    });
  }

  test('a request for an unknown method gets a method-not-found error (-32601) with the same id', opts, async () => {
    const response = await raw.request('no/such/method', {}, 'unknown-method-1');
    assert.equal(response.jsonrpc, '2.0');
    assert.equal(response.id, 'unknown-method-1');
    assert.equal(response.error?.code, -32601, dump(response));
    await assertRawStillAnswers();
  });

  test('a numeric request id is echoed back unchanged', opts, async () => {
    const response = await raw.request('no/such/method', {}, 424242);
    assert.equal(response.id, 424242);
    assert.equal(response.error?.code, -32601, dump(response));
  });

  test('an unknown notification gets no response and does not disturb the server', opts, async () => {
    await raw.notify('notifications/no_such_notification', {});
    await assertRawStillAnswers();
    assert.ok(!raw.badLines.length, dump(raw.badLines));
  });

  test('a request under --max-message is processed normally', opts, async () => {
    const response = await raw.runPython(`len(${JSON.stringify('p'.repeat(50_000))})`);
    assert.equal(response.result?.structuredContent?.result, '50000', dump(response));
  });

  test('a line longer than --max-message gets an invalid request error (-32600) with its id, and the next request is answered', opts, async () => {
    const huge = JSON.stringify({
      jsonrpc: '2.0',
      id: 'too-long-1',
      method: 'tools/call',
      params: { name: 'run_python', arguments: { code: `x = ${JSON.stringify('q'.repeat(200_000))}` } },
    });
    assert.ok(huge.length > 100_000);
    await raw.sendLine(huge);
    const response = await raw.waitFor(isError);
    assert.deepEqual(response, {
      jsonrpc: '2.0',
      id: 'too-long-1',
      error: { code: -32600, message: `message of ${huge.length} bytes is over the 100000-byte limit (--max-message)` },
    });
    await assertRawStillAnswers();
  });

  test('no non-JSON text was written to stdout during the malformed-input tests', opts, async () => {
    assert.deepEqual(raw.badLines, []);
  });
});

describe('tools/call before initialize over raw stdio', () => {
  test('is refused without running, and the handshake still works after it', opts, async () => {
    await withRawServer({ initialize: false }, async (raw) => {
      const early = await raw.runPython('1+1');
      assert.equal(early.error?.code, -32600, dump(early));
      assert.match(early.error.message, /before initialize/);
      const init = await raw.initialize();
      assert.ok(init.result, dump(init));
      const later = await raw.runPython('1+1');
      assert.equal(later.result?.structuredContent?.result, '2', dump(later));
      assert.equal(later.result.structuredContent.execution_count, 1, dump(later));
    });
  });
});
