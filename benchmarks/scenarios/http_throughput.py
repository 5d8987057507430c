"""50 clients of MCP over Streamable HTTP running trivial cells at once,
each with its own connection, MCP session and kiln session: one call in
flight per client, the next sent as soon as its reply arrives, all 50
driven from one thread of the suite by a selector.  Aggregate cells per
second, counted in fixed windows (the tail column is the slowest 1% of
windows), and the round trip of each call under that load.  Beside it, 50
sessions over kiln's stdio, 50 calls in flight on the one pipe.  The
client shares the 2 cores with what it measures."""
from bench.context import Job
from bench.drivers import HTTP, RAW
from scenarios.throughput import windows

TITLE = "Throughput, 50 HTTP clients"
ORDER = 84
CLIENTS = 50
CODE = "x = x + 1"
RATE = f"trivial cells/s, {CLIENTS} clients, {CLIENTS} in flight"
LATENCY = "round trip under that load"


def run(ctx):
    seconds, rounds, width = ctx.n(4.0, 1.5), ctx.n(5, 1), ctx.n(1.0, 0.5)
    counts, latency, jobs, checks = {}, {}, [], []
    raw, http = ctx.kiln_raw(), ctx.kiln_http()

    # stdio: 50 sessions on the one pipe.
    sids = []
    for _ in range(CLIENTS):
        _, r = raw.run("x = 0")
        sids.append(r["session_id"])
    # HTTP: 50 clients, each its own connection, MCP session and kiln session.
    ctx.progress.update(f"connecting {CLIENTS} HTTP clients")
    pairs = []
    for _ in range(CLIENTS):
        client = http.connect()
        _, r = http.run("x = 0", client=client)
        pairs.append((client, r["session_id"]))
    ctx.check(len({sid for _, sid in pairs}) == CLIENTS, "the HTTP clients share kiln sessions")

    for label, k, sessions, ids in ((RAW, raw, sids, sids), (HTTP, http, pairs, [sid for _, sid in pairs])):
        for sid in ids:
            counts[sid] = 0
        latency[label] = []

        def one(label=label, k=k, sessions=sessions, length=seconds, keep=True):
            res = k.pipeline(sessions, CODE, length)
            ctx.check(not res["errors"], f"{label}: {res['errors'][:1]}")
            for sid, c in res["ok"].items():
                counts[sid] += c
            if keep:
                latency[label].extend(res["latency"])
                return windows(res["done"], length, width)
            return []
        jobs.append(Job(label, rounds, one, warmup=0))
        one(length=0.5, keep=False)

    checks.append(lambda: [(sid, raw.run("x", sid)[1]["result"]) for sid in sids])
    checks.append(lambda: [(sid, http.run("x", sid, client=client)[1]["result"]) for client, sid in pairs])

    s = ctx.interleave(jobs)

    # Every cell ran, once: each session's counter is its number of replies.
    for check in checks:
        for key, value in check():
            ctx.check(value == str(counts[key]), f"session {key}: x = {value}, expected {counts[key]}")

    note = f"{rounds} × {seconds:g} s, {width:g} s windows"
    ctx.record(RATE, RAW, s[RAW], unit="/s", better="higher",
               note=f"{note}; {CLIENTS} sessions on one stdio pipe")
    ctx.record(RATE, HTTP, s[HTTP], unit="/s", better="higher",
               note=f"{note}; {CLIENTS} connections, MCP sessions and kiln sessions")
    for label in (RAW, HTTP):
        ctx.record(LATENCY, label, latency[label])
