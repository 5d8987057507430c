// The soak: thousands of cells of every kind over a few sessions of one
// `kiln serve`, faults injected from outside between them, and the front's
// resources measured at checkpoints.  Any reply the model below does not
// predict, and any resource that grows and does not come back, is a
// failure; the run exits non-zero and prints the seed that reproduces it.
//
//   KILN_BIN=build/kiln node tests/soak/soak.mjs [--cells N] [--sessions S] [--seed X]
//
// See README.md beside this file for what each check asserts.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  KILN_BIN,
  startServer,
  callTool,
  childrenOf,
  commOf,
  pollUntil,
  pidAlive,
  pidGone,
  sessionPid,
  REQUEST_TIMEOUT,
} from '../integration/helpers.mjs';

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

const USAGE = `usage: tests/soak/run [options]
  --cells N           cells to run, spread over the sessions (default 1000)
  --sessions S        sessions running side by side (default 8)
  --seed X            seed of the random mix and of the faults (default: random)
  --checkpoints K     resource checkpoints, one every N/K cells (default 10)
  --memory SIZE       kiln's --memory, what the OOM cells allocate past (default 256M)
  --rss-bound-kib B   growth of the front's RSS allowed from the second
                      checkpoint to the last (default 8192)
  --settle-s T        how long a checkpoint waits for the figures to settle (default 60)
  --max-failures F    stop after this many invariant violations (default 20)
  --verbose           print every cell`;

function parseArgs(argv) {
  const o = {
    cells: 1000,
    sessions: 8,
    seed: null,
    checkpoints: 10,
    memory: '256M',
    rssBoundKiB: 8192,
    settleS: 60,
    maxFailures: 20,
    verbose: false,
  };
  const num = (name, v, min) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) usage(`${name} needs an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--cells') o.cells = num(a, val(), 1);
    else if (a === '--sessions') o.sessions = num(a, val(), 1);
    else if (a === '--seed') o.seed = num(a, val(), 0) >>> 0;
    else if (a === '--checkpoints') o.checkpoints = num(a, val(), 2);
    else if (a === '--memory') o.memory = val();
    else if (a === '--rss-bound-kib') o.rssBoundKiB = num(a, val(), 0);
    else if (a === '--settle-s') o.settleS = num(a, val(), 1);
    else if (a === '--max-failures') o.maxFailures = num(a, val(), 1);
    else if (a === '--verbose') o.verbose = true;
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else usage(`unknown option ${a}`);
  }
  if (o.seed === null) o.seed = randomBytes(4).readUInt32LE(0);
  return o;
}

function usage(msg) {
  console.error(`soak: ${msg}\n${USAGE}`);
  process.exit(2);
}

const opt = parseArgs(process.argv.slice(2));

// kiln as the soak runs it.  The output cap is small so that big-output
// cells are cheap; the grace period is short so that cells that ignore
// the interrupt do not dominate the run time.
const MAX_OUTPUT = 65536;
const SPARES = 2;
const GRACE_S = 0.5;
const KILN_ARGS = [
  '--memory', opt.memory,
  '--max-output', String(MAX_OUTPUT),
  '--spares', String(SPARES),
  '--grace', String(GRACE_S),
  '--timeout', '60',
];
// Cells that should finish get a deadline far beyond what they need, so
// that a loaded machine does not turn them into timeouts.
const CELL_TIMEOUT_S = 60;

const reproduce = () =>
  `tests/soak/run --cells ${opt.cells} --sessions ${opt.sessions} --seed ${opt.seed}` +
  (opt.checkpoints !== 10 ? ` --checkpoints ${opt.checkpoints}` : '') +
  (opt.memory !== '256M' ? ` --memory ${opt.memory}` : '');

// ---------------------------------------------------------------------------
// Seeded randomness: one stream per session lane, so that what each lane
// does is a function of the seed alone (only the interleaving of lanes
// depends on timing).
// ---------------------------------------------------------------------------

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  constructor(seed) {
    this.next = mulberry32(seed);
  }
  float(lo = 0, hi = 1) {
    return lo + (hi - lo) * this.next();
  }
  int(lo, hi) {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p) {
    return this.next() < p;
  }
  pick(items) {
    return items[Math.floor(this.next() * items.length)];
  }
  weighted(table) {
    const total = table.reduce((s, [, w]) => s + w, 0);
    let x = this.next() * total;
    for (const [item, w] of table) {
      x -= w;
      if (x < 0) return item;
    }
    return table[table.length - 1][0];
  }
  bytes(n) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4) {
      const v = Math.floor(this.next() * 4294967296);
      for (let j = 0; j < 4 && i + j < n; j++) b[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return b;
  }
}

// ---------------------------------------------------------------------------
// Failures: each says which cell, which session, what was expected and
// what came back.
// ---------------------------------------------------------------------------

const failures = [];
let stopping = false;

function brief(value, limit = 1500) {
  const text = JSON.stringify(
    value,
    (k, v) => (typeof v === 'string' && v.length > 300 ? `${v.slice(0, 150)}...(${v.length} chars)...${v.slice(-100)}` : v),
  );
  return text && text.length > limit ? `${text.slice(0, limit)}...` : text;
}

/**
 * Records an invariant violation.  WHERE is a cell context (or a string
 * for checks that are not about one cell); WHAT names the invariant.
 */
function fail(where, what, expected, got, reply) {
  const at =
    typeof where === 'string'
      ? where
      : `cell #${where.n} (lane ${where.lane}, session ${where.sid ?? '(new)'}, kind ${where.kind}${where.variant ? `/${where.variant}` : ''})`;
  const f = {
    at,
    what,
    expected: typeof expected === 'string' ? expected : brief(expected),
    got: typeof got === 'string' ? got : brief(got),
    reply: reply === undefined ? undefined : brief(reply),
  };
  failures.push(f);
  console.error(`\nFAIL ${f.at}: ${f.what}\n  expected: ${f.expected}\n  got:      ${f.got}` + (f.reply ? `\n  reply:    ${f.reply}` : ''));
  if (failures.length >= opt.maxFailures && !stopping) {
    console.error(`soak: ${failures.length} failures, stopping`);
    stopping = true;
  }
}

// ---------------------------------------------------------------------------
// Host-side observation of the front
// ---------------------------------------------------------------------------

