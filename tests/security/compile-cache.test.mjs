// The code cache (DESIGN.md invariant 2): cached bytecode never comes from
// a process that ran user code.  It is filled only from the compile
// helper's answers, which the front reads on a socket of its own; a
// worker that forges the helper's frames on its control socket ends its
// session and stores nothing.  The helper compiles what clients send, so
// it is jailed as tightly as a worker (more: its filter leaves it its
// socket and its memory), and a source built to break it costs only
// that source's caching.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync } from 'node:fs';

import {
  useServer,
  useBystander,
  run,
  dump,
  pidAlive,
  pidGone,
  pollUntil,
  killAfterEach,
  TEST_TIMEOUT,
  HOOK_TIMEOUT,
} from '../integration/helpers.mjs';
import {
  makeHome,
  cacheStats,
  statsWhen,
  helperReady,
  compileHelper,
  compileHelpers,
  cacheRows,
} from '../integration/store-helpers.mjs';
import { attack, jailArgs, modeName, unprivileged } from './mode.mjs';

const opts = { timeout: TEST_TIMEOUT };

/** A server of the suite's on a KILN_HOME of its own, its compile helper ready. */
function useCacheServer(args = []) {
  const home = makeHome();
  const kiln = useServer({ args: [...jailArgs, ...args], env: { KILN_HOME: home.path } });
  const bystander = useBystander(kiln);
  before(() => helperReady(kiln.client, home.path), { timeout: HOOK_TIMEOUT });
  after(() => home.remove());
  return { kiln, bystander, home: home.path };
}

/** Runs CODE in a new session; waits until the helper has stored it. */
async function runAndStore(client, home, code) {
  const before = cacheStats(home);
  const sc = await run(client, code);
  const stats = await statsWhen(home, (s) => s.entries > before.entries);
  assert.equal(stats.entries, before.entries + 1, `not stored: ${dump({ before, stats, sc })}`);
  return sc;
}

/** The fields of /proc/PID/status as an object. */
function procStatus(pid) {
  const fields = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m) fields[m[1]] = m[2];
  }
  return fields;
}

// The source whose cached form the attacks try to plant, and its honest
// answer.
const SOURCE = 'verdict = "HONEST"\nverdict';

/** Python that builds the helper's frames (kernel/proto/frame.h) for SOURCE. */
const FORGE = [
  'import marshal, os, struct, time',
  'def field(tag, data): return struct.pack("<HI", tag, len(data)) + data',
  'def frame(kind, body): return struct.pack("<IHH", len(body), kind, 0) + body',
  '# (body, expr, is_async), as the helper marshals a cell: a result of "POISONED".',
  '# The word is made at run time: this cell\'s own code (which the helper',
  '# compiles and may cache, honestly) must not hold it.',
  'marker = "".join(["POIS", "ONED"])',
  'poison = marshal.dumps((compile("pass", "<cell>", "exec"), compile(repr(marker), "<cell>", "eval"), False))',
  `source = ${JSON.stringify(SOURCE)}.encode()`,
  '# FRAME_COMPILED (16): DATA (22), and CODE (8) naming the source it would be for.',
  'compiled = frame(16, field(22, poison) + field(8, source))',
  '# FRAME_COMPILER_READY (15): MAGIC (32), OPTIMIZE (33), FLAGS (34), RUNTIME (36).',
  'ready = frame(15, field(32, b"\\xcb\\x0d\\x0d\\x0a") + field(33, struct.pack("<Q", 0))',
  '              + field(34, struct.pack("<Q", 0x2000)) + field(36, marker.encode()))',
  '# FRAME_DONE (32) of this cell, carrying COMPILED (35) and CODE beside status and result.',
  'done = frame(32, field(10, struct.pack("<Q", 0)) + field(11, repr(marker).encode()) + field(35, poison) + field(8, source))',
].join('\n');

