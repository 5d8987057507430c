// Shutdown when the client closes stdin: the server exits and leaves no
// worker or grandchild process behind.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  startServer,
  startRaw,
  run,
  pidAlive,
  pollUntil,
  dump,
  TEST_TIMEOUT,
} from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

const SPAWN_SLEEPER =
  'import subprocess, os; p = subprocess.Popen(["sleep","300"]); (os.getpid(), p.pid)';

function parsePids(result) {
  const match = /^\((\d+), (\d+)\)$/.exec(result ?? '');
  assert.ok(match, `unexpected result ${JSON.stringify(result)}`);
  return [Number(match[1]), Number(match[2])];
}

describe('shutdown', () => {
  test('closing the client ends the server, its workers and their child processes', opts, async () => {
    const server = await startServer();
    const kilnPid = server.transport.pid;
    let workerPid;
    let sleepPid;
    try {
      const sc = await run(server.client, SPAWN_SLEEPER);
      assert.equal(sc.status, 'ok', dump(sc));
      [workerPid, sleepPid] = parsePids(sc.result);
      const other = await run(server.client, 'import os; os.getpid()');
      const otherWorkerPid = Number(other.result);
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
      const response = await raw.runPython(SPAWN_SLEEPER);
      const sc = response.result?.structuredContent;
      assert.equal(sc?.status, 'ok', dump(response));
      [workerPid, sleepPid] = parsePids(sc.result);

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
      const response = await raw.runPython(SPAWN_SLEEPER);
      const sc = response.result?.structuredContent;
      assert.equal(sc?.status, 'ok', dump(response));
      [workerPid, sleepPid] = parsePids(sc.result);

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