function procStatus(pid, field) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+)`, 'm'));
  return m ? Number(m[1]) : NaN;
}

/** The state letter of PID (R, S, T, Z...), or 'gone'. */
function stateOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return 'gone';
  }
}

/** Seconds since PID started. */
function ageOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[19]);
    const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return uptime - startTicks / 100;
  } catch {
    return 0;
  }
}

/**
 * The kiln-<pid> groups of the front PID: one per hierarchy kiln uses,
 * found from the front's own /proc/PID/cgroup as kiln finds them.
 */
function kilnGroupsOf(pid) {
  const dirs = new Set();
  let text;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return [];
  }
  for (const line of text.trim().split('\n')) {
    const [hid, ctrls, path] = line.split(':');
    const rel = path === '/' ? '' : path;
    if (hid === '0' && ctrls === '') {
      if (existsSync('/sys/fs/cgroup/cgroup.controllers')) dirs.add(`/sys/fs/cgroup${rel}/kiln-${pid}`);
      continue;
    }
    for (const c of ['memory', 'pids', 'cpu']) {
      if (!ctrls.split(',').includes(c)) continue;
      for (const mount of [`/sys/fs/cgroup/${ctrls}`, `/sys/fs/cgroup/${c}`]) {
        if (existsSync(mount)) {
          dirs.add(`${mount}${rel}/kiln-${pid}`);
          break;
        }
      }
    }
  }
  return [...dirs];
}

/** Session groups (subdirectories) under each existing kiln-<pid> group. */
function sessionGroupsOf(groups) {
  let n = 0;
  for (const g of groups) {
    try {
      n += readdirSync(g, { withFileTypes: true }).filter((e) => e.isDirectory()).length;
    } catch {
      // not there (no cgroups, or gone)
    }
  }
  return n;
}

function countDir(dir) {
  try {
    return readdirSync(dir).length;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------
// Reply helpers
// ---------------------------------------------------------------------------

function textOf(result) {
  return (result?.content ?? []).filter((b) => b.type === 'text').map((b) => b.text).join('\n');
}

/** The bytes of a read_file result or a resources/read content, whatever form kiln chose. */
function bytesOfContent(block) {
  if (!block) return null;
  if (block.type === 'resource') return bytesOfContent(block.resource);
  if (typeof block.blob === 'string') return Buffer.from(block.blob, 'base64');
  if (block.type === 'image' && typeof block.data === 'string') return Buffer.from(block.data, 'base64');
  if (typeof block.text === 'string') return Buffer.from(block.text, 'utf8');
  return null;
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function pngSize(buf) {
  if (buf.length < 24 || !buf.subarray(0, 8).equals(PNG_MAGIC) || buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

// ---------------------------------------------------------------------------
// The soak
// ---------------------------------------------------------------------------

const home = mkdtempSync(join(tmpdir(), 'kiln-soak-home-'));
const sessionsDir = join(home, 'sessions');
const t0 = performance.now();

console.log(`soak: seed ${opt.seed}, ${opt.cells} cells over ${opt.sessions} sessions, ${opt.checkpoints} checkpoints`);
console.log(`soak: ${KILN_BIN} serve ${KILN_ARGS.join(' ')}  (KILN_HOME ${home})`);

// glibc keeps freed big buffers for reuse (its mmap threshold rises after
// each big free), so the front's RSS would show its high-water mark, not
// what it holds.  Fixed thresholds give big buffers back at once.
const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_TRIM_THRESHOLD_: '131072' };
const server = await startServer({ args: KILN_ARGS, env: { KILN_HOME: home, ...MALLOC_ENV } });
const client = server.client;
const front = server.pid;
let frontGone = null;
const frontProc = server.transport._process;
const frontExit = new Promise((resolve) => {
  frontProc.once('exit', (code, signal) => {
    frontGone = { code, signal, at: performance.now() };
    resolve(frontGone);
  });
});
let closing = false;
client.onclose = () => {
  if (!closing && !stopping) {
    fail('the front', 'the MCP connection closed in the middle of the run', 'an open connection',
      `closed (front exit: ${brief(frontGone)}); kiln stderr tail:\n${server.stderr().slice(-3000)}`);
    stopping = true;
  }
};

const stats = new Map(); // kind -> { statuses: Map, ms: [] }
const faults = { 'zygote SIGKILL': 0, 'init SIGKILL': 0, 'init SIGSTOP/SIGCONT': 0, skipped: 0 };
let cellSeq = 0;
let sessionsOpened = 0;

function note(kind, status, ms) {
  let s = stats.get(kind);
  if (!s) stats.set(kind, (s = { statuses: new Map(), ms: [] }));
  s.statuses.set(status, (s.statuses.get(status) ?? 0) + 1);
  s.ms.push(ms);
}

class Lane {
  constructor(index) {
    this.index = index;
    this.rng = new Rng((opt.seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
    this.sid = null;
    // The counter the next stateful cell must see before it adds one
    // (null: unknown after a failure; the next stateful cell resyncs).
    this.expected = 0;
    // Why the session's state is about to be reported lost, or null.
    this.pendingLoss = null;
    // The soak killed this session's init and no reply has come since:
    // the next call may find the dead worker and come back crashed.
    this.initKilled = false;
    this.execCount = 0;
    // An init stopped by the soak, to be continued during the next call.
    this.stopped = null;
  }
}

/**
 * Runs one cell on LANE's session (a new session if it has none) and
 * applies the model every reply must fit, whatever the cell:
 *   - a lane without a session gets new_session: true, state_lost: false;
 *     one with a session gets its own id back and new_session: false;
 *   - state_lost is true exactly when the session's worker was lost since
 *     the last reply (a crash, a kill, an OOM kill, an init the soak
 *     killed), and then the counter starts over;
 *   - execution_count is 1 in a fresh interpreter, one more than the
 *     last reply's otherwise;
 *   - crashed or killed means the next reply says state_lost.
 * Returns { result, sc, ctx, ms } (sc null if the reply had none).
 */
async function cell(lane, kind, variant, code, timeoutS = CELL_TIMEOUT_S) {
  const ctx = { n: ++cellSeq, lane: lane.index, sid: lane.sid, kind, variant, code };
  const args = { code, timeout_s: timeoutS };
  if (lane.sid) args.session_id = lane.sid;
  const initKilledBefore = lane.initKilled;
  const pendingBefore = lane.pendingLoss;
  const started = performance.now();
  let result;
  try {
    result = await withStopped(lane, () => callTool(client, 'run_python', args));
  } catch (err) {
    fail(ctx, 'run_python failed at the protocol level', 'a tool result', `${err.message}`);
    note(kind, 'protocol-error', performance.now() - started);
    return { result: null, sc: null, ctx, ms: 0 };
  }
  const ms = performance.now() - started;
  const sc = result.structuredContent;
  // A stream too long for the reply is read whole from the resource it
  // names, so that the checks below see all that was kept.
  for (const key of ['stdout', 'stderr']) {
    if (sc && sc[key] === undefined && sc[`${key}_uri`]) {
      try {
        const read = await client.readResource({ uri: sc[`${key}_uri`] }, { timeout: REQUEST_TIMEOUT });
        sc[key] = read.contents[0].text;
      } catch (err) {
        fail(ctx, `${key} could not be read from ${sc[`${key}_uri`]}`, 'the kept output', err.message, sc);
        sc[key] = '';
      }
    }
  }
  if (opt.verbose) {
    console.log(`#${ctx.n} lane ${lane.index} ${lane.sid ?? '(new)'} ${kind}/${variant ?? ''}: ${sc?.status ?? 'no structuredContent'}` +
      `${sc?.state_lost ? ' state_lost' : ''} ${ms.toFixed(1)} ms`);
  }
  if (!sc) {
    fail(ctx, 'run_python returned no structuredContent', 'a cell reply', textOf(result), result);
    note(kind, 'no-reply', ms);
    return { result, sc: null, ctx, ms };
  }
  note(kind, sc.status, ms);
  lane.initKilled = false;

  const wasNew = lane.sid === null;
  if (wasNew) {
    if (sc.new_session !== true) fail(ctx, 'new_session on a call without session_id', true, sc.new_session, sc);
    if (sc.state_lost !== false) fail(ctx, 'state_lost on a new session', false, sc.state_lost, sc);
    lane.sid = ctx.sid = sc.session_id;
    lane.expected = 0;
    lane.execCount = 0;
    lane.pendingLoss = null;
    sessionsOpened++;
  } else {
    if (sc.session_id !== lane.sid) fail(ctx, 'session_id of the reply', lane.sid, sc.session_id, sc);
    if (sc.new_session !== false) fail(ctx, 'new_session on an existing session', false, sc.new_session, sc);
  }
  if (sc.status === 'error' && ['WorkerStartError', 'SessionClosed'].includes(sc.error?.type)) {
    // The cell never reached a worker.  The soak closes sessions only
    // between cells and never kills a zygote that is not up, so neither
    // may happen.
    fail(ctx, 'the cell reached a worker', 'a reply from a worker', `${sc.error.type}: ${sc.error.message}`, sc);
    return { result, sc, ctx, ms };
  }

  const died = sc.status === 'crashed' || sc.status === 'killed';
  if (sc.state_lost) {
    if (!pendingBefore)
      fail(ctx, 'state_lost with nothing that lost the state',
        'state_lost: false (no crash, kill, OOM kill or injected fault since the last reply)', `state_lost: true; notice: ${sc.notice}`, sc);
    lane.expected = 0;
    lane.pendingLoss = null;
  } else if (pendingBefore && !died) {
    fail(ctx, 'state_lost after the session lost its worker', `state_lost: true (because ${pendingBefore})`, 'state_lost: false', sc);
    lane.pendingLoss = null;
    lane.expected = null;
  }

  // After a loss the front may have started the fresh interpreter already
  // (count 1) or sent the cell to the dead one (count one more).
  const wantExec = sc.state_lost || wasNew ? [1] : pendingBefore && died ? [1, lane.execCount + 1] : [lane.execCount + 1];
  if (!wantExec.includes(sc.execution_count))
    fail(ctx, 'execution_count', wantExec.join(' or '), sc.execution_count, sc);
  lane.execCount = sc.execution_count;

  if (died) lane.pendingLoss = `cell #${ctx.n} came back ${sc.status}: ${sc.error?.message ?? sc.notice}`;
  ctx.initKilledBefore = initKilledBefore;
  return { result, sc, ctx, ms };
}

