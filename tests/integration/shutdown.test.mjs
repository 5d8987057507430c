// Shutdown when the client closes stdin: the server exits and leaves no
// worker or grandchild process behind.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  startServer,
  startRaw,
  run,
  pidAlive,
  hostPidsWithArg,
  sessionPid,
  pollUntil,
  dump,
  TEST_TIMEOUT,
} from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

// The cell starts `sleep` with a unique argument, so that the host can find
// it (a cell only sees pids of its own namespace) and, as its parent, the
// worker.
let sleepers = 0;
function spawnSleeper() {
  const marker = `300.${process.pid}${++sleepers}`;
  return { marker, code: `import subprocess; p = subprocess.Popen(["sleep", "${marker}"]); 'started'` };
}

function ppidOf(pid) {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
}

/** [worker, sleep] host pids of the sleeper started with MARKER. */
async function sleeperPids(marker) {
  const [sleepPid] = await pollUntil(() => {
    const found = hostPidsWithArg(marker);
    return found.length ? found : null;
  }, 10_000);
  return [ppidOf(sleepPid), sleepPid];
}

describe('shutdown', () => {
  test('closing the client ends the server, its workers and their child processes', opts, async () => {
    const server = await startServer();
    const kilnPid = server.transport.pid;
    let workerPid;
    let sleepPid;
    try {
      const sleeper = spawnSleeper();
      const sc = await run(server.client, sleeper.code);
      assert.equal(sc.status, 'ok', dump(sc));
      [workerPid, sleepPid] = await sleeperPids(sleeper.marker);
      const other = await run(server.client, 'x = 1');
      const otherWorkerPid = await sessionPid(server.client, other.session_id);
      assert.ok(pidAlive(workerPid) && pidAlive(sleepPid) && pidAlive(otherWorkerPid));

      await server.close();

      for (const [what, pid] of [
        ['kiln', kilnPid],
        ['worker', workerPid],
        ['second worker', otherWorkerPid],
        ['sleep child', sleepPid],
      ]) {
        const gone = await pollUntil(() => !pidAlive(pid), 10_000);
        assert.ok(gone, `${what} process ${pid} is still running after the client closed`);
      }
    } finally {
      for (const pid of [workerPid, sleepPid]) {
        if (pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    }
  });

  test('end of input alone makes the server exit cleanly with no processes left behind', opts, async () => {
    const raw = startRaw();
    let workerPid;
    let sleepPid;
    try {
      await raw.initialize();
      const sleeper = spawnSleeper();
      const response = await raw.runPython(sleeper.code);
      const sc = response.result?.structuredContent;
      assert.equal(sc?.status, 'ok', dump(response));
      [workerPid, sleepPid] = await sleeperPids(sleeper.marker);

      raw.child.stdin.end();
      const outcome = await Promise.race([
        raw.exited,
        new Promise((resolve) => setTimeout(() => resolve(null), 30_000)),
      ]);
      assert.ok(outcome, 'kiln did not exit after its stdin was closed');
      assert.equal(outcome.signal, null, `kiln was ended by ${outcome.signal}`);
      assert.equal(outcome.code, 0, `kiln exited with code ${outcome.code}`);

      for (const [what, pid] of [['worker', workerPid], ['sleep child', sleepPid]]) {
        const gone = await pollUntil(() => !pidAlive(pid), 10_000);
        assert.ok(gone, `${what} process ${pid} is still running after kiln exited`);
      }
    } finally {
      if (raw.child.exitCode === null && raw.child.signalCode === null) raw.child.kill('SIGKILL');
      for (const pid of [workerPid, sleepPid]) {
        if (pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    }
  });

  test('SIGTERM makes the server exit with no processes left behind', opts, async () => {
    const raw = startRaw();
    let workerPid;
    let sleepPid;
    try {
      await raw.initialize();
      const sleeper = spawnSleeper();
      const response = await raw.runPython(sleeper.code);
      const sc = response.result?.structuredContent;
      assert.equal(sc?.status, 'ok', dump(response));
      [workerPid, sleepPid] = await sleeperPids(sleeper.marker);

      raw.child.kill('SIGTERM');
      const outcome = await Promise.race([
        raw.exited,
        new Promise((resolve) => setTimeout(() => resolve(null), 30_000)),
      ]);
      assert.ok(outcome, 'kiln did not exit after SIGTERM');

      for (const [what, pid] of [['worker', workerPid], ['sleep child', sleepPid]]) {
        const gone = await pollUntil(() => !pidAlive(pid), 10_000);
        assert.ok(gone, `${what} process ${pid} is still running after kiln exited`);
      }
    } finally {
      if (raw.child.exitCode === null && raw.child.signalCode === null) raw.child.kill('SIGKILL');
      for (const pid of [workerPid, sleepPid]) {
        if (pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    }
  });
});
