// Helpers for the tests of kiln.db (the code cache and the history):
// a KILN_HOME that outlives its server, `kiln cache stats` parsed, the
// compile helper found on the host, and kiln.db read with the sandbox's
// own Python.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { KILN_BIN, childrenOf, commOf, pollUntil, run, dump } from './helpers.mjs';

/** The venv's Python 3.12, which reads kiln.db and unmarshals its code. */
export const VENV_PYTHON = join(
  process.env.KILN_VENV ?? join(dirname(KILN_BIN), '..', '.venv'),
  'bin',
  'python3',
);

/** A KILN_HOME of the test's own, kept when its server stops; remove() at the end. */
export function makeHome() {
  const path = mkdtempSync(join(tmpdir(), 'kiln-store-home-'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** `kiln ARGS... --home HOME`'s standard output; throws on a failing exit. */
export function kilnCli(home, ...args) {
  return execFileSync(KILN_BIN, [...args, '--home', home], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `kiln cache stats` as numbers: { entries, bytes, hits, misses, evictions }. */
export function cacheStats(home) {
  const text = kilnCli(home, 'cache', 'stats');
  const stats = {};
  for (const name of ['entries', 'bytes', 'hits', 'misses', 'evictions']) {
    const m = new RegExp(`^${name}\\s+(\\d+)$`, 'm').exec(text);
    assert.ok(m, `no ${name} in kiln cache stats:\n${text}`);
    stats[name] = Number(m[1]);
  }
  return stats;
}

/** Polls cacheStats(HOME) until PREDICATE holds; returns the last stats. */
export async function statsWhen(home, predicate, ms = 20_000) {
  let last;
  await pollUntil(() => predicate((last = cacheStats(home))), ms, 50);
  return last;
}

/**
 * Waits until the compile helper has said it is ready: until then a cell
 * is neither a hit nor a miss.  Runs throwaway cells (each of its own
 * source) until one is counted as a miss.
 */
export async function helperReady(client, home) {
  let n = 0;
  let before;
  const ok = await pollUntil(async () => {
    before = cacheStats(home);
    const sc = await run(client, `"warm-up ${process.pid} ${n++}"`);
    assert.equal(sc.status, 'ok', dump(sc));
    return cacheStats(home).misses > before.misses;
  }, 20_000, 100);
  assert.ok(ok, 'the compile helper never became ready (no cell was counted as a miss)');
  // And idle again, so that tests counting entries count only their own:
  // the warm-up is stored, and so is any cell another hook ran while the
  // helper came up (a bystander's), counted as a miss just before it.
  const stored = await statsWhen(home, (s) => s.entries > before.entries);
  assert.ok(stored.entries > before.entries, 'the warm-up cell was not stored');
  let last = stored.entries;
  const settled = await pollUntil(async () => {
    await new Promise((res) => setTimeout(res, 300));
    const now = cacheStats(home).entries;
    const same = now === last;
    last = now;
    return same;
  }, 10_000, 0);
  assert.ok(settled, 'the cache kept growing with no cell running');
}

/** Host pids of the compile helpers of the kiln whose front is FRONT_PID. */
export function compileHelpers(frontPid) {
  return childrenOf(frontPid).filter((pid) => commOf(pid) === 'kiln-compiler');
}

/** The one compile helper of FRONT_PID, waited for. */
export async function compileHelper(frontPid, notPid = 0) {
  const found = await pollUntil(() => {
    const pids = compileHelpers(frontPid).filter((pid) => pid !== notPid);
    return pids.length === 1 ? pids[0] : null;
  }, 20_000);
  assert.ok(found, `no kiln-compiler process under the front ${frontPid}${notPid ? ` other than ${notPid}` : ''}`);
  return found;
}

/**
 * Every row of kiln.db's code_cache, read by the venv's Python:
 * [{ key (hex), size, code (base64 of the blob), consts (every string and
 * bytes constant found in the unmarshalled code objects, recursively),
 * loads (whether marshal.loads took it) }].
 */
export function cacheRows(home) {
  const script = [
    'import base64, json, marshal, sqlite3, sys, types',
    'db = sqlite3.connect(f"file:{sys.argv[1]}/kiln.db?mode=ro", uri=True)',
    'def walk(o, out):',
    '    if isinstance(o, types.CodeType):',
    '        for c in o.co_consts: walk(c, out)',
    '        out.extend(o.co_names)',
    '    elif isinstance(o, (tuple, list, frozenset)):',
    '        for c in o: walk(c, out)',
    '    elif isinstance(o, bytes): out.append(o.decode("latin-1"))',
    '    elif isinstance(o, str): out.append(o)',
    'rows = []',
    'for key, size, code in db.execute("SELECT key, size, code FROM code_cache"):',
    '    consts, loads = [], True',
    '    try: walk(marshal.loads(code), consts)',
    '    except Exception: loads = False',
    '    rows.append({"key": key.hex(), "size": size, "code": base64.b64encode(code).decode(), "consts": consts, "loads": loads})',
    'print(json.dumps(rows))',
  ].join('\n');
  return JSON.parse(execFileSync(VENV_PYTHON, ['-c', script, home], { encoding: 'utf8' }));
}