/**
 * Statuses a cell may come back with: ALLOWED, plus crashed when the soak
 * killed the session's init just before (the cell may have been sent to
 * the dead worker).
 */
function expectStatus(r, allowed) {
  const ok = [...allowed];
  if (r.ctx.initKilledBefore) ok.push('crashed');
  if (!ok.includes(r.sc.status)) {
    fail(r.ctx, 'status', ok.join(' or '), `${r.sc.status}${r.sc.error ? ` (${r.sc.error.type}: ${r.sc.error.message})` : ''}`, r.sc);
    return false;
  }
  return r.sc.status;
}

/** Runs FN (a call on LANE's session) while the init the soak stopped, if any, is continued partway through. */
async function withStopped(lane, fn) {
  const stopped = lane.stopped;
  if (!stopped) return fn();
  lane.stopped = null;
  const resume = sleep(stopped.ms).then(() => {
    try {
      process.kill(stopped.pid, 'SIGCONT');
    } catch {
      // it died meanwhile (the cell crashed it, or it was closed)
    }
  });
  try {
    return await fn();
  } finally {
    await resume;
  }
}

// ---------------------------------------------------------------------------
// The kinds of cell
// ---------------------------------------------------------------------------

const STUBBORN_LOOP = 'n = 0\nwhile True:\n    try:\n        while True:\n            n += 1\n    except KeyboardInterrupt:\n        pass';
const COUNTER = 'c = globals().get("c", 0) + 1\nc';

function openCell(lane) {
  return cell(lane, 'open', null, 'pass').then((r) => r.sc && expectStatus(r, ['ok']));
}

