// The zygote: a missing preload module is logged and skipped, and a zygote
// that dies is restarted without losing the sessions that already exist.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';

import { startServer, run, dump, pollUntil, pidGone, TEST_TIMEOUT, HOOK_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

/** Pids of the direct children of PID whose process name is NAME. */
function childrenNamed(pid, name) {
  const found = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    for (const kid of kids ? kids.split(/\s+/).map(Number) : []) {
      try {
        if (readFileSync(`/proc/${kid}/comm`, 'utf8').trim() === name) found.push(kid);
      } catch {
        // exited meanwhile
      }
    }
  }
  return found;
}

describe('a preload module that does not exist', () => {
  let server;

  before(async () => {
    server = await startServer(['--preload', 'colorsys,no_such_module_kiln']);
  }, { timeout: HOOK_TIMEOUT });

  after(async () => {
    await server?.close();
  }, { timeout: HOOK_TIMEOUT });

  test('is named in the start-up line and skipped; the others load and cells run', opts, async () => {
    const sc = await run(server.client, "import sys; ('colorsys' in sys.modules, 'no_such_module_kiln' in sys.modules)");
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, '(True, False)');
    const line = await pollUntil(() => (server.stderr().includes('no_such_module_kiln') ? server.stderr() : ''));
    assert.match(line, /not loaded: no_such_module_kiln/);
  });
});

describe('a zygote that dies', () => {
  let server;

  before(async () => {
    server = await startServer(['--spares', '0']);
  }, { timeout: HOOK_TIMEOUT });

  after(async () => {
    await server?.close();
  }, { timeout: HOOK_TIMEOUT });

  test('is restarted: existing sessions keep their state and new sessions start', opts, async () => {
    const old = await run(server.client, 'kept = 42');
    assert.equal(old.status, 'ok', dump(old));
    const [zygote] = childrenNamed(server.pid, 'kiln-zygote');
    assert.ok(zygote, 'no kiln-zygote child of the server');
    process.kill(zygote, 'SIGKILL');
    assert.ok(await pollUntil(() => pidGone(zygote)), 'the zygote was not reaped');
    const replacement = await pollUntil(() => childrenNamed(server.pid, 'kiln-zygote').find((p) => p !== zygote));
    assert.ok(replacement, 'no new zygote was started');
    const fresh = await run(server.client, '1+1');
    assert.equal(fresh.status, 'ok', dump(fresh));
    assert.equal(fresh.new_session, true);
    const again = await run(server.client, 'kept', { session_id: old.session_id });
    assert.equal(again.result, '42', dump(again));
  });
});
