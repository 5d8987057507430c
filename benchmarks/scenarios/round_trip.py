"""A trivial cell, `x = x + 1`, in a session that already exists: the
client-observed round trip, call after call.  ipykernel's is
execute_request → execute_reply through jupyter_client's blocking client,
the leanest it has (a frontend also waits for the idle status on iopub,
which adds a little).

A round trip wakes three processes in turn (client, kiln, the session's
worker); where the scheduler puts them matters on a small VM, where a
wake-up on the other core costs tens of microseconds.  So kiln is also
measured with the client, the server and its sessions confined to one core
(the "1 core" rows): the same code, without the cross-core wake-ups."""
import os

from bench.context import Job
from bench.drivers import IPY, RAW, SDK

TITLE = "Warm round trip"
ORDER = 20
CODE = "x = x + 1"
METRIC = "`x = x + 1` in an existing session"


def run(ctx):
    calls, ipy_calls, block = ctx.n(5000, 300), ctx.n(1000, 100), ctx.n(100, 50)
    one_core = {max(os.sched_getaffinity(0))}
    done = {}
    jobs, sessions = [], []

    kilns = [(RAW, ctx.kiln_raw(), None), (SDK, ctx.kiln_sdk(), None),
             (f"{RAW}, 1 core", ctx.kiln_raw(cpus=one_core), one_core),
             (f"{SDK}, 1 core", ctx.kiln_sdk(cpus=one_core), one_core)]
    for label, k, cpus in kilns:
        _, r = k.run("x = 0")
        sid = r["session_id"]
        done[label] = 0

        def one(label=label, k=k, sid=sid, cpus=cpus):
            if cpus:
                with ctx.pinned(cpus):
                    times, replies, bad = k.run_many(CODE, sid, block)
            else:
                times, replies, bad = k.run_many(CODE, sid, block)
            ctx.check(not bad and replies[-1]["result"] is None, f"{label}: {bad[:1] or replies[-1]}")
            done[label] += block
            return times
        jobs.append(Job(label, calls // block, one))
        sessions.append((label, k, sid))

    ipy = ctx.ipykernel()
    ipy.execute("x = 0")
    done[IPY] = 0

    def ipy_block():
        times = []
        for _ in range(block):
            dt, status = ipy.request(CODE)
            ctx.check(status == "ok", f"ipykernel: status {status}")
            times.append(dt)
        ipy.drain()
        done[IPY] += block
        return times
    jobs.append(Job(IPY, ipy_calls // block, ipy_block))

    s = ctx.interleave(jobs)

    # Every call ran: the counter is where the calls took it.
    for label, k, sid in sessions:
        _, r = k.run("x", sid)
        ctx.check(r["result"] == str(done[label]), f"{label}: x = {r['result']}, expected {done[label]}")
    r = ipy.execute("x")
    ctx.check(r["result"] == str(done[IPY]), f"ipykernel: x = {r['result']}, expected {done[IPY]}")

    summ = {}
    for label, _, cpus in kilns:
        note = "client, server and sessions on one core" if cpus else ""
        summ[label] = ctx.record(METRIC, label, s[label], note=note)
    ctx.record(METRIC, IPY, s[IPY], note="execute_request → execute_reply")
    for label in (RAW, SDK):
        pinned = summ[f"{label}, 1 core"]
        ctx.target(f"trivial run_python round trip over MCP stdio, p50 — {label}", "≤ 150 µs",
                   f"{summ[label]['median'] * 1e6:.0f} µs", summ[label]["median"] <= 150e-6,
                   note=f"on 1 core: {pinned['median'] * 1e6:.0f} µs")
        ctx.target(f"trivial run_python round trip over MCP stdio, p99 — {label}", "≤ 1 ms",
                   f"{summ[label]['p99'] * 1e6:.0f} µs", summ[label]["p99"] <= 1e-3,
                   note=f"on 1 core: {pinned['p99'] * 1e6:.0f} µs")
