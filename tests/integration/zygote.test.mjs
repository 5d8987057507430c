// The zygote: a missing preload module is logged and skipped, and a zygote
// that dies is restarted without losing the sessions that already exist.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, run, dump, pollUntil, pidGone, childrenOf, commOf, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

/** Pids of the direct children of PID whose process name is NAME. */
const childrenNamed = (pid, name) => childrenOf(pid).filter((kid) => commOf(kid) === name);

describe('a preload module that does not exist', () => {
  const kiln = useServer({ args: ['--preload', 'colorsys,no_such_module_kiln'] });

  test('is named in the start-up line and skipped; the others load and cells run', opts, async () => {
    const sc = await run(kiln.client, "import sys; ('colorsys' in sys.modules, 'no_such_module_kiln' in sys.modules)");
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, '(True, False)');
    const line = await pollUntil(() => (kiln.stderr().includes('no_such_module_kiln') ? kiln.stderr() : ''));
    assert.match(line, /not loaded: no_such_module_kiln/);
  });
});

describe('a zygote that dies', () => {
  const kiln = useServer({ args: ['--spares', '0'] });

  test('is restarted: existing sessions keep their state and new sessions start', opts, async () => {
    const old = await run(kiln.client, 'kept = 42');
    assert.equal(old.status, 'ok', dump(old));
    const [zygote] = childrenNamed(kiln.pid, 'kiln-zygote');
    assert.ok(zygote, 'no kiln-zygote child of the server');
    process.kill(zygote, 'SIGKILL');
    assert.ok(await pollUntil(() => pidGone(zygote)), 'the zygote was not reaped');
    const replacement = await pollUntil(() => childrenNamed(kiln.pid, 'kiln-zygote').find((p) => p !== zygote));
    assert.ok(replacement, 'no new zygote was started');
    const fresh = await run(kiln.client, '1+1');
    assert.equal(fresh.status, 'ok', dump(fresh));
    assert.equal(fresh.new_session, true);
    const again = await run(kiln.client, 'kept', { session_id: old.session_id });
    assert.equal(again.result, '42', dump(again));
  });
});
