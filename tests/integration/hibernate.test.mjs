// Hibernation: an idle session is snapshotted in its own worker and its
// worker stopped; the next call restores it, also after kiln serve was
// restarted on the same KILN_HOME.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  TEST_TIMEOUT,
  callTool,
  dump,
  pidGone,
  pollUntil,
  run,
  withServer,
} from './helpers.mjs';

async function sessions(client) {
  const r = await callTool(client, 'list_sessions', {});
  return r.structuredContent.sessions;
}

async function stateOf(client, id) {
  return (await sessions(client)).find((s) => s.session_id === id);
}

/** Waits until session ID of CLIENT is hibernated; returns its listing. */
async function hibernated(client, id) {
  let last;
  const ok = await pollUntil(async () => {
    last = await stateOf(client, id);
    return last?.state === 'hibernated';
  }, 30_000, 100);
  assert.ok(ok, `session ${id} was not hibernated: ${dump(last)}`);
  return last;
}

function withHome(fn) {
  const home = mkdtempSync(join(tmpdir(), 'kiln-hib-'));
  return Promise.resolve(fn(home)).finally(() => rmSync(home, { recursive: true, force: true }));
}

const STATE = [
  'import pandas as pd',
  'x = 41',
  'def f(): return x + 1',
  'class K:',
  '    def m(self): return x * 2',
  'k = K()',
  'df = pd.DataFrame({"a": range(1000), "b": [str(i) for i in range(1000)]})',
  'with open("/work/data.txt", "w") as out: out.write("kept on disk")',
  'fh = open("/work/open.txt", "w")',
  'sq = lambda v: v * v',
].join('\n');

const CHECK = 'x = 50\n(f(), k.m(), int(df.a.sum()), df.b[999], open("/work/data.txt").read(), sq(7), "fh" in globals())';
const CHECKED = "(51, 100, 499500, '999', 'kept on disk', 49, False)";