const KINDS = [
  ['trivial', 22, async (lane) => {
    const v = lane.rng.pick(['pass', 'sum', 'print']);
    const a = lane.rng.int(0, 1e6), b = lane.rng.int(0, 1e6);
    const word = `w${lane.rng.int(0, 1e9)}`;
    const code = { pass: 'pass', sum: `${a} + ${b}`, print: `print(${JSON.stringify(word)})` }[v];
    const r = await cell(lane, 'trivial', v, code);
    if (!r.sc || expectStatus(r, ['ok']) !== 'ok') return;
    const want = { pass: [null, ''], sum: [String(a + b), ''], print: [null, `${word}\n`] }[v];
    if (r.sc.result !== want[0]) fail(r.ctx, 'result', want[0], r.sc.result, r.sc);
    if (r.sc.stdout !== want[1]) fail(r.ctx, 'stdout', want[1], r.sc.stdout, r.sc);
  }],
  ['stateful', 30, async (lane) => {
    const r = await cell(lane, 'stateful', null, COUNTER);
    if (!r.sc || expectStatus(r, ['ok']) !== 'ok') return;
    if (lane.expected === null) lane.expected = Number(r.sc.result) - 1;
    const want = String(lane.expected + 1);
    if (r.sc.result !== want) {
      fail(r.ctx, 'the session counter advanced exactly once since the last ok stateful cell', want, r.sc.result, r.sc);
      lane.expected = Number(r.sc.result);
    } else lane.expected += 1;
  }],
  ['timeout', 6, async (lane) => {
    const v = lane.rng.pick(['sleep-loop', 'busy-loop', 'stubborn']);
    const t = Number(lane.rng.float(0.2, 1.0).toFixed(2));
    const code = { 'sleep-loop': 'import time\nwhile True: time.sleep(0.01)', 'busy-loop': 'while True: pass', stubborn: STUBBORN_LOOP }[v];
    const r = await cell(lane, 'timeout', v, code, t);
    if (!r.sc) return;
    const st = expectStatus(r, ['interrupted', 'killed']);
    if (st === 'interrupted' && r.sc.error?.type !== 'KeyboardInterrupt')
      fail(r.ctx, 'error type of an interrupted cell', 'KeyboardInterrupt', r.sc.error?.type, r.sc);
    if ((st === 'interrupted' || st === 'killed') && r.sc.duration_ms < t * 1000 - 5)
      fail(r.ctx, 'a cell is not stopped before its deadline', `duration_ms >= ${t * 1000}`, r.sc.duration_ms, r.sc);
  }],
  ['deadline', 2, async (lane) => {
    // A cell that ends about when its deadline passes: ok or stopped are
    // both right, but the interrupt must never reach the next cell (the
    // next cell's own checks see a stray KeyboardInterrupt).
    const t = Number(lane.rng.float(0.1, 0.5).toFixed(3));
    const timeout = Number((t * lane.rng.float(0.9, 1.1)).toFixed(3));
    const r = await cell(lane, 'deadline', null, `import time\ntime.sleep(${t})\n"done"`, timeout);
    if (!r.sc) return;
    const st = expectStatus(r, ['ok', 'interrupted', 'killed']);
    if (st === 'ok' && r.sc.result !== "'done'") fail(r.ctx, 'result', "'done'", r.sc.result, r.sc);
    if ((st === 'interrupted' || st === 'killed') && r.sc.duration_ms < timeout * 1000 - 5)
      fail(r.ctx, 'a cell is not stopped before its deadline', `duration_ms >= ${timeout * 1000}`, r.sc.duration_ms, r.sc);
    if (st === 'interrupted' && r.sc.error?.type !== 'KeyboardInterrupt')
      fail(r.ctx, 'error type of an interrupted cell', 'KeyboardInterrupt', r.sc.error?.type, r.sc);
  }],
  ['kill', 4, async (lane) => {
    const v = lane.rng.pick(['_exit', 'SIGKILL']);
    const code = lane.rng.int(1, 120);
    const r = await cell(lane, 'kill', v, v === '_exit' ? `import os; os._exit(${code})` : 'import os; os.kill(os.getpid(), 9)');
    if (!r.sc || expectStatus(r, ['crashed']) !== 'crashed') return;
    const want = v === '_exit' ? new RegExp(`exited with code ${code}\\b`) : /SIGKILL/;
    if (!r.ctx.initKilledBefore && !want.test(r.sc.error?.message ?? ''))
      fail(r.ctx, 'the crash message names how the worker ended', String(want), r.sc.error?.message, r.sc);
  }],
  ['crash', 3, async (lane) => {
    const r = await cell(lane, 'crash', null, 'import ctypes; ctypes.string_at(0)');
    if (!r.sc || expectStatus(r, ['crashed']) !== 'crashed') return;
    if (!r.ctx.initKilledBefore && !/SIGSEGV/.test(r.sc.error?.message ?? ''))
      fail(r.ctx, 'the crash message names SIGSEGV', '/SIGSEGV/', r.sc.error?.message, r.sc);
  }],
  ['oom', 3, async (lane) => {
    // Past --memory only where a cgroup enforces it; elsewhere a single
    // allocation no host can satisfy.
    const v = haveCgroups ? lane.rng.pick(['grow', 'numpy', 'huge']) : 'huge';
    const code = {
      grow: 'def _grow():\n    l = []\n    try:\n        while True:\n            l.append(bytearray(16 << 20))\n    finally:\n        l.clear()\n_grow()',
      numpy: `import numpy as np\n_x = np.ones(${memoryBytes * 2} // 8)\ndel _x`,
      huge: 'bytearray(1 << 44)',
    }[v];
    const r = await cell(lane, 'oom', v, code);
    if (!r.sc) return;
    const st = expectStatus(r, ['crashed', 'error']);
    if (st === 'error' && r.sc.error?.type !== 'MemoryError')
      fail(r.ctx, 'an allocation past the limit fails with MemoryError or crashes', 'MemoryError', `${r.sc.error?.type}: ${r.sc.error?.message}`, r.sc);
    if (st === 'crashed' && !r.ctx.initKilledBefore && !/memory|SIGKILL/i.test(r.sc.error?.message ?? ''))
      fail(r.ctx, 'an OOM crash says the session ran out of memory', '/memory|SIGKILL/', r.sc.error?.message, r.sc);
  }],
  ['output', 6, async (lane) => {
    const v = lane.rng.pick(['print', 'fd', 'stderr']);
    const n = lane.rng.int(MAX_OUTPUT + 10, 4 << 20);
    const total = 5 + n + 6;
    const code = {
      print: `import sys\nsys.stdout.write("HEAD\\n" + "m" * ${n} + "\\nTAIL\\n")`,
      fd: `import os\nos.write(1, b"HEAD\\n" + b"m" * ${n} + b"\\nTAIL\\n")`,
      stderr: `import sys\nsys.stderr.write("HEAD\\n" + "m" * ${n} + "\\nTAIL\\n")`,
    }[v];
    const r = await cell(lane, 'output', v, code);
    if (!r.sc || expectStatus(r, ['ok']) !== 'ok') return;
    const [kept, dropped] = v === 'stderr' ? [r.sc.stderr, r.sc.stderr_dropped] : [r.sc.stdout, r.sc.stdout_dropped];
    const slim = { ...r.sc, stdout: r.sc.stdout.slice(0, 80), stderr: r.sc.stderr.slice(0, 80) };
    if (dropped !== total - MAX_OUTPUT)
      fail(r.ctx, `${v === 'stderr' ? 'stderr' : 'stdout'}_dropped is what did not fit the cap`, total - MAX_OUTPUT, dropped, slim);
    if (Buffer.byteLength(kept) > MAX_OUTPUT + 256)
      fail(r.ctx, 'kept output within the cap', `<= ${MAX_OUTPUT + 256} bytes`, Buffer.byteLength(kept), slim);
    if (!kept.startsWith('HEAD\n') || !kept.endsWith('\nTAIL\n'))
      fail(r.ctx, 'the head and the tail are kept', 'HEAD\\n ... \\nTAIL\\n', `${JSON.stringify(kept.slice(0, 20))} ... ${JSON.stringify(kept.slice(-20))}`, slim);
  }],
  ['figure', 8, async (lane) => {
    const w = lane.rng.int(2, 8), h = lane.rng.int(2, 6), points = lane.rng.int(2, 50);
    const ys = Array.from({ length: points }, () => lane.rng.int(-100, 100));
    const code = `import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(${w}, ${h}), dpi=40)\nax.plot(${JSON.stringify(ys)})\nNone`;
    const readBack = lane.rng.chance(0.3);
    const r = await cell(lane, 'figure', null, code);
    if (!r.sc || expectStatus(r, ['ok']) !== 'ok') return;
    const images = r.result.content.filter((b) => b.type === 'image');
    if (r.sc.artifacts.length !== 1 || images.length !== 1) {
      fail(r.ctx, 'one figure, one artifact and one image block', '1 and 1', `${r.sc.artifacts.length} artifacts, ${images.length} image blocks`, r.sc);
      return;
    }
    const png = Buffer.from(images[0].data, 'base64');
    const size = pngSize(png);
    const art = r.sc.artifacts[0];
    if (images[0].mimeType !== 'image/png' || art.mime !== 'image/png' || !size)
      fail(r.ctx, 'the image is a PNG', 'image/png with a PNG header', `${images[0].mimeType}, ${art.mime}, header ${png.subarray(0, 8).toString('hex')}`);
    else if (size.width !== art.width || size.height !== art.height || size.width !== w * 40 || size.height !== h * 40)
      fail(r.ctx, 'the image is the figure', `${w * 40}x${h * 40}`, `artifact ${art.width}x${art.height}, PNG ${size.width}x${size.height}`);
    if (readBack) {
      try {
        const res = await client.readResource({ uri: art.uri }, { timeout: REQUEST_TIMEOUT });
        const got = bytesOfContent(res.contents?.[0]);
        if (!got || !got.equals(png))
          fail(r.ctx, 'resources/read of the artifact gives the image sent inline', `${png.length} bytes`, got ? `${got.length} different bytes` : brief(res));
      } catch (err) {
        fail(r.ctx, 'resources/read of the artifact', art.uri, err.message);
      }
    }
  }],
  ['file', 8, async (lane) => {
    if (!lane.sid) await openCell(lane);
    if (!lane.sid) return;
    const ctx = { n: ++cellSeq, lane: lane.index, sid: lane.sid, kind: 'file' };
    const size = lane.rng.chance(0.7) ? lane.rng.int(0, 65536) : lane.rng.int(65537, 1 << 20);
    const bytes = lane.rng.bytes(size);
    const path = `soak/${ctx.n}/f${lane.rng.int(0, 1e6)}.bin`;
    const via = lane.rng.pick(['read_file', 'resources/read']);
    const checkInWorker = lane.rng.chance(0.3);
    ctx.variant = via;
    const started = performance.now();
    // An upload may find the worker the soak just killed: it then fails
    // saying so, and is made again.
    let up;
    for (let attempt = 0; attempt < 2; attempt++) {
      const tolerate = lane.initKilled;
      up = await withStopped(lane, () => callTool(client, 'upload_file', { session_id: lane.sid, path, content: bytes.toString('base64'), encoding: 'base64' }));
      if (!up.isError) break;
      if (!(tolerate && /worker/.test(textOf(up)))) break;
      lane.initKilled = false;
    }
    lane.initKilled = false;
    if (up.isError) {
      fail(ctx, 'upload_file', 'success', textOf(up), up);
      note('file', 'error', performance.now() - started);
      return;
    }
    let got;
    try {
      if (via === 'read_file') {
        const rd = await callTool(client, 'read_file', { session_id: lane.sid, path });
        if (rd.isError) {
          fail(ctx, 'read_file of an uploaded file', 'its content', textOf(rd), rd);
          note('file', 'error', performance.now() - started);
          return;
        }
        got = bytesOfContent(rd.content?.[0]);
      } else {
        const res = await client.readResource({ uri: `kiln://sessions/${lane.sid}/files/${path}` }, { timeout: REQUEST_TIMEOUT });
        got = bytesOfContent(res.contents?.[0]);
      }
    } catch (err) {
      fail(ctx, `${via} of an uploaded file`, 'its content', err.message);
      note('file', 'error', performance.now() - started);
      return;
    }
    if (!got || !got.equals(bytes)) {
      const diff = got ? Array.from({ length: Math.min(got.length, bytes.length) }).findIndex((_, i) => got[i] !== bytes[i]) : -1;
      fail(ctx, 'an upload reads back byte for byte', `${bytes.length} bytes, sha256 ${createHash('sha256').update(bytes).digest('hex')}`,
        got ? `${got.length} bytes, sha256 ${createHash('sha256').update(got).digest('hex')}, first difference at ${diff}` : 'no content');
      note('file', 'mismatch', performance.now() - started);
      return;
    }
    note('file', 'ok', performance.now() - started);
    if (checkInWorker) {
      // And the worker sees the same bytes.
      const sha = createHash('sha256').update(bytes).digest('hex');
      const r = await cell(lane, 'file-check', null, `import hashlib\nhashlib.sha256(open(${JSON.stringify(path)}, "rb").read()).hexdigest()`);
      if (!r.sc || expectStatus(r, ['ok']) !== 'ok') return;
      if (r.sc.result !== `'${sha}'`) fail(r.ctx, 'the worker reads the uploaded bytes', `'${sha}'`, r.sc.result, r.sc);
    }
  }],
  ['reopen', 3, async (lane) => {
    if (!lane.sid) await openCell(lane);
    if (!lane.sid) return;
    const ctx = { n: ++cellSeq, lane: lane.index, sid: lane.sid, kind: 'reopen' };
    const started = performance.now();
    const closed = await withStopped(lane, () => callTool(client, 'close_session', { session_id: lane.sid }));
    const sc = closed.structuredContent;
    if (closed.isError || sc?.session_id !== lane.sid || sc?.closed !== true) {
      fail(ctx, 'close_session', { session_id: lane.sid, closed: true }, closed);
      note('reopen', 'error', performance.now() - started);
    } else note('reopen', 'ok', performance.now() - started);
    const old = lane.sid;
    lane.sid = null;
    lane.pendingLoss = null;
    lane.initKilled = false;
    const again = await callTool(client, 'run_python', { code: 'pass', session_id: old });
    if (!again.isError || !/unknown session/.test(textOf(again)))
      fail(ctx, 'run_python on a closed session is refused', 'isError, "unknown session"', textOf(again), again);
  }],
  ['error', 3, async (lane) => {
    const tag = `soak ${lane.rng.int(0, 1e9)}`;
    const r = await cell(lane, 'error', null, `raise ValueError(${JSON.stringify(tag)})`);
    if (!r.sc || expectStatus(r, ['error']) !== 'error') return;
    if (r.sc.error?.type !== 'ValueError' || r.sc.error?.message !== tag)
      fail(r.ctx, 'the exception', `ValueError: ${tag}`, `${r.sc.error?.type}: ${r.sc.error?.message}`, r.sc);
  }],
];

