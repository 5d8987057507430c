"""A new session's first result, for a trivial cell and for one that needs
numpy and matplotlib.pyplot (kiln's zygote has them imported; every peer
pays the import).

kiln runs with spare workers started ahead of new sessions, so sessions
arriving one at a time (50 ms apart, as an agent opens them) each find one
ready; a burst of 10 back to back outruns the 2 spares and pays for forks.
ipykernel: KernelManager.start_kernel -> ready -> the cell's result.
python -c / bwrap: a fresh process that prints the value.
"""
import time

from bench.context import Job
from bench.drivers import BWRAP, IPY, PY, RAW, SDK

TITLE = "New session → first result"
ORDER = 10

CELLS = [
    ("`1+1`", "1+1", "print(1+1)"),
    ("`import numpy, matplotlib.pyplot; 1+1`", "import numpy, matplotlib.pyplot; 1+1",
     "import numpy, matplotlib.pyplot; print(1+1)"),
]
PAUSE = 0.05
BURST = 10


def run(ctx):
    raw, sdk = ctx.kilns("--max-sessions", "600")
    py, bw = ctx.python_per_call(), ctx.bwrap_per_call()
    spaced, bursts = ctx.n(150, 15), ctx.n(8, 2)
    kernels, procs = ctx.n(10, 2), ctx.n(30, 4)

    def kiln_ok(k, r):
        ctx.check(r["status"] == "ok" and r["result"] == "2" and r["new_session"], f"{k.label}: {r}")

    def kiln_spaced(k, code):
        def one():
            time.sleep(PAUSE)
            dt, r = k.run(code)
            kiln_ok(k, r)
            k.close_sessions([r["session_id"]])
            return dt
        return one

    def kiln_burst(k, code):
        def one():
            time.sleep(0.3)  # the spares are back
            times, ids = [], []
            for _ in range(BURST):
                dt, r = k.run(code)
                kiln_ok(k, r)
                times.append(dt)
                ids.append(r["session_id"])
            k.close_sessions(ids)
            return times
        return one

    ready = []

    def ipykernel(code):
        def one():
            t0 = time.perf_counter()
            k = ctx.ipykernel(wait=False).wait_ready()
            t1 = time.perf_counter()
            r = k.execute(code)
            dt = time.perf_counter() - t0
            ctx.check(r["status"] == "ok" and r["result"] == "2", f"ipykernel: {r}")
            ctx.release(k)
            ready.append(t1 - t0)
            return dt
        return one

    def per_call(p, code):
        def one():
            dt, out, err, rc = p.run(code)
            ctx.check(rc == 0 and out == "2\n", f"{p.label}: exit {rc}, stdout {out!r}, stderr {err[-500:]!r}")
            return dt
        return one

    for metric, code, script in CELLS:
        ready.clear()
        burst_raw, burst_sdk = f"{RAW}, burst", f"{SDK}, burst"
        s = ctx.interleave([
            Job(RAW, spaced, kiln_spaced(raw, code), warmup=3),
            Job(SDK, spaced, kiln_spaced(sdk, code), warmup=3),
            Job(burst_raw, bursts, kiln_burst(raw, code)),
            Job(burst_sdk, bursts, kiln_burst(sdk, code)),
            Job(IPY, kernels, ipykernel(code)),
            Job(PY, procs, per_call(py, script)),
            Job(BWRAP, procs, per_call(bw, script)),
        ], what=f"{metric}: ")
        spare = f"a spare worker ready ({PAUSE * 1e3:.0f} ms between sessions)"
        burst = f"{BURST} back to back, 2 spares: most pay a fork"
        raw_sum = ctx.record(metric, RAW, s[RAW], note=spare)
        sdk_sum = ctx.record(metric, SDK, s[SDK], note=spare)
        ctx.record(metric, burst_raw, s[burst_raw], note=burst)
        ctx.record(metric, burst_sdk, s[burst_sdk], note=burst)
        ipy_sum = ctx.record(metric, IPY, s[IPY], note=f"start → ready {sorted(ready)[len(ready) // 2] * 1e3:.0f} ms "
                             "(median), then the cell")
        ctx.record(metric, PY, s[PY], note="fresh process, kiln's venv")
        ctx.record(metric, BWRAP, s[BWRAP], note="fresh process, --unshare-all")
        if "numpy" in code:
            for label, summ in ((RAW, raw_sum), (SDK, sdk_sum)):
                ctx.target(f"new session, sandboxed, preloaded, ready p50 — {label}", "≤ 5 ms",
                           f"{summ['median'] * 1e3:.2f} ms", summ["median"] <= 5e-3,
                           note=f"ipykernel: {ipy_sum['median']:.2f} s here (target's reference ~1.2 s)")
