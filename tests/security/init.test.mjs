// kiln's init, PID 1 of each session's pid namespace, only reaps and
// relays the front's signals, so it keeps nothing a cell could borrow:
// the worker's own uid, no capabilities, no new privileges, and a seccomp
// filter of its own.  And the cell cannot stop it.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, useBystander, run, TEST_TIMEOUT } from '../integration/helpers.mjs';
import { attack, jailArgs, modeName, unjailed } from './mode.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe(`the namespace's init (${modeName})`, () => {
  const server = useServer({ args: jailArgs });
  const bystander = useBystander(server);


  attack(test, 'runs as the worker\'s uid with no capabilities, no new privileges and a seccomp filter', opts, async () => {
    const r = await run(server.client, [
      'import os, json',
      'f = dict(l.split(":\\t", 1) for l in open("/proc/1/status").read().splitlines() if ":\\t" in l)',
      'print(json.dumps({k: f[k].split()[0] for k in ("Uid", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")} | {"me": str(os.getuid())}))',
    ].join('\n'));
    const got = JSON.parse(r.stdout);
    assert.deepEqual(got, {
      Uid: got.me,
      CapPrm: '0000000000000000',
      CapEff: '0000000000000000',
      CapBnd: '0000000000000000',
      CapAmb: '0000000000000000',
      NoNewPrivs: '1',
      Seccomp: '2',
      me: got.me,
    });
    await bystander.unharmed();
  });

  attack(test, 'a cell cannot stop or kill its init, nor make it signal the worker', opts, async () => {
    const r = await run(server.client, [
      'import os, signal, time',
      'for s in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGUSR1):',
      '    try:',
      '        os.kill(1, s)',
      '    except PermissionError:',
      '        pass',
      'time.sleep(0.5)',
      'open("/proc/1/stat").read().split(") ")[1][0]',
    ].join('\n'));
    assert.equal(r.status, 'ok', JSON.stringify(r.error));
    assert.notEqual(r.result, "'T'");
    const again = await run(server.client, '21 * 2', { session_id: r.session_id });
    assert.equal(again.result, '42');
    assert.equal(again.state_lost, false);
    await bystander.unharmed();
  }, { skip: unjailed && "without the jail PID 1 is the host's init: it is not signalled" });
});
