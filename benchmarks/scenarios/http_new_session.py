"""A new session's first result over MCP Streamable HTTP, beside the same
over stdio, interleaved in one run: `1+1` in a new kiln session, sessions
50 ms apart so that each finds a spare worker ready, as in the stdio
scenario.  Over HTTP twice: on the MCP session the client already has, and
as a client arriving afresh would, from a new connection through
initialize and notifications/initialized to the cell's result (the note
gives the handshake's share).  Each session is closed after its sample,
untimed; a fresh client's MCP session is ended too (DELETE)."""
import time

from bench.context import Job
from bench.drivers import HTTP, RAW

TITLE = "New session → first result, Streamable HTTP"
ORDER = 82
CODE = "1+1"
METRIC = "`1+1` in a new session, HTTP and stdio"
PAUSE = 0.05


def run(ctx):
    raw, http = ctx.kiln_raw(), ctx.kiln_http()
    spaced = ctx.n(150, 15)
    fresh = f"{HTTP}, new MCP session"
    handshakes = []

    def ok(label, r):
        ctx.check(r["status"] == "ok" and r["result"] == "2" and r["new_session"], f"{label}: {r}")

    def spaced_one(k):
        def one():
            time.sleep(PAUSE)
            dt, r = k.run(CODE)
            ok(k.label, r)
            k.close_sessions([r["session_id"]])
            return dt
        return one

    def fresh_one():
        time.sleep(PAUSE)
        t0 = time.perf_counter()
        client = http.connect()
        t1 = time.perf_counter()
        _, r = http.run(CODE, client=client)
        dt = time.perf_counter() - t0
        ok(fresh, r)
        http.close_sessions([r["session_id"]], client=client)
        http.disconnect(client)
        handshakes.append(t1 - t0)
        return dt

    s = ctx.interleave([
        Job(RAW, spaced, spaced_one(raw), warmup=3),
        Job(HTTP, spaced, spaced_one(http), warmup=3),
        Job(fresh, spaced, fresh_one, warmup=3),
    ])
    handshake = sorted(handshakes[3:])[len(handshakes[3:]) // 2]
    spare = f"a spare worker ready ({PAUSE * 1e3:.0f} ms between sessions)"
    ctx.record(METRIC, RAW, s[RAW], note=spare)
    summ = ctx.record(METRIC, HTTP, s[HTTP], note=f"{spare}; the client's MCP session and connection")
    ctx.record(METRIC, fresh, s[fresh], note=f"connect + initialize + initialized {handshake * 1e6:.0f} µs "
               "(median), then the cell")
    ctx.target(f"new session, sandboxed, preloaded, ready p50 — {HTTP}", "≤ 5 ms",
               f"{summ['median'] * 1e3:.2f} ms", summ["median"] <= 5e-3)
