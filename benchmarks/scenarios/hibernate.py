"""Hibernation: a session snapshotted and its worker stopped, then
restored by the next call.

For a session holding a few small variables and for one holding a 100 MB
DataFrame: the snapshot and the restore as kiln's log times them (in the
worker, from the front's asking to its answer), and the first call after
hibernation end to end (a worker forked from the zygote, the snapshot
loaded, the cell run) against a call to a live session.  The reference
for "at disk speed" is this machine writing (and syncing) and reading
back the same number of bytes.  No peer hibernates a session; ipykernel's
nearest is a kernel restart, which loses the state.

Then 10,000 hibernated sessions (rows made from one real snapshot, so
that each can be restored): what the front holds for them (its RSS
against a front with none; a hibernated session has no process), the time
to list them, and to restore one.
"""
import os
import re
import secrets
import sqlite3
import tempfile
import time
import shutil

TITLE = "Hibernate and restore"
ORDER = 35

SMALL = "x = 1\nnames = ['a', 'b', 'c']\ndef f(v): return v + x\n'set'"
BIG = "import numpy as np, pandas as pd\ndf = pd.DataFrame(np.random.rand(1_250_000, 10))\n'set'"
CHECK_SMALL, SMALL_OK = "f(41)", "42"
CHECK_BIG, BIG_OK = "df.shape", "(1250000, 10)"


def _rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _log_ms(path, sid, what):
    pat = re.compile(rf"session {sid} (?:hibernated: a snapshot of (\d+) bytes in|{what} in) ([\d.]+) ms")
    found = []
    with open(path, errors="replace") as f:
        for line in f:
            m = pat.search(line)
            if m and (what == "hibernated") == (m.group(1) is not None):
                found.append((float(m.group(2)) / 1e3, int(m.group(1) or 0)))
    return found


def _wait_state(ctx, k, sid, state, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        s = [x for x in k.list_sessions() if x["session_id"] == sid]
        if s and s[0]["state"] == state:
            return
        time.sleep(0.05)
    ctx.check(False, f"session {sid} never became {state}")


def _disk(nbytes, where):
    path = os.path.join(where, "disk-reference")
    data = os.urandom(nbytes)
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    t1 = time.perf_counter()
    os.posix_fadvise(os.open(path, os.O_RDONLY), 0, 0, os.POSIX_FADV_DONTNEED)
    with open(path, "rb") as f:
        f.read()
    t2 = time.perf_counter()
    os.unlink(path)
    return t1 - t0, t2 - t1


def run(ctx):
    rounds = ctx.n(10, 3)
    home = tempfile.mkdtemp(prefix="kiln-bench-hib-")
    try:
        k = ctx.kiln_raw("--home", home, "--idle-hibernate", "0.3")
        for label, setup, check, ok in (("a few small variables", SMALL, CHECK_SMALL, SMALL_OK),
                                        ("a 100 MB DataFrame", BIG, CHECK_BIG, BIG_OK)):
            n = rounds if label.startswith("a few") else ctx.n(5, 2)
            first, live, sizes = [], [], []
            _, r = k.run(setup)
            ctx.check(r["status"] == "ok", f"{label}: {r}")
            sid = r["session_id"]
            for i in range(n):
                ctx.progress.update(label, i, n)
                _wait_state(ctx, k, sid, "hibernated")
                dt, r = k.run(check, sid)
                ctx.check(r["status"] == "ok" and r["result"] == ok and not r.get("state_lost"), f"{label}: {r}")
                first.append(dt)
                dt, r = k.run(check, sid)
                live.append(dt)
            _wait_state(ctx, k, sid, "hibernated")
            snaps = _log_ms(k.log_path, sid, "hibernated")
            restores = _log_ms(k.log_path, sid, "restored")
            ctx.check(len(snaps) >= n and len(restores) >= n, f"{label}: the log has {len(snaps)} snapshots")
            size = snaps[-1][1]
            shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
            ctx.record(f"snapshot — {label}", "kiln", [t for t, _ in snaps], note=f"{shown} snapshot")
            ctx.record(f"restore — {label}", "kiln", [t for t, _ in restores], note="in the new worker")
            ctx.record(f"first call after hibernation — {label}", "kiln", first,
                       note="fork + restore + the cell, end to end")
            ctx.record(f"first call after hibernation — {label}", "kiln, the session live", live)
            w, rd = zip(*[_disk(size, home) for _ in range(3)])
            ctx.record(f"snapshot — {label}", "this disk: write + fsync of as many bytes", w, baseline=False)
            ctx.record(f"restore — {label}", "this disk: read of as many bytes, uncached", rd, baseline=False)
            if label.startswith("a few"):
                small_snap = sorted(t for t, _ in snaps)[len(snaps) // 2]
                small_rest = sorted(t for t, _ in restores)[len(restores) // 2]
                small_sid = sid
        ctx.target("hibernate a small session", "≤ 50 ms", f"{small_snap * 1e3:.1f} ms", small_snap <= 0.05)
        ctx.target("restore a small session", "≤ 50 ms", f"{small_rest * 1e3:.1f} ms", small_rest <= 0.05,
                   note="in the worker; the first call after hibernation also starts a worker")
        listed = [s for s in k.list_sessions() if s["session_id"] == small_sid]
        ctx.check(listed and listed[0]["pid"] is None, f"a hibernated session has a process: {listed}")
        ctx.release(k)

        # 10,000 sessions from the small one's row.
        count = ctx.n(10_000, 1_000)
        db = sqlite3.connect(os.path.join(home, "kiln.db"))
        row = db.execute("SELECT * FROM sessions WHERE id = ?", (small_sid,)).fetchone()
        ctx.check(row is not None, "the small session's row is gone")
        cols = len(row)
        ids = [secrets.token_hex(8) for _ in range(count - 1)]
        db.executemany(f"INSERT INTO sessions VALUES ({','.join('?' * cols)})",
                       [(sid,) + tuple(row[1:]) for sid in ids])
        db.commit()
        db.close()
        empty = ctx.kiln_raw()
        time.sleep(1.0)
        base = _rss(empty.p.pid)
        ctx.release(empty)
        k = ctx.kiln_raw("--home", home)
        time.sleep(1.0)
        per = (_rss(k.p.pid) - base) / count
        ctx.record(f"front memory per hibernated session, N={count}", "kiln", [per], unit="B",
                   note="RSS of the front with N against none; no process per session")
        times = []
        for _ in range(ctx.n(10, 3)):
            t0 = time.perf_counter()
            listed = k.list_sessions()
            times.append(time.perf_counter() - t0)
        listed_ids = {s["session_id"] for s in listed}
        ctx.check(all(sid in listed_ids for sid in ids), f"list_sessions gave {len(listed)} of {count}")
        ctx.record(f"list_sessions with N={count} hibernated", "kiln", times)
        restore = []
        for sid in ids[:ctx.n(10, 3)]:
            dt, r = k.run(CHECK_SMALL, sid)
            ctx.check(r["status"] == "ok" and r["result"] == SMALL_OK, f"restore among {count}: {r}")
            restore.append(dt)
        ctx.record(f"first call to one of N={count} hibernated sessions", "kiln", restore,
                   note="fork + restore + the cell, end to end")
        ctx.target("hibernated session memory", "no process", f"{per:.0f} B in the front, no process",
                   per < 64 << 10)
        ctx.release(k)
    finally:
        shutil.rmtree(home, ignore_errors=True)
