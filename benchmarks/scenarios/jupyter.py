"""kiln's Jupyter kernel beside ipykernel, both started and driven as a
notebook frontend does: jupyter_client's KernelManager with a kernelspec
(kiln's written by `kiln jupyter install --prefix TMP` and found by a
KernelSpecManager searching TMP/share/jupyter/kernels), and its blocking
client.  kiln's kernels share one KILN_HOME, as a user's do.

* Kernel start, cold: a new kernel process per sample.  From
  start_kernel() to the first kernel_info_reply (a kernel_info request sent
  as soon as the channels are up), and to the result of `1+1` run after
  wait_for_ready(), as nbclient runs its first cell; wait_for_ready() waits
  0.2 s for iopub to go quiet, which both kernels pay alike.  kiln runs
  --standalone, the only mode it has yet: before it answers, each kernel
  starts its own zygote (which imports numpy, matplotlib.pyplot, pandas),
  compile helper and workers.  A kiln daemon shared by the kernels would
  take that off the start.  ipykernel imports IPython and no more.
* Round trip of `x = x + 1` in a running kernel: execute_interactive, the
  execute_request, then iopub up to the idle status and the execute_reply,
  as a frontend waits for them.
* Memory: after `import numpy, matplotlib.pyplot` and a cell using numpy,
  USS, PSS and the PSS of anonymous pages from /proc/PID/smaps_rollup,
  summed over the kernel's process tree: for kiln the `kiln jupyter kernel`
  process, its zygote, compile helper, the session's sandbox init and
  worker, and the spare ones (the notes name the parts, in MiB); for
  ipykernel the kernel process.  kiln's zygote has pandas and PIL.Image
  imported too, which the ipykernel cell does not import.  Over a tree PSS
  is the footprint: the pages the zygote shares with its workers are in no
  one's USS but wholly in the tree's PSS.  USS and PSS count file pages
  (libpython, numpy's libraries) as private or not depending on whether any
  other process maps them, another kiln or Python on the machine included;
  the anonymous PSS does not move with them.  Then a second kernel started
  beside the first: the PSS the two trees hold together less what the first
  held alone, and the same of the anonymous pages (a USS difference would
  mislead: the first's private file pages become shared and leave its
  USS).  A standalone kiln kernel has a zygote of its own, so the second
  pays for the whole tree again, less the file pages; with a shared daemon
  it would add a session, an init and a worker.
"""
import os
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict

from bench.context import Job
from bench.drivers import IPY
from bench.procfs import descendants, smaps_rollup

TITLE = "Jupyter kernel: kiln beside ipykernel"
ORDER = 90
KILN = "kiln (Jupyter kernel)"
MIB = 1 << 20
START_INFO = "kernel start → first `kernel_info_reply`"
START_CELL = "kernel start → first `1+1` result"
TRIP = "`x = x + 1` in a running kernel (execute_interactive)"
MEMORY = ["kernel memory after numpy + pyplot, " + m for m in ("USS", "PSS", "PSS of anonymous pages")]
SECOND = ["second kernel beside the first, " + m for m in ("PSS added", "anonymous PSS added")]
IMPORT = "import numpy, matplotlib.pyplot; int(numpy.arange(10).sum())"


def tree(pid):
    """USS, PSS and anonymous PSS in bytes summed over PID's process tree,
    and the same in MiB by command name, as the notes show them."""
    total, by = [0, 0, 0], defaultdict(lambda: [0, 0, 0, 0])
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/comm") as f:
                comm = f.read().strip()
            m = smaps_rollup(p)
        except FileNotFoundError:
            continue
        by[comm][0] += 1
        for i, v in enumerate((m["Private_Clean"] + m["Private_Dirty"], m["Pss"], m["Pss_Anon"])):
            total[i] += v
            by[comm][i + 1] += v
    notes = ["MiB: " + ", ".join(f"{comm} ×{v[0]} {v[i] / MIB:.1f}" for comm, v in sorted(by.items()))
             for i in (1, 2, 3)]
    return total, notes


def run(ctx):
    tmp = tempfile.mkdtemp(prefix="kiln-bench-jupyter-")
    try:
        measure(ctx, tmp)
    finally:
        ctx.close_all()  # before the kernels' KILN_HOME goes
        shutil.rmtree(tmp, ignore_errors=True)


