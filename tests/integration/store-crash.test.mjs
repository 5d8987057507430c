// The database survives kiln serve being killed (SIGKILL) in the middle
// of heavy writes: the history of many cells and snapshots both inline
// and in files.  Twenty times over one KILN_HOME; then SQLite's own
// integrity check must pass and every snapshot the database names must be
// whole (its size and BLAKE2b-256 as recorded).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { run, startServer } from './helpers.mjs';

const ROUNDS = 20;

// Reads the database as an outside program would: SQLite's integrity
// check, then each recorded snapshot against its size and hash.
const CHECK = `
import hashlib, os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("PRAGMA integrity_check").fetchone()[0])
bad = []
n = 0
for sid, blob, path, digest, size in db.execute(
        "SELECT id, snapshot, snapshot_file, snapshot_hash, snapshot_size FROM sessions"):
    if blob is None and path is None:
        continue
    n += 1
    data = blob if blob is not None else (open(path, "rb").read() if os.path.exists(path) else None)
    if data is None:
        bad.append(f"{sid}: {path} is missing")
    elif len(data) != size or hashlib.blake2b(data, digest_size=32).digest() != digest:
        bad.append(f"{sid}: {len(data)} bytes, recorded {size}, hash {'ok' if hashlib.blake2b(data, digest_size=32).digest() == digest else 'differs'}")
print(n)
print(db.execute("SELECT count(*) FROM history").fetchone()[0])
print("; ".join(bad) or "whole")
named = {p for (p,) in db.execute("SELECT snapshot_file FROM sessions WHERE snapshot_file IS NOT NULL")}
snapdir = os.path.join(os.path.dirname(sys.argv[1]), "snapshots")
print(len([f for f in (os.listdir(snapdir) if os.path.isdir(snapdir) else []) if os.path.join(snapdir, f) not in named]))
`;

function check(home) {
  const [integrity, snapshots, history, whole, orphans] = execFileSync('python3', ['-c', CHECK, join(home, 'kiln.db')])
    .toString().trim().split('\n');
  return { integrity, snapshots: Number(snapshots), history: Number(history), whole, orphans: Number(orphans) };
}

/** Runs cells in a loop until STOP() says so, swallowing the errors a killed server gives. */
async function churn(client, code, pause, stop) {
  let sid;
  while (!stop()) {
    try {
      const sc = await run(client, code, sid ? { session_id: sid } : {});
      sid = sc.session_id;
    } catch {
      return;
    }
    await sleep(pause);
  }
}

test(`kiln.db stays sound through ${ROUNDS} SIGKILLs in the middle of heavy writes`, { timeout: ROUNDS * 30_000 }, async () => {
  const home = mkdtempSync(join(tmpdir(), 'kiln-crash-'));
  let snapshotsSeen = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const kiln = await startServer({ env: { KILN_HOME: home }, args: ['--idle-hibernate', '0.2'], listTools: false });
      let killed = false;
      const stop = () => killed;
      const work = [
        // Snapshots over the inline size: a file each time.
        churn(kiln.client, 'import os\nblob = os.urandom(5_000_000)\nn = globals().get("n", 0) + 1', 300, stop),
        // Small snapshots, kept inline.
        churn(kiln.client, 'xs = list(range(globals().get("k", 0), 2000))\nk = len(xs)', 250, stop),
        // History as fast as it comes.
        churn(kiln.client, 'print("x" * 100)', 0, stop),
      ];
      await sleep(700 + ((round * 397) % 1800));
      killed = true;
      process.kill(kiln.pid, 'SIGKILL');
      await Promise.all(work);
      await kiln.close().catch(() => {});
      const state = check(home);
      assert.equal(state.integrity, 'ok', `round ${round}: ${JSON.stringify(state)}`);
      assert.equal(state.whole, 'whole', `round ${round}: ${JSON.stringify(state)}`);
      snapshotsSeen = Math.max(snapshotsSeen, state.snapshots);
    }
    // The rounds did write what they were meant to: the test proves
    // nothing if no snapshot was ever committed.
    let state = check(home);
    assert.ok(snapshotsSeen > 0, JSON.stringify(state));
    assert.ok(state.history > ROUNDS * 10, JSON.stringify(state));
    // What a crash leaves in snapshots/ that no row names (planted here
    // too, so that there is some) is swept by the next kiln to start,
    // and nothing a row names is touched.
    // (An hour old: a younger one may be another kiln's, being written.)
    const old = new Date(Date.now() - 2 * 3600_000);
    for (const [name, text] of [['snapshot-' + '0'.repeat(64), 'orphan'], ['deadbeef.tmp', 'half']]) {
      writeFileSync(join(home, 'snapshots', name), text);
      utimesSync(join(home, 'snapshots', name), old, old);
    }
    writeFileSync(join(home, 'snapshots', 'young.tmp'), 'being written');
    const kiln = await startServer({ env: { KILN_HOME: home }, listTools: false });
    await kiln.close();
    state = check(home);
    assert.ok(!existsSync(join(home, 'snapshots', 'snapshot-' + '0'.repeat(64))));
    assert.ok(!existsSync(join(home, 'snapshots', 'deadbeef.tmp')));
    assert.ok(existsSync(join(home, 'snapshots', 'young.tmp')));
    assert.equal(state.whole, 'whole', JSON.stringify(state));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
