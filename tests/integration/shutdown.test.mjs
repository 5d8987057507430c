// Shutdown when the client closes stdin: the server exits and leaves no
// worker or grandchild process behind.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { withServer, withRawServer, run, pidAlive, leaveSleeper, parentOf, killAfterEach, sessionPid, pollUntil, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };
const watch = killAfterEach();

/**
 * Runs a cell through RUNCELL that leaves `sleep` running (found on the
 * host by its argument: a cell only sees pids of its own namespace);
 * resolves with [worker, sleep], the host pids of the sleep's parent and of
 * the sleep.
 */
async function startSleeper(runCell) {
  const { sleeper } = await leaveSleeper(runCell);
  const worker = parentOf(sleeper);
  watch(worker, sleeper);
  return [worker, sleeper];
}

/** Asserts that every [what, pid] is gone within ten seconds. */
async function assertAllGone(processes, when) {
  for (const [what, pid] of processes) {
    const gone = await pollUntil(() => !pidAlive(pid), 10_000);
    assert.ok(gone, `${what} process ${pid} is still running ${when}`);
  }
}

/** Resolves with the raw server's exit, or null if it is still running after MS. */
function exitWithin(raw, ms) {
  return Promise.race([raw.exited, new Promise((resolve) => setTimeout(() => resolve(null), ms))]);
}

const runRaw = (raw) => async (code) => (await raw.runPython(code)).result?.structuredContent;

describe('shutdown', () => {
  test('closing the client ends the server, its workers and their child processes', opts, async () => {
    await withServer({}, async (server) => {
      const [workerPid, sleepPid] = await startSleeper((code) => run(server.client, code));
      const other = await run(server.client, 'x = 1');
      const otherWorkerPid = await sessionPid(server.client, other.session_id);
      assert.ok(pidAlive(workerPid) && pidAlive(sleepPid) && pidAlive(otherWorkerPid));

      await server.close();

      await assertAllGone(
        [['kiln', server.pid], ['worker', workerPid], ['second worker', otherWorkerPid], ['sleep child', sleepPid]],
        'after the client closed',
      );
    });
  });

  test('end of input alone makes the server exit cleanly with no processes left behind', opts, async () => {
    await withRawServer({}, async (raw) => {
      const [workerPid, sleepPid] = await startSleeper(runRaw(raw));

      raw.child.stdin.end();
      const outcome = await exitWithin(raw, 30_000);
      assert.deepEqual(outcome, { code: 0, signal: null }, 'kiln did not exit cleanly after its stdin was closed');

      await assertAllGone([['worker', workerPid], ['sleep child', sleepPid]], 'after kiln exited');
    });
  });

  test('SIGTERM makes the server exit with no processes left behind', opts, async () => {
    await withRawServer({}, async (raw) => {
      const [workerPid, sleepPid] = await startSleeper(runRaw(raw));

      raw.child.kill('SIGTERM');
      assert.ok(await exitWithin(raw, 30_000), 'kiln did not exit after SIGTERM');

      await assertAllGone([['worker', workerPid], ['sleep child', sleepPid]], 'after kiln exited');
    });
  });
});