// ---------------------------------------------------------------------------
// Faults, injected between a lane's cells
// ---------------------------------------------------------------------------

const FAULT_RATE = 0.04;
let lastZygoteKilled = 0;

async function injectFault(lane) {
  // Every draw is made whatever happens next, so that a lane's stream,
  // and with it the rest of its cells, depends on the seed alone.
  const which = lane.rng.weighted([['zygote', 1], ['init-kill', 2], ['init-stop', 2]]);
  const stopMs = lane.rng.int(10, 400);
  if (which === 'zygote') {
    const z = childrenOf(front).find((p) => commOf(p) === 'kiln-zygote');
    // A zygote is killed only once it has been up a while: the front gives
    // up on one that keeps dying before it is ready, which is by design.
    if (!z || z === lastZygoteKilled || ageOf(z) < 3) {
      faults.skipped++;
      return;
    }
    lastZygoteKilled = z;
    try {
      process.kill(z, 'SIGKILL');
      faults['zygote SIGKILL']++;
    } catch {
      faults.skipped++;
    }
    return;
  }
  if (!lane.sid) {
    faults.skipped++;
    return;
  }
  let pid;
  try {
    pid = await sessionPid(client, lane.sid);
  } catch (err) {
    fail(`lane ${lane.index}, session ${lane.sid}`, 'list_sessions lists the open session', lane.sid, err.message);
    return;
  }
  if (!pid || commOf(pid) !== 'kiln-init') {
    // Lost (no worker until its next cell): nothing to hit.
    faults.skipped++;
    return;
  }
  // A signal takes effect when its target next runs, which on a loaded
  // host can be after the next cell: the fault is in place only once the
  // init is seen dead (and, the namespace's PID 1, its worker with it) or
  // stopped.
  if (which === 'init-kill') {
    process.kill(pid, 'SIGKILL');
    faults['init SIGKILL']++;
    lane.pendingLoss = `the soak killed the session's init (pid ${pid}) with SIGKILL`;
    lane.initKilled = true;
    if (!(await pollUntil(() => !pidAlive(pid), 10_000, 5)))
      fail(`lane ${lane.index}, session ${lane.sid}`, 'an init killed with SIGKILL dies', `pid ${pid} dead`, stateOf(pid));
  } else {
    process.kill(pid, 'SIGSTOP');
    faults['init SIGSTOP/SIGCONT']++;
    lane.stopped = { pid, ms: stopMs };
    await pollUntil(() => stateOf(pid) !== 'R' && stateOf(pid) !== 'S', 2_000, 5);
  }
}