describe('hibernation', () => {
  test('an idle session is hibernated (no process) and restored with its variables, functions, classes, DataFrames and files; an open file is reported lost', { timeout: TEST_TIMEOUT }, () =>
    withServer({ args: ['--idle-hibernate', '1'] }, async ({ client }) => {
      const sc = await run(client, STATE);
      assert.equal(sc.status, 'ok', dump(sc));
      const id = sc.session_id;
      const pid = (await stateOf(client, id)).pid;
      assert.ok(pid > 0);
      const listed = await hibernated(client, id);
      assert.equal(listed.pid, null, dump(listed));
      assert.ok(await pollUntil(() => pidGone(pid), 10_000), `worker ${pid} still runs while the session is hibernated`);

      const back = await run(client, CHECK, { session_id: id });
      assert.equal(back.status, 'ok', dump(back));
      assert.equal(back.result, CHECKED, dump(back));
      assert.equal(back.state_lost, false, dump(back));
      assert.match(back.notice, /restored from its snapshot of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/, dump(back));
      assert.match(back.notice, /Not restored: .*\bfh \(TextIOWrapper: Cannot pickle files/, dump(back));
      // The count goes on from where it was.
      assert.equal(back.execution_count, 2, dump(back));
      // The restored files are not reported as the cell's changes.
      assert.deepEqual(back.files, [], dump(back));
    }));

  test('a session outlives a restart of kiln serve on the same KILN_HOME', { timeout: 2 * TEST_TIMEOUT }, () =>
    withHome(async (home) => {
      const env = { KILN_HOME: home };
      let image;
      const id = await withServer({ env }, async ({ client }) => {
        const sc = await run(client, STATE);
        assert.equal(sc.status, 'ok', dump(sc));
        const fig = await run(client, 'import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()', { session_id: sc.session_id });
        assert.equal(fig.artifacts.length, 1, dump(fig));
        image = fig.artifacts[0].uri;
        return sc.session_id;
      });
      const png = async (client) => {
        const read = await client.readResource({ uri: image });
        return Buffer.from(read.contents[0].blob, 'base64').subarray(1, 4).toString();
      };
      await withServer({ env }, async ({ client }) => {
        const listed = await stateOf(client, id);
        assert.equal(listed?.state, 'hibernated', dump(await sessions(client)));
        // Its image is still there, while it sleeps and once restored.
        assert.equal(await png(client), 'PNG');
        const back = await run(client, CHECK, { session_id: id });
        assert.equal(back.result, CHECKED, dump(back));
        assert.equal(back.state_lost, false, dump(back));
        assert.match(back.notice, /restored from its snapshot/, dump(back));
        assert.equal(await png(client), 'PNG');
      });
      // Restored, the snapshot has served: a third server, after the
      // second hibernated it again on stopping, restores the newer state.
      await withServer({ env }, async ({ client }) => {
        const back = await run(client, 'x', { session_id: id });
        assert.equal(back.result, '50', dump(back));
      });
    }));

  test('past --max-snapshot the largest variables are dropped, and the restored session names them', { timeout: TEST_TIMEOUT }, () =>
    withServer({ args: ['--idle-hibernate', '1', '--max-snapshot', '64K'] }, async ({ client }) => {
      // No function is defined: nothing of the session's namespace goes
      // into the snapshot, and a None (here and in numpy's dtype state)
      // must stay None.
      const sc = await run(client, 'import numpy as np\nbig = b"x" * 1_000_000\nsmall = [1, 2, 3]\nnothing = None\narr = np.arange(3.0)');
      assert.equal(sc.status, 'ok', dump(sc));
      await hibernated(client, sc.session_id);
      const back = await run(client, '(small, "big" in globals(), nothing, arr.tolist())', { session_id: sc.session_id });
      assert.equal(back.result, '([1, 2, 3], False, None, [0.0, 1.0, 2.0])', dump(back));
      assert.match(back.notice, /Not restored: big \(over --max-snapshot\)/, dump(back));
    }));

  test('a damaged snapshot file is refused: that session starts fresh and says so, a bystander restores whole', { timeout: TEST_TIMEOUT }, () =>
    withServer({ args: ['--idle-hibernate', '1'] }, async ({ client, home }) => {
      // Over the size kept inline in the database: the snapshot is a file.
      const victim = await run(client, 'import os\nblob = os.urandom(6_000_000)\nv = 1');
      const bystander = await run(client, 'kept = "intact"');
      await hibernated(client, victim.session_id);
      await hibernated(client, bystander.session_id);
      const dir = join(home, 'snapshots');
      // The store's writer moves it into place just after the worker is
      // done with it.
      let files = [];
      await pollUntil(() => (files = readdirSync(dir).filter((n) => n.startsWith('snapshot-'))).length > 0);
      assert.equal(files.length, 1, dump(readdirSync(dir)));
      const path = join(dir, files[0]);
      const bytes = readFileSync(path);
      bytes[bytes.length >> 1] ^= 0xff;
      writeFileSync(path, bytes);

      const back = await run(client, '"v" in globals()', { session_id: victim.session_id });
      assert.equal(back.status, 'ok', dump(back));
      assert.equal(back.result, 'False', dump(back));
      assert.equal(back.state_lost, true, dump(back));
      assert.match(back.notice, /could not be restored \(the snapshot is damaged/, dump(back));
      const kept = await run(client, 'kept', { session_id: bystander.session_id });
      assert.equal(kept.result, "'intact'", dump(kept));
      assert.equal(kept.state_lost, false, dump(kept));
    }));

  test('a hostile snapshot made by the session itself harms only that session', { timeout: TEST_TIMEOUT }, () =>
    withServer({ args: ['--idle-hibernate', '1'] }, async ({ client }) => {
      // Unpickling it ends the restoring worker (os._exit); a variant that
      // tries the host's files would meet the jail, as every cell does.
      const hostile = await run(client, [
        'import os',
        'class Evil:',
        '    def __reduce__(self):',
        '        return (os._exit, (7,))',
        'evil = Evil()',
      ].join('\n'));
      assert.equal(hostile.status, 'ok', dump(hostile));
      const bystander = await run(client, 'kept = "intact"');
      await hibernated(client, hostile.session_id);
      await hibernated(client, bystander.session_id);

      const back = await run(client, '1 + 1', { session_id: hostile.session_id });
      assert.equal(back.status, 'ok', dump(back));
      assert.equal(back.result, '2', dump(back));
      assert.equal(back.state_lost, true, dump(back));
      const kept = await run(client, 'kept', { session_id: bystander.session_id });
      assert.equal(kept.result, "'intact'", dump(kept));
      assert.equal(kept.state_lost, false, dump(kept));
    }));

  test('a hibernated session unused for --session-ttl is deleted with its snapshot and history, and a closed session\'s history goes too', { timeout: TEST_TIMEOUT }, () =>
    withServer({ args: ['--idle-hibernate', '1', '--session-ttl', '3'] }, async ({ client, home }) => {
      const sc = await run(client, 'x = 1');
      const id = sc.session_id;
      // A session closed by its client: its history goes after the TTL too.
      const closed = (await run(client, 'y = 2')).session_id;
      await callTool(client, 'close_session', { session_id: closed });
      const historyOf = async (sid) => JSON.parse((await client.readResource({ uri: `kiln://sessions/${sid}/history` })).contents[0].text).cells;
      await pollUntil(async () => (await historyOf(closed)).length === 1);
      assert.equal((await historyOf(closed)).length, 1);
      await hibernated(client, id);
      const gone = await pollUntil(async () => (await stateOf(client, id)) === undefined, 20_000, 200);
      assert.ok(gone, dump(await sessions(client)));
      const again = await callTool(client, 'run_python', { code: 'x', session_id: id });
      assert.equal(again.isError, true, dump(again));
      assert.match(again.content[0].text, /unknown session/, dump(again));
      const page = await client.readResource({ uri: `kiln://sessions/${id}/history` });
      assert.deepEqual(JSON.parse(page.contents[0].text).cells, [], dump(page));
      assert.ok(await pollUntil(async () => (await historyOf(closed)).length === 0, 10_000, 200),
        dump(await historyOf(closed)));
      // Its snapshot row went too: nothing in the database names it.
      const rows = execFileSync('python3', ['-c',
        'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute("select count(*) from sessions where id=?", (sys.argv[2],)).fetchone()[0])',
        join(home, 'kiln.db'), id]).toString().trim();
      assert.equal(rows, '0');
      assert.ok(statSync(join(home, 'kiln.db')).size > 0);
    }));

  test('restoring a session at --max-sessions hibernates the least recently used idle one in its place, and says so when every live one is busy', { timeout: TEST_TIMEOUT }, () =>
    withServer({ args: ['--idle-hibernate', '4', '--max-sessions', '2', '--spares', '0'] }, async ({ client }) => {
      const a = (await run(client, 'a = "A"')).session_id;
      await hibernated(client, a);
      const b = (await run(client, 'b = "B"')).session_id;
      const c = (await run(client, 'c = "C"')).session_id;
      // Two live: A's restore takes the place of B, the idle one used
      // least recently, long before B's own idle period ends.
      const back = await run(client, 'a', { session_id: a });
      assert.equal(back.result, "'A'", dump(back));
      const listed = await sessions(client);
      const live = listed.filter((s) => s.state !== 'hibernated');
      assert.equal(live.length, 2, dump(listed));
      assert.equal(listed.find((s) => s.session_id === b)?.state, 'hibernated', dump(listed));
      assert.notEqual(listed.find((s) => s.session_id === c)?.state, 'hibernated', dump(listed));
      // Both live sessions busy: B cannot be restored, and is told why.
      const busy = [a, c].map((id) => callTool(client, 'run_python', { code: 'import time; time.sleep(3)', session_id: id }));
      await pollUntil(async () => (await sessions(client)).filter((s) => s.state === 'running').length === 2, 10_000, 50);
      const refused = await callTool(client, 'run_python', { code: 'b', session_id: b });
      assert.equal(refused.isError, true, dump(refused));
      assert.match(refused.content[0].text, /2 sessions are live, the limit \(--max-sessions\)/, dump(refused));
      await Promise.all(busy);
      // With one idle again, B comes back with its variable.
      const bBack = await run(client, 'b', { session_id: b });
      assert.equal(bBack.result, "'B'", dump(bBack));
    }));
});