describe(`the code cache cannot be poisoned by a worker (${modeName})`, () => {
  const { kiln, bystander, home } = useCacheServer();

  const forgeries = {
    'a COMPILED frame': 'os.write(3, compiled)',
    'a COMPILER_READY frame, then COMPILED': 'os.write(3, ready + compiled)',
    'COMPILED frames from a child of the cell': 'pid = os.fork()\nif pid == 0:\n    os.write(3, compiled * 4)\n    os._exit(0)\nos.waitpid(pid, 0)',
  };
  for (const [name, write] of Object.entries(forgeries)) {
    test(`${name} on the control socket ends the session`, opts, async () => {
      const sc = await run(kiln.client, `${FORGE}\n${write}\ntime.sleep(5)\n"survived"`);
      assert.equal(sc.status, 'crashed', dump(sc));
      assert.match(sc.error.message, /worker|control socket/, dump(sc));
      assert.notEqual(sc.result, "'survived'");
      await bystander.unharmed();
    });
  }

  test('a DONE frame carrying compiled code answers at most its own cell', opts, async () => {
    // The worker may lie about its own cell; what it says is never kept
    // for another.
    const sc = await run(kiln.client, `${FORGE}\nos.write(3, done)\ntime.sleep(2)\n"survived"`);
    assert.ok(['ok', 'crashed'].includes(sc.status), dump(sc));
    await bystander.unharmed();
  });

  test('the source then runs honestly, as a miss and as a hit, and kiln.db holds no forged code', opts, async () => {
    const miss = await runAndStore(kiln.client, home, SOURCE);
    assert.equal(miss.result, "'HONEST'", dump(miss));
    const before = cacheStats(home);
    const hit = await run(kiln.client, SOURCE);
    assert.equal(hit.status, 'ok', dump(hit));
    assert.equal(hit.result, "'HONEST'", dump(hit));
    const counted = await statsWhen(home, (s) => s.hits > before.hits);
    assert.equal(counted.hits, before.hits + 1, 'the second run was not a hit');

    const rows = cacheRows(home);
    assert.ok(rows.length >= 2, dump(rows));
    for (const row of rows) {
      assert.ok(row.loads, `an entry that is not marshalled code: ${row.key}`);
      assert.ok(!Buffer.from(row.code, 'base64').includes('POISONED'), `poisoned entry ${row.key}`);
      assert.ok(!row.consts.some((c) => c.includes('POISONED')), `poisoned entry ${row.key}`);
    }
    assert.equal(rows.filter((r) => r.consts.includes('HONEST')).length, 1, dump(rows.map((r) => r.consts)));
    await bystander.unharmed();
  });
});