// ---------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------

let haveCgroups = false;
let kilnGroups = [];
let baseline = null; // { fds, threads, perWorkerFds }
const checkpoints = [];
const memoryBytes = (() => {
  const m = /^(\d+)([KMG]?)$/i.exec(opt.memory);
  if (!m) usage(`--memory ${opt.memory}: use e.g. 256M`);
  return Number(m[1]) * { '': 1, K: 1024, M: 1 << 20, G: 1 << 30 }[m[2].toUpperCase()];
})();

function measure() {
  const kids = childrenOf(front).map((p) => ({ pid: p, comm: commOf(p) }));
  // Below the front: the zygote keeps no children (each fork's middle
  // process is reaped), and each init has its worker and nothing else.
  const below = [];
  for (const k of kids) {
    const grand = childrenOf(k.pid).map((p) => commOf(p));
    if (k.comm === 'kiln-zygote' && grand.length) below.push(`zygote ${k.pid}: ${grand.join(',')}`);
    if (k.comm === 'kiln-init' && (grand.length !== 1 || grand[0] !== 'kiln-worker')) below.push(`init ${k.pid}: ${grand.join(',') || 'no worker'}`);
  }
  return {
    rssKiB: procStatus(front, 'VmRSS'),
    fds: countDir(`/proc/${front}/fd`),
    threads: procStatus(front, 'Threads'),
    zygotes: kids.filter((k) => k.comm === 'kiln-zygote').length,
    inits: kids.filter((k) => k.comm === 'kiln-init').length,
    compilers: kids.filter((k) => k.comm === 'kiln-compiler').length,
    others: kids
      .filter((k) => !['kiln-zygote', 'kiln-init', 'kiln-compiler'].includes(k.comm))
      .map((k) => `${k.pid}:${k.comm}`),
    below,
    children: kids.length,
    cgroups: haveCgroups ? sessionGroupsOf(kilnGroups) : null,
    sessionDirs: countDir(sessionsDir),
  };
}

/** What the figures must come back to with OPEN sessions, each with a worker. */
function expectedFigures(open) {
  return {
    fds: baseline.fds + baseline.perWorkerFds * open,
    threads: baseline.threads,
    zygotes: 1,
    inits: SPARES + open,
    // The code cache's compile helper: one, whatever the cells did.
    compilers: 1,
    others: [],
    below: [],
    cgroups: haveCgroups ? kilnGroups.length * (SPARES + open) : null,
    sessionDirs: SPARES + open,
  };
}

function mismatches(got, want) {
  return Object.keys(want).filter((k) => JSON.stringify(got[k]) !== JSON.stringify(want[k]));
}

/** Polls until the figures match those of OPEN live sessions; returns [last figures, names that never matched]. */
async function settle(open) {
  const want = expectedFigures(open);
  let got;
  let bad;
  await pollUntil(() => {
    got = measure();
    bad = mismatches(got, want);
    return bad.length === 0;
  }, opt.settleS * 1000, 100);
  return [got, bad, want];
}

