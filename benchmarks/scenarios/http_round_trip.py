"""`x = x + 1` in an existing session over MCP Streamable HTTP, beside the
same over stdio, interleaved in one run: the client-observed round trip,
call after call.  Both through the raw drivers, so that what differs is the
transport: over HTTP each call is a POST on a keep-alive connection, with a
bearer token and the MCP session's id, answered with application/json.

As in the stdio round trip, kiln is also measured with the client, the
server and its sessions confined to one core (the "1 core" rows): a round
trip wakes three processes in turn, and a wake-up on the other core costs
tens of microseconds on a small VM."""
import os

from bench.context import Job
from bench.drivers import HTTP, RAW

TITLE = "Warm round trip, Streamable HTTP"
ORDER = 80
CODE = "x = x + 1"
METRIC = "`x = x + 1` in an existing session, HTTP and stdio"


def run(ctx):
    calls, block = ctx.n(5000, 300), ctx.n(100, 50)
    one_core = {max(os.sched_getaffinity(0))}
    done, jobs, sessions = {}, [], []

    kilns = [(RAW, ctx.kiln_raw(), None), (HTTP, ctx.kiln_http(), None),
             (f"{RAW}, 1 core", ctx.kiln_raw(cpus=one_core), one_core),
             (f"{HTTP}, 1 core", ctx.kiln_http(cpus=one_core), one_core)]
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

    s = ctx.interleave(jobs)

    # Every call ran: the counter is where the calls took it.
    for label, k, sid in sessions:
        _, r = k.run("x", sid)
        ctx.check(r["result"] == str(done[label]), f"{label}: x = {r['result']}, expected {done[label]}")

    summ = {}
    for label, _, cpus in kilns:
        note = "client, server and sessions on one core" if cpus else ""
        if label.startswith(HTTP):
            note = "; ".join(filter(None, ["POST on a keep-alive connection, bearer token", note]))
        summ[label] = ctx.record(METRIC, label, s[label], note=note)
    pinned = summ[f"{HTTP}, 1 core"]
    ctx.target(f"trivial run_python round trip over Streamable HTTP, p50 — {HTTP}", "≤ 500 µs",
               f"{summ[HTTP]['median'] * 1e6:.0f} µs", summ[HTTP]["median"] <= 500e-6,
               note=f"on 1 core: {pinned['median'] * 1e6:.0f} µs; stdio here: {summ[RAW]['median'] * 1e6:.0f} µs")
