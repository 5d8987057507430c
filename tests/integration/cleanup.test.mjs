// Every terminal path releases what it created: a session's cgroups go
// when its worker goes, however it goes (a closed session, a killed
// worker, a zygote killed while spawns were in flight), and a server that
// shuts down leaves no kiln-<pid> group behind.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  startServer, useServer, run, callTool, sessionPid, childrenOf, commOf, pollUntil, TEST_TIMEOUT, HOOK_TIMEOUT,
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
  const server = useServer({ args: ['--spares', '2'] });

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
    // The front notices the death (SIGCHLD) before the next call runs.
    const lost = await pollUntil(async () => {
      const list = await callTool(server.client, 'list_sessions', {});
      return list.structuredContent.sessions.find((x) => x.session_id === b.session_id)?.state === 'lost';
    });
    assert.ok(lost, 'the session is lost once its worker is killed');
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
    const s = await startServer();
    await run(s.client, 'pass');
    const pid = s.pid;
    assert.ok(groupsOf(pid).some((d) => existsSync(d)), 'the server made its groups');
    await s.close();
    const gone = await pollUntil(() => groupsOf(pid).every((d) => !existsSync(d)), 10_000);
    assert.ok(gone, `left behind: ${groupsOf(pid).filter((d) => existsSync(d))}`);
  });

  test('a kiln killed with SIGKILL leaves groups, session and packages directories that the next kiln removes', opts, async () => {
    const home = mkdtempSync(join(tmpdir(), 'kiln-home-'));
    try {
      const a = await startServer({ env: { KILN_HOME: home } });
      // An image and a kept stdout: both live in the session's directory.
      const r = await run(a.client, 'from PIL import Image\nImage.new("RGB", (8, 8)).show()\nprint("k" * 5000)');
      assert.equal(r.artifacts.length, 1);
      assert.ok(r.stdout_uri, 'the stdout was not kept');
      const pid = a.pid;
      const dirs = readdirSync(join(home, 'sessions'));
      assert.ok(dirs.includes(r.session_id));
      // Its packages directory, which a package installed into it fills.
      const packages = join(home, 'packages', 'sessions', r.session_id);
      assert.ok(existsSync(packages), `${packages} was not made`);
      process.kill(pid, 'SIGKILL');
      await pollUntil(() => !existsSync(`/proc/${pid}`) || commOf(pid) === null);
      assert.ok(groupsOf(pid).some((d) => existsSync(d)), 'SIGKILL left the groups behind');
      const b = await startServer({ env: { KILN_HOME: home } });
      try {
        assert.ok(groupsOf(pid).every((d) => !existsSync(d)), `left: ${groupsOf(pid).filter((d) => existsSync(d))}`);
        const left = readdirSync(join(home, 'sessions'));
        for (const d of dirs) assert.ok(!left.includes(d), `session directory ${d} of the dead kiln is still there`);
        assert.ok(!existsSync(packages), `the packages directory of the dead kiln's session is still there`);
        // The new kiln's own sessions are untouched by the sweep.
        const mine = await run(b.client, '1 + 1');
        assert.equal(mine.result, '2');
      } finally {
        await b.close();
      }
      await a.close().catch(() => {});
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
