#!/usr/bin/env python3
"""Quick medians for kiln alone, measured through the suite's raw
JSON-over-stdio driver (no MCP SDK in the path, no peers, nothing to
install: any Python 3 runs it):

* new session -> first result of ``1+1`` (run_python without session_id);
* warm round trip of ``x = x + 1`` in an existing session;
* a numpy-bound cell in kiln against the same code in a plain python3;
* idle worker memory: USS and PSS from /proc/PID/smaps_rollup.

Usage: benchmarks/kernel_quick.py [--kiln build/kiln] [--sessions 50] [--calls 1000] [-- SERVE-OPTIONS]
The full suite, with peers side by side, is benchmarks/run (see README.md).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench.drivers import KilnRaw  # noqa: E402
from bench.procfs import tree_memory  # noqa: E402
from bench.stats import percentile  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(os.path.dirname(__file__), "..", "build", "kiln"))
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--compute", type=int, default=15, help="runs of the numpy cell")
    ap.add_argument("kiln_args", nargs="*", help="extra `kiln serve` options (after --)")
    a = ap.parse_args()
    k = KilnRaw(a.kiln, a.kiln_args)
    try:
        # Warm-up: the zygote is ready once a first session answers.
        assert k.run("1+1")[1]["result"] == "2"

        # New sessions arriving one at a time, as an agent opens them: a
        # spare worker is ready for each.  Then a burst, back to back, which
        # outruns the spares and pays for the fork.
        new, burst, ids = [], [], []
        for series, pause in ((new, 0.05), (burst, 0)):
            for _ in range(a.sessions // 2):
                time.sleep(pause)
                dt, r = k.run("1+1")
                series.append(dt)
                assert r["result"] == "2" and r["new_session"], r
                ids.append(r["session_id"])

        sid = ids[0]
        k.run("x = 0", sid)
        warm, _, bad = k.run_many("x = x + 1", sid, a.calls)
        assert not bad, bad[0]
        assert k.run("x", sid)[1]["result"] == str(a.calls)

        # Compute overhead: the same numpy cell in kiln and in a plain
        # python3 from kiln's venv, each timed inside the cell.
        cell = ("import numpy as np, time\n"
                "a = np.random.rand(500, 500)\n"
                "t = time.perf_counter()\n"
                "for _ in range(20): a @ a\n"
                "time.perf_counter() - t")
        inside = [float(k.run(cell, sid)[1]["result"]) for _ in range(a.compute)]
        venv_py = os.path.join(os.path.dirname(a.kiln), "..", ".venv", "bin", "python3")
        plain_env = {v: s for v, s in os.environ.items() if not v.startswith("PYTHON")}
        plain_env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        outside = []
        for _ in range(a.compute):
            out = subprocess.run([venv_py, "-c", cell.rsplit("\n", 1)[0] + "\nprint(time.perf_counter() - t)"],
                                 capture_output=True, text=True, env=plain_env, check=True).stdout
            outside.append(float(out))

        time.sleep(1)
        # A session is its sandbox's init (the pid listed) and the worker.
        mem = [tree_memory(s["pid"]) for s in k.list_sessions() if s["pid"]]
    finally:
        k.close()

    def ms(v):
        return f"{v * 1e3:.3f} ms"

    print(f"new session -> first result (1+1), one at a time, n={len(new)}: median {ms(statistics.median(new))}")
    print(f"new session -> first result (1+1), back to back, n={len(burst)}: median {ms(statistics.median(burst))}")
    print(f"warm round trip (x = x + 1), n={len(warm)}: median {ms(statistics.median(warm))}, "
          f"p99 {ms(percentile(sorted(warm), 0.99))}")
    ratio = statistics.median(inside) / statistics.median(outside)
    print(f"numpy 500x500 matmul x20, n={len(inside)}: kiln {ms(statistics.median(inside))}, "
          f"plain python {ms(statistics.median(outside))}, ratio {ratio:.3f}")
    uss = statistics.median(m[0] for m in mem)
    pss = statistics.median(m[1] for m in mem)
    print(f"idle session (init + worker), n={len(mem)}: median USS {uss / (1 << 20):.2f} MiB, "
          f"PSS {pss / (1 << 20):.2f} MiB")


if __name__ == "__main__":
    sys.exit(main())
