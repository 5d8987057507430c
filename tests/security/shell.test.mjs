// The security battery's attacks that apply to a shell command: run_shell
// runs in the session's jail, so the host's files, the network, kiln's
// secrets, the front and the process limit hold against it as they hold
// against a cell.  Each attack asserts the exact failure, then that the
// front and a second session are unharmed.  Without the jail every attack
// must fail (mode.mjs); each then leaves the host as it found it: files
// it manages to write are removed, the front is probed with signal 0, the
// bomb stops at a ceiling above the jail's limit.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { useServer, useBystander, run, assertKept, dump, pollUntil, hostPidsWithArg, TEST_TIMEOUT } from '../integration/helpers.mjs';
import { shell } from '../integration/shell-helpers.mjs';
import { attack, unprivileged, jailArgs, modeName } from './mode.mjs';

const opts = { timeout: TEST_TIMEOUT };
const SECRET = `kiln-shell-secret-${process.pid}-${Date.now()}`;
const PROCESS_LIMIT = 64;

// A file on the host that no command may read.
const dir = mkdtempSync(join(tmpdir(), 'kiln-shell-security-'));
const planted = join(dir, 'planted-secret.txt');
writeFileSync(planted, SECRET, { mode: 0o644 });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

describe(`a shell command in the worker jail (${modeName})`, () => {
  const kiln = useServer({
    args: ['--memory', '256M', '--max-procs', String(PROCESS_LIMIT), '--grace', '1', ...jailArgs],
    env: { KILN_TEST_SECRET: SECRET },
  });
  const bystander = useBystander(kiln);

  /** An attack whose command must end with EXIT and print exactly STDOUT and STDERR. */
  const expectCommand = (name, command, { exit, stdout = '', stderr = '' }) =>
    attack(test, name, opts, async () => {
      const sc = await shell(kiln.client, typeof command === 'function' ? command() : command, { timeout_s: 30 });
      assert.equal(sc.exit_code, exit, dump(sc));
      assert.equal(sc.stdout, stdout, dump(sc));
      assert.equal(sc.stderr, typeof stderr === 'function' ? stderr() : stderr, dump(sc));
      await bystander.unharmed();
    });

  // --- the host's files ------------------------------------------------------
  expectCommand("the host's /etc/shadow cannot be read", 'cat /etc/shadow', {
    exit: 1,
    stderr: 'cat: /etc/shadow: No such file or directory\n',
  });
  expectCommand('a host file cannot be read by its absolute path', `cat ${planted}`, {
    exit: 1,
    stderr: `cat: ${planted}: No such file or directory\n`,
  });
  expectCommand('a host file cannot be reached through /proc/1/root or ..', `cat /proc/1/root${planted} /work/../..${planted}`, {
    exit: 1,
    stderr: `cat: /proc/1/root${planted}: Permission denied\ncat: /work/../..${planted}: No such file or directory\n`,
  });
  // Written and removed at once, so that without the jail the host is left
  // as it was.
  const PROBE = `kiln-shell-probe-${process.pid}`;
  expectCommand('nothing can be written outside /work and /tmp',
    `for p in /usr/${PROBE} /etc/${PROBE} /${PROBE} /bin/${PROBE}; do touch $p && rm -f $p; done; ` +
      `touch /tmp/${PROBE} /work/${PROBE} && echo tmp and work; rm -f /tmp/${PROBE} /work/${PROBE}`, {
      exit: 0,
      stdout: 'tmp and work\n',
      stderr: ['/usr/', '/etc/', '/', '/bin/'].map((d) => `touch: cannot touch '${d}${PROBE}': Read-only file system\n`).join(''),
    });

  // --- secrets and the front -------------------------------------------------
  expectCommand("a secret in kiln's environment is in no environment the command can read",
    `env | grep -c ${SECRET}; grep -l ${SECRET} /proc/[0-9]*/environ 2>/dev/null | wc -l`, {
      exit: 0,
      stdout: '0\n0\n',
    });
  expectCommand('the front cannot be signalled', () => `kill -0 ${kiln.pid}`, {
    exit: 1,
    stderr: () => `bash: line 1: kill: (${kiln.pid}) - No such process\n`,
  });

  // --- network ---------------------------------------------------------------
  attack(test, "a TCP listener on the host's 127.0.0.1 cannot be reached", opts, async () => {
    let connections = 0;
    const listener = net.createServer((s) => {
      connections += 1;
      s.destroy();
    });
    await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const { port } = listener.address();
    try {
      const sc = await shell(kiln.client, `exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected`, { timeout_s: 30 });
      assert.equal(sc.exit_code, 1, dump(sc));
      assert.equal(sc.stdout, '', dump(sc));
      assert.equal(sc.stderr, `bash: connect: Connection refused\nbash: line 1: /dev/tcp/127.0.0.1/${port}: Connection refused\n`);
      assert.equal(connections, 0);
    } finally {
      listener.close();
    }
    await bystander.unharmed();
  });
  // 192.0.2.1 is TEST-NET-1: routed nowhere, so a host with a default route
  // waits (timeout stops it) where the jail, with no route at all, refuses.
  expectCommand('an address beyond the host is unreachable', 'timeout 3 bash -c "exec 3<>/dev/tcp/192.0.2.1/80"', {
    exit: 1,
    stderr: 'bash: connect: Network is unreachable\nbash: line 1: /dev/tcp/192.0.2.1/80: Network is unreachable\n',
  });

  // --- resources -------------------------------------------------------------
  // Sleeps forked in a loop up to twice the limit, which only a missing jail
  // reaches.  They are still there at the deadline, whose interrupt and kill
  // must take the whole group: the same session then forks again.
  attack(test, 'a fork bomb stops at the process limit, dies with its group, and the session lives on', opts, async () => {
    const first = await run(kiln.client, 'x = "before the bomb"');
    const marker = `60.${process.pid}7`;
    const bomb = `for i in $(seq ${2 * PROCESS_LIMIT}); do sleep ${marker} & done; wait`;
    const sc = await shell(kiln.client, bomb, { session_id: first.session_id, timeout_s: 5 });
    assert.ok(['interrupted', 'killed'].includes(sc.status), dump(sc));
    assert.match(sc.stderr, /fork: (retry: )?Resource temporarily unavailable/, dump(sc));
    if (!unprivileged) assert.match(sc.notice ?? '', /process limit/, dump(sc));
    // Its sleeps ignore SIGINT (a background job's do): only the kill of
    // the whole group ends them.
    assert.ok(await pollUntil(() => hostPidsWithArg(marker).length === 0), 'the bomb outlived its deadline');
    const after = await shell(kiln.client, 'echo forks again', { session_id: first.session_id });
    assert.equal(after.stdout, 'forks again\n', dump(after));
    await assertKept(kiln.client, first.session_id, 'x', "'before the bomb'");
    await bystander.unharmed();
  });
});
