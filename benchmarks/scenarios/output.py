"""A cell that prints 100,000 lines (588,890 bytes): time to the full reply.

kiln keeps at most 256 KiB of a cell's stdout by default (its first and
last halves) and says how many bytes it dropped in between; its reply
shows 20K of that, and the time includes reading the whole kept output
from the resource the reply names, so that every client ends with all it
can have. ipykernel streams everything over iopub; python -c writes it all
to a pipe."""
from bench.context import Job
from bench.drivers import BWRAP, IPY, PY

TITLE = "Large output"
ORDER = 60
LINES = 100_000
CODE = f"for i in range({LINES}): print(i)"
EXPECTED = "".join(f"{i}\n" for i in range(LINES))
METRIC = f"print {LINES:,} lines ({len(EXPECTED):,} B)"


def run(ctx):
    runs = ctx.n(15, 2)
    jobs, kept = [], {}

    for k in ctx.kilns():
        _, r = k.run("1+1")
        sid = r["session_id"]

        def one(k=k, sid=sid):
            dt, r = k.run(CODE, sid)
            dropped = r["stdout_dropped"]
            marker = f"\n[... {dropped} bytes dropped ...]\n"
            ctx.check(r["status"] == "ok" and EXPECTED.startswith(r["stdout_head"])
                      and EXPECTED.endswith(r["stdout_tail"]) and r["stdout_tail"]
                      and r["stdout_len"] - len(marker) + dropped == len(EXPECTED),
                      f"{k.label}: stdout of {r['stdout_len']} B, {dropped} dropped, tail {r['stdout_tail'][-40:]!r}")
            kept[k.label] = (r["stdout_len"] - len(marker), dropped)
            return dt
        jobs.append(Job(k.label, runs, one))

    ipy = ctx.ipykernel()

    def ipykernel():
        dt, r = ipy.timed(CODE)
        ctx.check(r["status"] == "ok" and r["stdout"] == EXPECTED,
                  f"ipykernel: {len(r['stdout'])} B of stdout, status {r['status']}")
        return dt
    jobs.append(Job(IPY, runs, ipykernel))

    def per_call(p):
        def one():
            dt, out, err, rc = p.run(CODE)
            ctx.check(rc == 0 and out == EXPECTED, f"{p.label}: exit {rc}, {len(out)} B of stdout")
            return dt
        return one
    jobs += [Job(PY, runs, per_call(ctx.python_per_call())), Job(BWRAP, runs, per_call(ctx.bwrap_per_call()))]

    s = ctx.interleave(jobs)
    for j in jobs:
        if j.label in kept:
            k, d = kept[j.label]
            note = f"reply keeps {k:,} B (head + tail) and says {d:,} B were dropped"
        else:
            note = f"all {len(EXPECTED):,} B" + (" (fresh process)" if j.label in (PY, BWRAP) else "")
        ctx.record(METRIC, j.label, s[j.label], note=note)
