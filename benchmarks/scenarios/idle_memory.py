"""Memory held by idle sessions: N kiln sessions (each has run `1+1`)
against N ipykernels, bare and after importing numpy and matplotlib.pyplot
(which a kiln session has from its zygote).

Per session: USS (its private pages) and PSS (private plus its share of
what it shares, here the pages of the zygote a kiln worker was forked from)
from /proc/PID/smaps_rollup, summed over the session's processes: for kiln
the sandbox's init (the pid list_sessions gives) and the worker below it;
for ipykernel the kernel process.  And the drop of MemAvailable from before
the sessions were started to after, divided by N.
"""
import time

from bench.procfs import mem_available, tree_memory

TITLE = "Idle memory per session"
ORDER = 30
USS, PSS, DROP = "USS per session", "PSS per session", "MemAvailable drop ÷ N"


def run(ctx):
    settle = ctx.n(2.0, 1.0)
    uss500 = None
    for n in ctx.n((100, 500), (20, 60)):
        k = ctx.kiln_raw("--max-sessions", "600")
        _, r = k.run("1+1")
        k.close_sessions([r["session_id"]])
        time.sleep(settle)
        before = mem_available()
        ids = set()
        for i in range(n):
            ctx.progress.update(f"kiln, N={n}", i, n)
            _, r = k.run("1+1")
            ctx.check(r["status"] == "ok" and r["result"] == "2", f"kiln: {r}")
            ids.add(r["session_id"])
        time.sleep(settle)
        after = mem_available()
        sessions = [s for s in k.list_sessions() if s["session_id"] in ids]
        ctx.check(len(sessions) == n and all(s["pid"] for s in sessions),
                  f"kiln lists {len(sessions)} of the {n} sessions with a pid")
        mem = [tree_memory(s["pid"]) for s in sessions]
        ctx.check(all(u > 0 for u, _ in mem), "a kiln session's processes are gone")
        label = f"kiln, N={n}"
        summ = ctx.record(USS, label, [u for u, _ in mem], unit="B", note="sandbox init + worker")
        ctx.record(PSS, label, [p for _, p in mem], unit="B", note="zygote's pages shared N ways")
        ctx.record(DROP, label, [(before - after) / n], unit="B", note="one figure for the whole run")
        uss500 = summ
        ctx.release(k)

    n = ctx.n(10, 3)
    time.sleep(settle)
    before = mem_available()
    ctx.progress.update(f"ipykernel, N={n}: starting")
    kernels = [ctx.ipykernel(wait=False) for _ in range(n)]
    for k in kernels:
        k.wait_ready()
        r = k.execute("1+1")
        ctx.check(r["status"] == "ok" and r["result"] == "2", f"ipykernel: {r}")
    for imported in (False, True):
        if imported:
            for k in kernels:
                r = k.execute("import numpy, matplotlib.pyplot; 1+1")
                ctx.check(r["status"] == "ok" and r["result"] == "2", f"ipykernel: {r}")
        time.sleep(settle)
        after = mem_available()
        mem = [tree_memory(k.pid) for k in kernels]
        label = f"ipykernel, N={n}" + (", numpy + pyplot imported" if imported else "")
        note = "the kernel process" if not imported else "what a kiln session has preloaded"
        ctx.record(USS, label, [u for u, _ in mem], unit="B", note=note)
        ctx.record(PSS, label, [p for _, p in mem], unit="B")
        ctx.record(DROP, label, [(before - after) / n], unit="B", note="one figure for the whole run")

    ctx.target("idle session memory, USS — kiln (largest N)", "≤ 3 MiB", f"{uss500['median'] / (1 << 20):.2f} MiB",
               uss500["median"] <= 3 << 20)