async function checkpoint(index, lanes) {
  if (frontGone) return;
  // Every open session gets a worker again (a crashed one has none until
  // its next cell), and the probe reads the counter without moving it.
  await Promise.all(lanes.map(async (lane) => {
    if (!lane.sid) return;
    const r = await cell(lane, 'probe', null, 'globals().get("c", 0)');
    if (!r.sc || expectStatus(r, ['ok']) !== 'ok') return;
    if (lane.expected === null) lane.expected = Number(r.sc.result);
    if (r.sc.result !== String(lane.expected)) {
      fail(r.ctx, 'the counter at the checkpoint', String(lane.expected), r.sc.result, r.sc);
      lane.expected = Number(r.sc.result);
    }
  }));
  const open = lanes.filter((l) => l.sid).map((l) => l.sid);
  const where = `checkpoint ${index}`;
  try {
    const list = await callTool(client, 'list_sessions', {});
    const listed = list.structuredContent.sessions;
    const ids = listed.map((s) => s.session_id).sort();
    if (JSON.stringify(ids) !== JSON.stringify([...open].sort()))
      fail(where, 'list_sessions lists exactly the open sessions', [...open].sort(), ids);
    for (const s of listed) {
      if (s.state !== 'idle' || !s.pid || commOf(s.pid) !== 'kiln-init' || !childrenOf(front).includes(s.pid))
        fail(where, `session ${s.session_id} is idle with a live init, a child of the front`, 'state idle, pid a kiln-init child', s);
    }
  } catch (err) {
    fail(where, 'list_sessions', 'a listing', err.message);
  }
  const [got, bad, want] = await settle(open.length);
  for (const k of bad)
    fail(where, `${k} with ${open.length} open sessions (${SPARES} spares) after ${opt.settleS} s to settle`, want[k], got[k]);
  const row = { index, cells: cellSeq, seconds: (performance.now() - t0) / 1000, open: open.length, ...got };
  checkpoints.push(row);
  console.log(`soak: checkpoint ${index}: ${cellSeq} cells, ${open.length} open, rss ${got.rssKiB} KiB, fds ${got.fds}, threads ${got.threads}, ` +
    `children ${got.children}, cgroups ${got.cgroups ?? '-'}, session dirs ${got.sessionDirs}, ${failures.length} failures, ${row.seconds.toFixed(0)} s`);
}

// ---------------------------------------------------------------------------
// Calibration: the figures of the front with only its spares, and what
// one session adds.
// ---------------------------------------------------------------------------

async function calibrate() {
  kilnGroups = kilnGroupsOf(front).filter((d) => existsSync(d));
  haveCgroups = process.getuid() === 0 && kilnGroups.length > 0;
  const quiet = async (label) => {
    let last;
    let stableFor = 0;
    await pollUntil(() => {
      const m = measure();
      const sameAsLast = last && m.fds === last.fds && m.inits === last.inits;
      stableFor = sameAsLast ? stableFor + 1 : 0;
      last = m;
      return m.zygotes === 1 && stableFor >= 5;
    }, 60_000, 100);
    if (!last || last.zygotes !== 1) throw new Error(`calibration (${label}): the front did not settle: ${brief(last)}`);
    return last;
  };
  // The spares are up when the front has its zygote and SPARES inits.
  await pollUntil(() => measure().inits === SPARES, 60_000, 100);
  const m0 = await quiet('spares only');
  const probe = new Lane(-1);
  await cell(probe, 'calibrate', null, 'pass');
  await pollUntil(() => measure().inits === SPARES + 1, 60_000, 100);
  const m1 = await quiet('one session');
  await callTool(client, 'close_session', { session_id: probe.sid });
  await pollUntil(() => measure().inits === SPARES, 60_000, 100);
  const m2 = await quiet('closed again');
  baseline = { fds: m0.fds, threads: m0.threads, perWorkerFds: m1.fds - m0.fds };
  if (m0.inits !== SPARES || m1.inits !== SPARES + 1 || m2.fds !== m0.fds || baseline.perWorkerFds <= 0)
    fail('calibration', 'the front with only spares, with one session, and after closing it',
      `spares ${SPARES}, fds coming back to ${m0.fds}`, `${brief(m0)} / ${brief(m1)} / ${brief(m2)}`);
  if (haveCgroups && m0.cgroups !== kilnGroups.length * SPARES)
    fail('calibration', 'one session group per spare in each kiln group', kilnGroups.length * SPARES, m0.cgroups);
  console.log(`soak: baseline: fds ${baseline.fds} + ${baseline.perWorkerFds} per session, threads ${baseline.threads}, ` +
    `rss ${m0.rssKiB} KiB; cgroups: ${haveCgroups ? kilnGroups.join(', ') : 'not counted (needs root and kiln-made groups)'}`);
  checkpoints.push({ index: 0, cells: 0, seconds: (performance.now() - t0) / 1000, open: 0, ...m2 });
}

// ---------------------------------------------------------------------------
// Run
// ---------------------------------------------------------------------------

async function runLane(lane, count) {
  for (let i = 0; i < count && !stopping; i++) {
    if (lane.rng.chance(FAULT_RATE)) await injectFault(lane);
    const kind = lane.rng.weighted(KINDS.map(([name, weight, fn]) => [fn, weight]));
    await kind(lane);
  }
}

