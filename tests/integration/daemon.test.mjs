// kiln serve --daemon: the MCP server's sessions on the user's kiln daemon
// (kernel/daemon), as a Jupyter kernel's are (tests/jupyter/test_daemon.py
// covers the daemon itself).  Two servers with the same options share the
// daemon's one zygote and start none of their own, and the daemon owns
// their store: it writes kiln.db, they only read it.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

import { withServer, startServer, runFull, run, callTool, pollUntil, pidGone, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

/** The pids of the children of PID whose command name is COMM. */
function children(pid, comm) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue;
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid && name === comm) out.push(Number(d));
  }
  return out;
}

/** The pid of the daemon serving under the runtime directory XDG. */
function daemonOf(xdg) {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let cmd;
    try {
      cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (cmd[1] === 'daemon' && cmd.some((a) => a.startsWith(`${xdg}/`))) return Number(d);
  }
  return null;
}

/** How PID has FILE open: the access mode ('r', 'w' or 'rw') of each of
    its descriptors on it. */
function openModes(pid, file) {
  const modes = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== file) continue;
    const flags = parseInt(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').match(/^flags:\s+(\d+)/m)[1], 8);
    modes.push(['r', 'w', 'rw'][flags & 3]);
  }
  return modes;
}

/** Waits for the servers PIDS to exit, then kills the daemon under XDG
    and removes XDG and HOME: a server still stopping writes to its
    KILN_HOME (hibernating its sessions), and to the store itself once its
    daemon is gone. */