def measure(ctx, tmp):
    p = subprocess.run([ctx.kiln_binary, "jupyter", "install", "--prefix", tmp], capture_output=True, text=True)
    ctx.check(p.returncode == 0, f"kiln jupyter install: {p.stderr}")
    kernel_dirs = [os.path.join(tmp, "share", "jupyter", "kernels")]
    kiln_env = dict(ctx.ipykernel_env, KILN_HOME=os.path.join(tmp, "home"))
    starts = {
        KILN: lambda: ctx.jupyter_kernel("kiln", kernel_dirs, kiln_env, wait=False),
        IPY: lambda: ctx.ipykernel(wait=False),
    }
    settle = ctx.n(2.0, 1.0)

    # -- kernel start, a new kernel per sample --------------------------------
    def cold(label):
        def one():
            t0 = time.perf_counter()
            k = starts[label]()
            k.kc.kernel_info(reply=True, timeout=120)
            t_info = time.perf_counter() - t0
            k.wait_ready()
            r = k.execute("1+1")
            t_cell = time.perf_counter() - t0
            ctx.check(r["status"] == "ok" and r["result"] == "2", f"{label}: 1+1 gave {r}")
            ctx.release(k)
            return (t_info, t_cell)
        return one

    n = ctx.n(8, 2)
    s = ctx.interleave([Job(KILN, n, cold(KILN)), Job(IPY, n, cold(IPY))], what="start: ")
    kiln_note = "standalone: a zygote (numpy, pyplot, pandas), compile helper and workers per kernel"
    for metric, i in ((START_INFO, 0), (START_CELL, 1)):
        ctx.record(metric, KILN, [v[i] for v in s[KILN]], note=kiln_note)
        ctx.record(metric, IPY, [v[i] for v in s[IPY]], note="imports IPython only")

    # -- round trip in a running kernel ---------------------------------------
    calls, block = ctx.n(500, 50), ctx.n(50, 25)
    done, jobs, kernels = {}, [], {}
    for label in (KILN, IPY):
        k = kernels[label] = starts[label]().wait_ready()
        ctx.check(k.execute("x = 0")["status"] == "ok", f"{label}: x = 0 failed")
        done[label] = 0

        def trip(label=label, k=k):
            times = []
            for _ in range(block):
                dt, r = k.timed("x = x + 1")
                ctx.check(r["status"] == "ok", f"{label}: x = x + 1 gave {r}")
                times.append(dt)
            done[label] += block
            return times
        jobs.append(Job(label, calls // block, trip))
    s = ctx.interleave(jobs, what="round trip: ")
    for label, k in kernels.items():
        r = k.execute("x")
        ctx.check(r["result"] == str(done[label]), f"{label}: x = {r['result']}, expected {done[label]}")
        ctx.record(TRIP, label, s[label], note="request → reply and iopub idle")
        ctx.release(k)

    # -- memory: one kernel, then a second beside it ----------------------------
    notes = defaultdict(list)  # label: [(USS, the notes of that round)]

    def loaded(label):
        k = starts[label]().wait_ready()
        r = k.execute(IMPORT)
        ctx.check(r["status"] == "ok" and r["result"] == "45", f"{label}: {IMPORT} gave {r}")
        return k

    def memory(label):
        def one():
            first = loaded(label)
            time.sleep(settle)
            alone, parts = tree(first.pid)
            notes[label].append((alone[0], parts))
            second = loaded(label)
            time.sleep(settle)
            both = [a + b for a, b in zip(tree(first.pid)[0], tree(second.pid)[0])]
            ctx.release(second)
            ctx.release(first)
            return (*alone, both[1] - alone[1], both[2] - alone[2])
        return one

    rounds = ctx.n(3, 1)
    s = ctx.interleave([Job(KILN, rounds, memory(KILN), warmup=0), Job(IPY, rounds, memory(IPY), warmup=0)],
                       what="memory: ")
    second = {KILN: "a zygote of its own (standalone): the whole tree again", IPY: "a kernel process"}
    for label in (KILN, IPY):
        parts = sorted(notes[label])[len(notes[label]) // 2][1]  # the median round's
        for i, metric in enumerate(MEMORY + SECOND):
            note = parts[i] if i < 3 else second[label] if i == 3 else ""
            ctx.record(metric, label, [v[i] for v in s[label]], unit="B", note=note)