describe(`the compile helper's jail (${modeName})`, () => {
  const { kiln, bystander, home } = useCacheServer(['--grace', '0.5']);
  const watch = killAfterEach();

  attack(test, 'the helper (kiln-compiler) runs with seccomp, no new privileges, no capabilities and no host uid', opts, async () => {
    const pid = await compileHelper(kiln.pid);
    const st = procStatus(pid);
    const ids = (s) => s.split(/\s+/).map(Number);
    assert.deepEqual(
      {
        Seccomp: st.Seccomp,
        NoNewPrivs: st.NoNewPrivs,
        CapEff: st.CapEff,
        CapPrm: st.CapPrm,
        CapInh: st.CapInh,
        CapAmb: st.CapAmb,
      },
      {
        Seccomp: '2',
        NoNewPrivs: '1',
        CapEff: '0000000000000000',
        CapPrm: '0000000000000000',
        CapInh: '0000000000000000',
        CapAmb: '0000000000000000',
      },
    );
    // Root's helper becomes nobody; an unprivileged kiln's keeps its own
    // uid, mapped into a user namespace of its own (below).
    const expected = unprivileged ? process.getuid() : 65534;
    assert.deepEqual(ids(st.Uid), [expected, expected, expected, expected]);
    assert.deepEqual(ids(st.Gid), [unprivileged ? process.getgid() : 65534, ...ids(st.Gid).slice(1)]);
    assert.ok(ids(st.Gid).every((g) => g === ids(st.Gid)[0]), st.Gid);
    assert.equal(st.Groups.trim(), '');
    await bystander.unharmed();
  });

  attack(test, 'the helper is in network, mount, ipc and uts namespaces other than the front\'s', opts, async () => {
    const pid = await compileHelper(kiln.pid);
    const kinds = ['net', 'mnt', 'ipc', 'uts', ...(unprivileged ? ['user'] : [])];
    const ns = (p) => Object.fromEntries(kinds.map((k) => [k, readlinkSync(`/proc/${p}/ns/${k}`)]));
    const helper = ns(pid);
    const front = ns(kiln.pid);
    for (const kind of kinds) {
      assert.notEqual(helper[kind], front[kind], `the helper shares the front's ${kind} namespace`);
    }
    await bystander.unharmed();
  });

  test('sources built to break the compiler still run in their workers, cost the helper nothing, and later cells are cached', opts, async () => {
    const pid = await compileHelper(kiln.pid);
    // Each compiled form of the last is some 10 MB from 30 KB of source:
    // more than the front takes from the helper in one frame.
    const blowup = [];
    let blowupLength = 0;
    for (let i = 0; i < 2500; i++) {
      const times = Math.floor(4000 / (String(i).length + 1));
      blowup.push(`'k${i}'*${times}`);
      blowupLength += (String(i).length + 1) * times;
    }
    const cells = [
      { code: `${'('.repeat(100000)}${')'.repeat(100000)}`, type: 'SyntaxError' },
      { code: `${'-'.repeat(100000)}1`, type: 'MemoryError' },
      { code: `1${'+1'.repeat(200000)}`, type: 'RecursionError' },
      { code: `x = ${'lambda: '.repeat(5000)}0`, type: 'MemoryError' },
      { code: `x = (${blowup.join(',')})\nsum(map(len, x))`, result: String(blowupLength) },
    ];
    for (const cell of cells) {
      const sc = await run(kiln.client, cell.code);
      if (cell.type) {
        assert.equal(sc.status, 'error', dump(sc));
        assert.equal(sc.error.type, cell.type, dump(sc));
      } else {
        assert.equal(sc.status, 'ok', dump(sc));
        assert.equal(sc.result, cell.result, dump(sc));
      }
    }
    const later = await runAndStore(kiln.client, home, '"cached after them"');
    assert.equal(later.result, "'cached after them'");
    assert.deepEqual(compileHelpers(kiln.pid), [pid], 'the helper was replaced');
    await bystander.unharmed();
  });

  test('a helper that dies is replaced, and cells run meanwhile', opts, async () => {
    const pid = await compileHelper(kiln.pid);
    process.kill(pid, 'SIGKILL');
    await pollUntil(() => pidGone(pid) || !pidAlive(pid));
    const meanwhile = await run(kiln.client, '"while the helper is gone"');
    assert.equal(meanwhile.status, 'ok', dump(meanwhile));
    const next = await compileHelper(kiln.pid, pid);
    assert.notEqual(next, pid);
    await helperReady(kiln.client, home);
    await runAndStore(kiln.client, home, '"cached by the new helper"');
    await bystander.unharmed();
  });

  test('a helper that hangs over a source is killed at its deadline and replaced', { timeout: 2 * TEST_TIMEOUT }, async () => {
    const pid = await compileHelper(kiln.pid);
    watch(pid);
    // Stopped, it never answers the next source, as a compile that never
    // ends would not.
    process.kill(pid, 'SIGSTOP');
    const stuck = await run(kiln.client, '"the source it hangs over"');
    assert.equal(stuck.status, 'ok', dump(stuck));
    const again = await run(kiln.client, '21 * 2');
    assert.equal(again.result, '42', dump(again));
    const next = await pollUntil(() => compileHelpers(kiln.pid).find((p) => p !== pid), 30_000, 200);
    assert.ok(next, 'the hung helper was not replaced');
    assert.ok(!pidAlive(pid), 'the hung helper was left alive');
    await helperReady(kiln.client, home);
    await runAndStore(kiln.client, home, '"cached after the hang"');
    await bystander.unharmed();
  });
});
