"""What the jail costs a compute-bound cell: numpy 500×500 matmul ×20, timed
inside the cell with time.perf_counter, so that only the computation
counts.  OpenBLAS runs one thread everywhere (kiln sets it so; the peers
get OPENBLAS_NUM_THREADS=1), and kiln's cgroup gives a session one core."""
import ast

from bench.context import Job
from bench.drivers import BWRAP, IPY, PY, RAW

TITLE = "Compute overhead"
ORDER = 50
METRIC = "numpy 500×500 matmul ×20, timed inside the cell"

BODY = ("import numpy as np, time\n"
        "a = np.random.rand(500, 500)\n"
        "t = time.perf_counter()\n"
        "for _ in range(20):\n"
        "    c = a @ a\n"
        "dt = time.perf_counter() - t\n")
CELL = BODY + "(dt, c.shape)"
SCRIPT = BODY + "print(repr((dt, c.shape)))"


def parse(ctx, label, text):
    try:
        dt, shape = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError):
        ctx.check(False, f"{label}: unexpected result {text!r}")
    ctx.check(shape == (500, 500) and 0 < dt < 600, f"{label}: {text!r}")
    return dt


def run(ctx):
    runs = ctx.n(20, 3)
    raw = ctx.kiln_raw()
    _, r = raw.run("1+1")
    sid = r["session_id"]
    ipy = ctx.ipykernel()
    py, bw = ctx.python_per_call(), ctx.bwrap_per_call()

    def kiln():
        _, r = raw.run(CELL, sid)
        ctx.check(r["status"] == "ok", f"kiln: {r}")
        return parse(ctx, RAW, r["result"])

    def ipykernel():
        r = ipy.execute(CELL)
        ctx.check(r["status"] == "ok", f"ipykernel: {r}")
        return parse(ctx, IPY, r["result"])

    def per_call(p):
        def one():
            _, out, err, rc = p.run(SCRIPT)
            ctx.check(rc == 0, f"{p.label}: exit {rc}: {err[-500:]}")
            return parse(ctx, p.label, out)
        return one

    s = ctx.interleave([Job(RAW, runs, kiln), Job(IPY, runs, ipykernel), Job(PY, runs, per_call(py)),
                        Job(BWRAP, runs, per_call(bw))])
    ctx.record(METRIC, RAW, s[RAW], note="jailed: namespaces, cgroup (1 core), seccomp")
    ctx.record(METRIC, IPY, s[IPY])
    ctx.record(METRIC, PY, s[PY], note="no jail")
    ctx.record(METRIC, BWRAP, s[BWRAP])
