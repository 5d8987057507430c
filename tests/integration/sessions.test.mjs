// list_sessions and close_session.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, assertKept, runFull, callTool, resultText, pidGone, pollUntil, dump, TEST_TIMEOUT, sessionPid, childrenOf, commOf } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

async function listSessions(client) {
  const result = await callTool(client, 'list_sessions', {});
  assert.ok(!result.isError, dump(result));
  assert.ok(result.structuredContent, `list_sessions returned no structuredContent: ${dump(result)}`);
  assert.ok(Array.isArray(result.structuredContent.sessions), dump(result.structuredContent));
  return result.structuredContent.sessions;
}

describe('session management', () => {
  const kiln = useServer();

  test('list_sessions lists every created session with its id, state, pid, count and timestamps', opts, async () => {
    const a = await run(kiln.client, 'import os; os.getpid()');
    const b = await run(kiln.client, 'import os; os.getpid()');
    await run(kiln.client, 'n = 1', { session_id: b.session_id });

    const sessions = await listSessions(kiln.client);
    const byId = new Map(sessions.map((s) => [s.session_id, s]));
    for (const [created, count] of [[a, 1], [b, 2]]) {
      const entry = byId.get(created.session_id);
      assert.ok(entry, `session ${created.session_id} missing from ${dump(sessions)}`);
      assert.equal(typeof entry.state, 'string', dump(entry));
      assert.ok(Number.isInteger(entry.pid), dump(entry));
      // The pid is the host pid of the session's sandbox: the init of its
      // pid namespace, whose child is the Python worker.
      assert.ok(
        childrenOf(entry.pid).some((kid) => commOf(kid) === 'kiln-worker'),
        `pid ${entry.pid} is not the session's sandbox: ${dump(entry)}`,
      );
      assert.equal(entry.execution_count, count, dump(entry));
      assert.ok(entry.created_at !== undefined && entry.created_at !== null, dump(entry));
      assert.ok(entry.last_used_at !== undefined && entry.last_used_at !== null, dump(entry));
    }
  });

  test('list_sessions returns a text content block as well', opts, async () => {
    await run(kiln.client, 'pass');
    const result = await callTool(kiln.client, 'list_sessions', {});
    assert.ok(Array.isArray(result.content) && result.content.length >= 1, dump(result));
    assert.equal(result.content[0].type, 'text');
  });

  test('close_session confirms the close with the session id and closed: true', opts, async () => {
    const created = await run(kiln.client, 'pass');
    const result = await callTool(kiln.client, 'close_session', { session_id: created.session_id });
    assert.ok(!result.isError, dump(result));
    assert.deepEqual(
      { session_id: result.structuredContent?.session_id, closed: result.structuredContent?.closed },
      { session_id: created.session_id, closed: true },
    );
  });

  test('a closed session disappears from list_sessions', opts, async () => {
    const created = await run(kiln.client, 'pass');
    const before = await listSessions(kiln.client);
    assert.ok(before.some((s) => s.session_id === created.session_id));
    await callTool(kiln.client, 'close_session', { session_id: created.session_id });
    const after = await listSessions(kiln.client);
    assert.ok(!after.some((s) => s.session_id === created.session_id), dump(after));
  });

  test('closing a session ends its worker process', opts, async () => {
    const created = await run(kiln.client, 'x = 1');
    const workerPid = await sessionPid(kiln.client, created.session_id);
    assert.ok(Number.isInteger(workerPid) && workerPid > 0, dump(created));
    assert.ok(!pidGone(workerPid), 'worker should be alive before close');
    const result = await callTool(kiln.client, 'close_session', { session_id: created.session_id });
    assert.ok(!result.isError, dump(result));
    const gone = await pollUntil(() => pidGone(workerPid), 5_000);
    assert.ok(gone, `worker ${workerPid} still exists after close_session`);
  });

  test('run_python on a closed session id is an error', opts, async () => {
    const created = await run(kiln.client, 'x = 1');
    await callTool(kiln.client, 'close_session', { session_id: created.session_id });
    const result = await runFull(kiln.client, 'x', { session_id: created.session_id });
    assert.equal(result.isError, true, dump(result));
    assert.equal(
      resultText(result),
      `unknown session '${created.session_id}' (closed, or never created); omit session_id to start a new session`,
    );
  });

  test('closing one session leaves the others intact', opts, async () => {
    const keep = await run(kiln.client, 'kept = "kept"');
    const drop = await run(kiln.client, 'pass');
    await callTool(kiln.client, 'close_session', { session_id: drop.session_id });
    const after = await run(kiln.client, 'kept', { session_id: keep.session_id });
    assert.equal(after.result, "'kept'");
    const sessions = await listSessions(kiln.client);
    assert.ok(sessions.some((s) => s.session_id === keep.session_id));
  });

  test('closing an unknown session id is an error', opts, async () => {
    const result = await callTool(kiln.client, 'close_session', { session_id: 'no-such-session-id' });
    assert.equal(result.isError, true, dump(result));
    assert.equal(resultText(result), "unknown session 'no-such-session-id'");
  });

  test('close_session without a session_id is an error naming the argument', opts, async () => {
    const result = await callTool(kiln.client, 'close_session', {});
    assert.equal(result.isError, true, dump(result));
    assert.match(resultText(result), /session_id/);
  });
});

describe('session limit with --max-sessions 2', () => {
  const kiln = useServer({ args: ['--max-sessions', '2'] });

  test('a third session is refused while two are open, and both open sessions keep working', opts, async () => {
    const a = await run(kiln.client, 'who = "a"');
    const b = await run(kiln.client, 'who = "b"');
    assert.equal(a.status, 'ok', dump(a));
    assert.equal(b.status, 'ok', dump(b));

    const third = await runFull(kiln.client, '1+1');
    assert.equal(third.isError, true, dump(third));
    assert.equal(resultText(third), '2 sessions are open, the limit (--max-sessions); close one with close_session');
    const open = (await listSessions(kiln.client)).map((s) => s.session_id).sort();
    assert.deepEqual(open, [a.session_id, b.session_id].sort());

    for (const [sc, who] of [[a, "'a'"], [b, "'b'"]]) {
      await assertKept(kiln.client, sc.session_id, 'who', who);
    }
  });

  test('closing a session makes room for a new one', opts, async () => {
    for (const s of await listSessions(kiln.client)) {
      await callTool(kiln.client, 'close_session', { session_id: s.session_id });
    }
    const a = await run(kiln.client, '1');
    const b = await run(kiln.client, '2');
    assert.equal(a.status, 'ok', dump(a));
    assert.equal(b.status, 'ok', dump(b));
    await callTool(kiln.client, 'close_session', { session_id: a.session_id });
    const c = await run(kiln.client, '3');
    assert.equal(c.status, 'ok', dump(c));
    assert.equal(c.result, '3');
  });
});
