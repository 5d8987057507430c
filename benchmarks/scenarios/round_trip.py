"""A trivial cell, `x = x + 1`, in a session that already exists: the
client-observed round trip, call after call.  ipykernel's is
execute_request → execute_reply through jupyter_client's blocking client,
the leanest it has (a frontend also waits for the idle status on iopub,
which adds a little)."""
from bench.context import Job
from bench.drivers import IPY

TITLE = "Warm round trip"
ORDER = 20
CODE = "x = x + 1"
METRIC = "`x = x + 1` in an existing session"


def run(ctx):
    calls, ipy_calls, block = ctx.n(5000, 300), ctx.n(1000, 100), ctx.n(100, 50)
    done = {}
    jobs, sessions = [], []

    for k in ctx.kilns():
        _, r = k.run("x = 0")
        sid = r["session_id"]
        done[k.label] = 0

        def one(k=k, sid=sid):
            times, replies, bad = k.run_many(CODE, sid, block)
            ctx.check(not bad and replies[-1]["result"] is None, f"{k.label}: {bad[:1] or replies[-1]}")
            done[k.label] += block
            return times
        jobs.append(Job(k.label, calls // block, one))
        sessions.append((k, sid))

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
    for k, sid in sessions:
        _, r = k.run("x", sid)
        ctx.check(r["result"] == str(done[k.label]), f"{k.label}: x = {r['result']}, expected {done[k.label]}")
    r = ipy.execute("x")
    ctx.check(r["result"] == str(done[IPY]), f"ipykernel: x = {r['result']}, expected {done[IPY]}")

    for k, _ in sessions:
        summ = ctx.record(METRIC, k.label, s[k.label])
        ctx.target(f"trivial run_python round trip over MCP stdio, p50 — {k.label}", "≤ 150 µs",
                   f"{summ['median'] * 1e6:.0f} µs", summ["median"] <= 150e-6)
        ctx.target(f"trivial run_python round trip over MCP stdio, p99 — {k.label}", "≤ 1 ms",
                   f"{summ['p99'] * 1e6:.0f} µs", summ["p99"] <= 1e-3)
    ctx.record(METRIC, IPY, s[IPY], note="execute_request → execute_reply")
