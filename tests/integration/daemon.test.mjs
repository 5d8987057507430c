// kiln serve --daemon: the MCP server's sessions on the user's kiln daemon
// (kernel/daemon), as a Jupyter kernel's are (tests/jupyter/test_daemon.py
// covers the daemon itself).  Two servers with the same options share the
// daemon's one zygote and start none of their own.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { withServer, runFull, dump, TEST_TIMEOUT } from './helpers.mjs';

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

describe('kiln serve --daemon', () => {
  test('two servers share the daemon’s zygote and start none of their own', opts, async () => {
    const xdg = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-xdg-'));
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-home-'));
    const env = { XDG_RUNTIME_DIR: xdg, KILN_HOME: home, KILN_DAEMON_IDLE: '30' };
    try {
      await withServer({ args: ['--daemon'], env }, async (a) => {
        const ra = await runFull(a.client, 'x = 6 * 7\nx');
        assert.equal(ra.structuredContent.status, 'ok', dump(ra.structuredContent));
        assert.equal(ra.structuredContent.result, '42');
        await withServer({ args: ['--daemon'], env }, async (b) => {
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
      const pid = daemonOf(xdg);
      if (pid) process.kill(pid, 'SIGKILL');
      fs.rmSync(xdg, { recursive: true, force: true });
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
