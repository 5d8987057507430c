// Every terminal path releases what it created: a session's cgroups go
// when its worker goes, however it goes (a closed session, a killed
// worker, a zygote killed while spawns were in flight), and a server that
// shuts down leaves no kiln-<pid> group behind.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

import {
  startServer, run, callTool, sessionPid, childrenOf, commOf, pollUntil, TEST_TIMEOUT, HOOK_TIMEOUT,
} from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT * 2 };

/** The kiln-<pid> group of PID under each v1 controller kiln uses. */
function groupsOf(pid) {
  const dirs = [];
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, ctrls, path] = line.split(':');
    for (const c of ['memory', 'pids', 'cpu']) {
      if (!ctrls.split(',').includes(c)) continue;
      dirs.push(`/sys/fs/cgroup/${ctrls}${path === '/' ? '' : path}/kiln-${pid}`);
    }
  }
  return dirs;
}

/** Session groups under the server's groups (one per live worker). */
function sessionGroups(pid) {
  return groupsOf(pid).flatMap((d) => {
    try {
      return readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `${d}/${e.name}`);
    } catch {
      return [];
    }
  });
}

const workers = (pid) => childrenOf(pid).filter((p) => commOf(p) === 'kiln-init');
const zygoteOf = (pid) => childrenOf(pid).find((p) => commOf(p) === 'kiln-zygote');

const haveCgroups = process.getuid() === 0 && existsSync('/sys/fs/cgroup/memory');
const why = haveCgroups ? false : 'needs root and v1 memory/pids cgroups (the groups are counted on the host)';

describe('cgroups are released on every terminal path', { skip: why }, () => {
  let server;
  before(async () => {
    server = await startServer(['--spares', '2']);
  }, { timeout: HOOK_TIMEOUT });
  after(async () => server?.close());

  /** Waits until the server's session groups are exactly one per live worker. */
  async function settled(what) {
    let last;
    const ok = await pollUntil(() => {
      const controllers = groupsOf(server.pid).filter((d) => existsSync(d)).length;
      last = { groups: sessionGroups(server.pid).length, workers: workers(server.pid).length, controllers };
      return last.workers > 0 && last.groups === last.workers * controllers;
    }, 15_000);
    assert.ok(ok, `${what}: ${JSON.stringify(last)}`);
  }

  test('closing sessions and killing workers leaves one group per live worker', opts, async () => {
    await settled('at start');
    const a = await run(server.client, 'x = 1');
    const b = await run(server.client, 'y = 2');
    await settled('two sessions');
    await callTool(server.client, 'close_session', { session_id: a.session_id });
    await settled('one closed');
    process.kill(await sessionPid(server.client, b.session_id), 'SIGKILL');
    const again = await run(server.client, '1', { session_id: b.session_id });
    assert.equal(again.state_lost, true);
    await settled('a worker killed and replaced');
  });

  test('a zygote killed while spawns are in flight leaks no group', opts, async () => {
    for (let round = 0; round < 3; round++) {
      const z = zygoteOf(server.pid);
      assert.ok(z, 'a zygote');
      // New sessions ask for workers (spares refill) while it dies.
      const cells = [run(server.client, 'pass'), run(server.client, 'pass')];
      process.kill(z, 'SIGKILL');
      await Promise.allSettled(cells);
      await pollUntil(() => zygoteOf(server.pid) !== undefined, 15_000);
      await run(server.client, 'pass');
      await settled(`after zygote kill ${round}`);
    }
  });

  test('a server that shuts down leaves no kiln-<pid> group', opts, async () => {
    const s = await startServer([]);
    await run(s.client, 'pass');
    const pid = s.pid;
    assert.ok(groupsOf(pid).some((d) => existsSync(d)), 'the server made its groups');
    await s.close();
    const gone = await pollUntil(() => groupsOf(pid).every((d) => !existsSync(d)), 10_000);
    assert.ok(gone, `left behind: ${groupsOf(pid).filter((d) => existsSync(d))}`);
  });
});