async function finish(lanes) {
  // Close every session; the front must come back to its spares alone.
  for (const lane of lanes) {
    if (!lane.sid) continue;
    const r = await callTool(client, 'close_session', { session_id: lane.sid });
    if (r.isError || r.structuredContent?.closed !== true) fail(`end, lane ${lane.index}`, `close_session ${lane.sid}`, 'closed: true', r);
    lane.sid = null;
  }
  const list = await callTool(client, 'list_sessions', {});
  if (list.structuredContent.sessions.length !== 0)
    fail('end', 'no session is listed once all are closed', [], list.structuredContent.sessions.map((s) => s.session_id));
  const [got, bad, want] = await settle(0);
  for (const k of bad) fail('end', `${k} with every session closed`, want[k], got[k]);
  checkpoints.push({ index: 'end', cells: cellSeq, seconds: (performance.now() - t0) / 1000, open: 0, ...got });

  // Then end of input: the front exits by itself, leaving nothing.
  const kids = childrenOf(front);
  const groups = kilnGroupsOf(front).filter((d) => existsSync(d));
  const closeAt = performance.now();
  closing = true;
  frontProc.stdin.end();
  const outcome = await Promise.race([frontExit, sleep(20_000).then(() => null)]);
  const exit = { seconds: null, code: null, signal: null };
  if (!outcome) {
    fail('end', 'the front exits within 20 s of the end of its input', 'exit', 'still running');
    await server.close();
  } else {
    exit.seconds = (outcome.at - closeAt) / 1000;
    exit.code = outcome.code;
    exit.signal = outcome.signal;
    if (outcome.code !== 0 || outcome.signal) fail('end', 'the front exits with status 0 at the end of its input', 'code 0', brief(outcome));
    await server.close();
  }
  for (const pid of kids) {
    if (!(await pollUntil(() => pidGone(pid) || commOf(pid) === null, 10_000)))
      fail('end', 'the front\'s children are gone after it exits', `pid ${pid} gone`, `${commOf(pid)} still running`);
  }
  const leftGroups = await pollUntil(() => {
    const left = groups.filter((d) => existsSync(d));
    return left.length === 0 ? [] : null;
  }, 10_000) ? [] : groups.filter((d) => existsSync(d));
  if (leftGroups.length) fail('end', 'the front leaves no cgroup behind', 'none', leftGroups);
  const leftDirs = existsSync(sessionsDir) ? readdirSync(sessionsDir) : [];
  // What is in each, so that a leak says what kept its directory.
  const leftWith = leftDirs.map((d) => `${d}: ${readdirSync(join(sessionsDir, d), { recursive: true }).join(' ') || 'empty'}`);
  if (leftDirs.length) fail('end', 'the front leaves no session directory behind', 'none', leftWith);
  return { exit, leftGroups, leftDirs };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(end) {
  const seconds = (performance.now() - t0) / 1000;
  const statuses = ['ok', 'error', 'interrupted', 'killed', 'crashed'];
  for (const s of stats.values()) for (const k of s.statuses.keys()) if (!statuses.includes(k)) statuses.push(k);
  const pad = (v, n) => String(v).padStart(n);
  const lines = [];
  lines.push('', `== soak summary (seed ${opt.seed})`, '');
  lines.push(`cells by kind and status (calls; ms p50 / p99 / max)`);
  lines.push(`${'kind'.padEnd(12)}${statuses.map((s) => pad(s, 12)).join('')}${pad('total', 8)}   latency ms`);
  let total = 0;
  for (const [kind, s] of [...stats.entries()].sort()) {
    const n = [...s.statuses.values()].reduce((a, b) => a + b, 0);
    total += n;
    const ms = [...s.ms].sort((a, b) => a - b);
    lines.push(`${kind.padEnd(12)}${statuses.map((st) => pad(s.statuses.get(st) ?? '', 12)).join('')}${pad(n, 8)}   ` +
      `${percentile(ms, 50).toFixed(1)} / ${percentile(ms, 99).toFixed(1)} / ${(ms[ms.length - 1] ?? 0).toFixed(1)}`);
  }
  lines.push(`${'all'.padEnd(12)}${' '.repeat(12 * statuses.length)}${pad(total, 8)}`);
  lines.push('', `sessions opened: ${sessionsOpened}`);
  lines.push(`faults injected: ${Object.entries(faults).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  lines.push('', 'checkpoints');
  lines.push(`${pad('#', 4)}${pad('cells', 8)}${pad('secs', 8)}${pad('open', 6)}${pad('rss KiB', 9)}${pad('fds', 6)}${pad('thr', 5)}${pad('kids', 6)}${pad('cgroups', 9)}${pad('dirs', 6)}`);
  for (const c of checkpoints) {
    lines.push(`${pad(c.index, 4)}${pad(c.cells, 8)}${pad(c.seconds.toFixed(0), 8)}${pad(c.open, 6)}${pad(c.rssKiB, 9)}${pad(c.fds, 6)}` +
      `${pad(c.threads, 5)}${pad(c.children, 6)}${pad(c.cgroups ?? '-', 9)}${pad(c.sessionDirs, 6)}`);
  }
  if (end) {
    lines.push('', `front exit at end of input: ${end.exit.seconds === null ? 'did not exit' : `code ${end.exit.code}${end.exit.signal ? ` signal ${end.exit.signal}` : ''} after ${end.exit.seconds.toFixed(2)} s`}; ` +
      `cgroups left ${end.leftGroups.length}, session directories left ${end.leftDirs.length}`);
  }
  lines.push(`duration: ${seconds.toFixed(1)} s (${(cellSeq / seconds).toFixed(1)} calls/s)`);
  console.log(lines.join('\n'));
}

const lanes = Array.from({ length: opt.sessions }, (_, i) => new Lane(i));
let end = null;
try {
  await calibrate();
  // Each lane's share of the cells, cut into one piece per checkpoint.
  const share = lanes.map((l) => Math.floor(opt.cells / opt.sessions) + (l.index < opt.cells % opt.sessions ? 1 : 0));
  for (let k = 1; k <= opt.checkpoints && !stopping; k++) {
    const piece = (l) => Math.floor((share[l.index] * k) / opt.checkpoints) - Math.floor((share[l.index] * (k - 1)) / opt.checkpoints);
    await Promise.all(lanes.map((l) => runLane(l, piece(l))));
    if (!stopping) await checkpoint(k, lanes);
  }
  // The front's memory: what it holds must not keep growing.
  const cps = checkpoints.filter((c) => typeof c.index === 'number');
  if (!stopping && cps.length >= 3) {
    const second = cps.find((c) => c.index === 2);
    const last = cps[cps.length - 1];
    if (second && last.rssKiB - second.rssKiB > opt.rssBoundKiB)
      fail('the front', `RSS growth from checkpoint 2 to checkpoint ${last.index} (bound ${opt.rssBoundKiB} KiB)`,
        `<= ${second.rssKiB + opt.rssBoundKiB} KiB`, `${last.rssKiB} KiB (+${last.rssKiB - second.rssKiB} KiB)`);
  }
  if (!frontGone) end = await finish(lanes);
} catch (err) {
  fail('the soak', 'the driver ran to the end', 'no exception', err.stack ?? String(err));
  await server.close().catch(() => {});
}

summary(end);
if (failures.length) {
  console.log(`\nsoak: FAILED: ${failures.length} invariant violation(s); the first: ${failures[0].at}: ${failures[0].what}`);
  console.log(`kiln stderr (tail):\n${server.stderr().slice(-4000)}`);
  console.log(`reproduce: ${reproduce()}`);
  rmSync(home, { recursive: true, force: true });
  process.exit(1);
}
rmSync(home, { recursive: true, force: true });
console.log(`soak: passed (seed ${opt.seed})`);
process.exit(0);