async function cleanUp(pids, xdg, home) {
  for (const p of pids) await pollUntil(() => pidGone(p), 15_000);
  const pid = daemonOf(xdg);
  if (pid) process.kill(pid, 'SIGKILL');
  fs.rmSync(xdg, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  fs.rmSync(home, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}

async function stateOf(client, id) {
  const r = await callTool(client, 'list_sessions', {});
  return r.structuredContent.sessions.find((s) => s.session_id === id);
}

describe('kiln serve --daemon', () => {
  test('two servers share the daemon’s zygote and start none of their own', opts, async () => {
    const xdg = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-xdg-'));
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-home-'));
    const pids = [];
    const env = { XDG_RUNTIME_DIR: xdg, KILN_HOME: home, KILN_DAEMON_IDLE: '30' };
    try {
      await withServer({ args: ['--daemon'], env }, async (a) => {
        pids.push(a.pid);
        const ra = await runFull(a.client, 'x = 6 * 7\nx');
        assert.equal(ra.structuredContent.status, 'ok', dump(ra.structuredContent));
        assert.equal(ra.structuredContent.result, '42');
        await withServer({ args: ['--daemon'], env }, async (b) => {
        pids.push(b.pid);
          const rb = await runFull(b.client, 'import numpy; int(numpy.arange(5).sum())');
          assert.equal(rb.structuredContent.result, '10', dump(rb.structuredContent));
          const daemon = daemonOf(xdg);
          assert.ok(daemon, 'no daemon was started');
          assert.equal(children(daemon, 'kiln-zygote').length, 1);
          assert.deepEqual(children(a.pid, 'kiln-zygote'), []);
          assert.deepEqual(children(b.pid, 'kiln-zygote'), []);
          // The sessions' sandboxes are the daemon's children.
          assert.deepEqual(children(a.pid, 'kiln-init'), []);
          assert.ok(children(daemon, 'kiln-init').length >= 2);
        });
      });
    } finally {
      await cleanUp(pids, xdg, home);
    }
  });

  test('the daemon owns the store: servers only read kiln.db, and their history and hibernated sessions are kept through it', { timeout: 2 * TEST_TIMEOUT }, async () => {
    const xdg = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-xdg-'));
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-home-'));
    const pids = [];
    const env = { XDG_RUNTIME_DIR: xdg, KILN_HOME: home, KILN_DAEMON_IDLE: '30' };
    const db = path.join(home, 'kiln.db');
    try {
      // A snapshot of 8 MB is kept in a file beside the database, which
      // the daemon takes over from the server.
      const id = await withServer({ args: ['--daemon', '--idle-hibernate', '1'], env }, async (a) => {
        pids.push(a.pid);
        const sc = await run(a.client, 'import numpy as np\nbig = np.arange(1_000_000)\nx = 41\nx + 1');
        assert.equal(sc.result, '42', dump(sc));
        const daemon = daemonOf(xdg);
        assert.ok(daemon, 'no daemon was started');
        assert.deepEqual(openModes(a.pid, db).filter((m) => m !== 'r'), [], `the server opened kiln.db to write: ${a.stderr()}`);
        assert.ok(openModes(a.pid, db).length >= 1, 'the server does not read kiln.db');
        assert.ok(openModes(daemon, db).includes('rw'), 'the daemon does not write kiln.db');
        // Hibernated through the daemon, restored from what it stored.
        assert.ok(await pollUntil(async () => (await stateOf(a.client, sc.session_id))?.state === 'hibernated', 30_000, 100),
          'the session was not hibernated');
        const back = await run(a.client, 'x + int(big[-1] == 999_999)', { session_id: sc.session_id });
        assert.equal(back.result, '42', dump(back));
        assert.match(back.notice, /restored from its snapshot/, dump(back));
        return sc.session_id;
      });
      // The server hibernated the session again as it stopped; the next
      // server, on the same daemon, restores it.
      await withServer({ args: ['--daemon'], env }, async (b) => {
        pids.push(b.pid);
        const back = await run(b.client, 'x + 1', { session_id: id });
        assert.equal(back.result, '42', dump(back));
        assert.match(back.notice, /restored from its snapshot/, dump(back));
        assert.deepEqual(openModes(b.pid, db).filter((m) => m !== 'r'), [], 'the server opened kiln.db to write');
      });
      // Every cell is in the history the daemon wrote, once the servers
      // (which sync their writes with it as they stop) are gone.
      for (const p of pids) await pollUntil(() => pidGone(p), 15_000);
      const history = execFileSync(process.env.KILN_BIN, ['history', '--home', home, id], { encoding: 'utf8' });
      for (const code of ['big = np.arange', 'x + int(big', 'x + 1']) assert.ok(history.includes(code), `${code} is not in the history:\n${history}`);
    } finally {
      await cleanUp(pids, xdg, home);
    }
  });

  test('history expires only for sessions no server on the daemon has open', opts, async () => {
    const xdg = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-xdg-'));
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-home-'));
    const pids = [];
    // Each server expires the history older than 2 s of sessions it does
    // not have open, every half second.
    const env = { XDG_RUNTIME_DIR: xdg, KILN_HOME: home, KILN_DAEMON_IDLE: '30' };
    const args = ['--daemon', '--session-ttl', '2'];
    const historyOf = () => execFileSync(process.env.KILN_BIN, ['history', '--home', home], { encoding: 'utf8' });
    try {
      await withServer({ args, env }, async (a) => {
        pids.push(a.pid);
        const keptA = await run(a.client, 'kept_a = 1');
        const gone = await run(a.client, 'closed_c = 1');
        assert.equal(keptA.status, 'ok', dump(keptA));
        await callTool(a.client, 'close_session', { session_id: gone.session_id });
        await withServer({ args, env }, async (b) => {
        pids.push(b.pid);
          const keptB = await run(b.client, 'kept_b = 1');
          assert.equal(keptB.status, 'ok', dump(keptB));
          // The closed session's history goes; each open one's stays,
          // though the other server does not have it open.
          assert.ok(await pollUntil(() => !historyOf().includes('closed_c = 1'), 20_000, 200),
            `the closed session's history did not expire:\n${historyOf()}`);
          await new Promise((r) => setTimeout(r, 3000));
          const h = historyOf();
          assert.ok(h.includes('kept_a = 1') && h.includes('kept_b = 1'), `an open session's history expired:\n${h}`);
        });
      });
    } finally {
      await cleanUp(pids, xdg, home);
    }
  });

  test('three servers writing at once through the daemon lose no history row', opts, async () => {
    const xdg = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-xdg-'));
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-home-'));
    const pids = [];
    const env = { XDG_RUNTIME_DIR: xdg, KILN_HOME: home, KILN_DAEMON_IDLE: '30' };
    const servers = [];
    try {
      for (let i = 0; i < 3; i++) servers.push(await startServer({ args: ['--daemon'], env }));
      pids.push(...servers.map((s) => s.pid));
      const CELLS = 40;
      await Promise.all(servers.map(async (s, i) => {
        let sid;
        for (let n = 0; n < CELLS; n++) {
          const sc = await run(s.client, `mark = "m-${i}-${n}"`, sid ? { session_id: sid } : {});
          assert.equal(sc.status, 'ok', dump(sc));
          sid = sc.session_id;
        }
      }));
      for (const s of servers) await s.close();
      servers.length = 0;
      // Each server syncs its writes with the daemon before it exits.
      for (const p of pids) await pollUntil(() => pidGone(p), 15_000);
      const history = execFileSync(process.env.KILN_BIN, ['history', '--home', home], { encoding: 'utf8', maxBuffer: 1 << 24 });
      const missing = [];
      for (let i = 0; i < 3; i++) for (let n = 0; n < CELLS; n++) if (!history.includes(`"m-${i}-${n}"`)) missing.push(`m-${i}-${n}`);
      assert.deepEqual(missing, [], `rows missing from the history:\n${history.slice(0, 2000)}`);
    } finally {
      for (const s of servers) await s.close().catch(() => {});
      await cleanUp(pids, xdg, home);
    }
  });
});
