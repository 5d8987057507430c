"""kiln's Jupyter kernel beside ipykernel, both started and driven as a
notebook frontend does: jupyter_client's KernelManager with a kernelspec
(kiln's written by `kiln jupyter install --prefix TMP` and found by a
KernelSpecManager searching TMP/share/jupyter/kernels), and its blocking
client.  kiln's kernels share one KILN_HOME and one kiln daemon (its own
runtime directory, XDG_RUNTIME_DIR), as a user's do.

* Kernel start: a new kernel process per sample.  From start_kernel() to
  the first kernel_info_reply (a kernel_info request sent as soon as the
  channels are up); the same from start_kernel()'s return, which leaves
  out jupyter_client's own work (the ports chosen, the connection file
  written, the process started: measured alone with a kernelspec whose
  program does nothing, /bin/sleep); and to the result of `1+1` run after wait_for_ready(),
  as nbclient runs its first cell; wait_for_ready() waits 0.2 s for iopub
  to go quiet, which every kernel pays alike.  The clients retry their
  connections every millisecond rather than ZeroMQ's default 100 ms, for
  every kernel alike: otherwise a kernel that binds its ports a few
  milliseconds after it is started waits a whole retry interval for a
  client that came too early.  kiln three ways: on a warm daemon (its
  zygote, with numpy, matplotlib.pyplot and pandas imported, already
  running: the kernel connects, takes the zygote's ready frame and asks
  for a worker); on a cold daemon (killed before each sample: the kernel
  starts it, and it starts the zygote); and --standalone (the kernel
  starts its own zygote and compile helper).  ipykernel imports IPython
  and no more.
* Round trip of `x = x + 1` in a running kernel: execute_interactive, the
  execute_request, then iopub up to the idle status and the execute_reply,
  as a frontend waits for them; the note gives the client's own CPU time
  per round trip.  The same through a minimal client (bench/zmq_client.py:
  signed frames, the reply and the idle status matched by msg_id, nothing
  of jupyter_client's message layer), which shows what the kernel adds.
* Memory of 20 idle kernels (5 with --quick), each after `import numpy,
  matplotlib.pyplot` and a cell using numpy: USS, PSS and the PSS of
  anonymous pages from /proc/PID/smaps_rollup, summed over every process
  that holds them: for kiln the kernel processes and the daemon's whole
  tree (the daemon, its zygote, each session's sandbox init and worker);
  for ipykernel the kernel processes.  Reported per kernel (the total over
  the count); the notes give the parts in MiB.  kiln's zygote has pandas
  and PIL.Image imported too, which the ipykernel cell does not import.
  Over several processes PSS is the footprint: the pages the zygote shares
  with its workers are in no one's USS but wholly in the PSS.
* A 20-cell notebook (numpy, pandas, a matplotlib figure, prints, a
  DataFrame, an exception caught) run by nbclient end to end, kernel start
  and shutdown included, as `jupyter nbconvert --execute` and papermill
  run one.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict

from bench.context import Job
from bench.drivers import IPY
from bench.procfs import descendants, smaps_rollup
from bench.zmq_client import ZmqClient

TITLE = "Jupyter kernel: kiln beside ipykernel"
ORDER = 90
KILN = "kiln (Jupyter kernel, daemon warm)"
KILN_COLD = "kiln (Jupyter kernel, daemon cold)"
KILN_ALONE = "kiln (Jupyter kernel, --standalone)"
MIB = 1 << 20
START_INFO = "kernel start → first `kernel_info_reply`"
START_KERNEL = "start_kernel() returned → first `kernel_info_reply` (the kernel's part)"
START_CELL = "kernel start → first `1+1` result"
FLOOR = "jupyter_client's start_kernel() alone (a kernel program that does nothing)"
TRIP = "`x = x + 1` in a running kernel (execute_interactive)"
TRIP_LEAN = "`x = x + 1` in a running kernel (a minimal ZeroMQ client)"
MEMORY = ["idle kernel's memory after numpy + pyplot, " + m for m in ("USS", "PSS", "PSS of anonymous pages")]
NOTEBOOK = "a 20-cell notebook through nbclient (start to shutdown)"
IMPORT = "import numpy, matplotlib.pyplot; int(numpy.arange(10).sum())"

CELLS = [
    "import numpy as np, pandas as pd",
    "import matplotlib.pyplot as plt",
    "rng = np.random.default_rng(0)",
    "df = pd.DataFrame({'x': np.arange(200), 'y': rng.normal(size=200).cumsum()})",
    "df.head()",
    "df.describe()",
    "df['z'] = df.y.rolling(10).mean()",
    "print(len(df), df.z.isna().sum())",
    "fig, ax = plt.subplots(figsize=(4, 3)); ax.plot(df.x, df.y); ax.plot(df.x, df.z); plt.show()",
    "total = float(df.y.sum()); total",
    "squares = [i * i for i in range(1000)]; sum(squares)",
    "def f(n):\n    return n if n < 2 else f(n - 1) + f(n - 2)\nf(18)",
    "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    print('caught', e)",
    "m = np.linalg.inv(np.eye(50) * 2.0); float(m.trace())",
    "s = pd.Series(rng.integers(0, 10, 500)).value_counts().sort_index(); s.to_dict()",
    "import json; json.dumps({'a': [1, 2, 3]})",
    "for i in range(3):\n    print('line', i)",
    "text = ' '.join(str(i) for i in range(100)); len(text)",
    "df.groupby(df.x // 50).y.mean()",
    "'done'",
]


def tree(pids):
    """USS, PSS and anonymous PSS in bytes summed over PIDS and every
    process below them, and the same in MiB by command name, as the notes
    show them."""
    total, by = [0, 0, 0], defaultdict(lambda: [0, 0, 0, 0])
    for p in {d for pid in pids for d in descendants(pid)}:
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


def daemons(xdg):
    """The pids of kiln daemons serving under XDG."""
    out = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"daemon" in cmd and f"{xdg}/".encode() in b" ".join(cmd):
            out.append(int(d))
    return out


def stop_daemons(xdg):
    for pid in daemons(xdg):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 10
    while daemons(xdg) and time.monotonic() < end:
        time.sleep(0.01)


def run(ctx):
    tmp = tempfile.mkdtemp(prefix="kiln-bench-jupyter-")
    xdgs = [os.path.join(tmp, "xdg-" + n) for n in ("warm", "cold")]
    try:
        for d in xdgs:
            os.mkdir(d, 0o700)
        measure(ctx, tmp, *xdgs)
    finally:
        ctx.close_all()  # before the kernels' KILN_HOME goes
        for d in xdgs:
            stop_daemons(d)
        shutil.rmtree(tmp, ignore_errors=True)


def floor(tmp):
    """start_kernel() of a kernelspec whose program does nothing, then its
    shutdown: what jupyter_client spends whatever the kernel."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    d = os.path.join(tmp, "floor", "nothing")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "kernel.json"), "w") as f:
        json.dump({"argv": ["/bin/sleep", "600"], "display_name": "nothing", "language": "python"}, f)
    ksm = KernelSpecManager(kernel_dirs=[os.path.dirname(d)])

    def one():
        km = KernelManager(kernel_name="nothing", kernel_spec_manager=ksm)
        t0 = time.perf_counter()
        km.start_kernel()
        dt = time.perf_counter() - t0
        km.shutdown_kernel(now=True)
        return dt
    return one


def measure(ctx, tmp, xdg_warm, xdg_cold):
    for name, extra in (("kiln", []), ("kiln-standalone", ["--standalone"])):
        p = subprocess.run([ctx.kiln_binary, "jupyter", "install", "--prefix", tmp, "--name", name, *extra],
                           capture_output=True, text=True)
        ctx.check(p.returncode == 0, f"kiln jupyter install: {p.stderr}")
    kernel_dirs = [os.path.join(tmp, "share", "jupyter", "kernels")]
    env = dict(ctx.ipykernel_env, KILN_HOME=os.path.join(tmp, "home"), KILN_DAEMON_IDLE="600")
    starts = {
        KILN: lambda: ctx.jupyter_kernel("kiln", kernel_dirs, dict(env, XDG_RUNTIME_DIR=xdg_warm), wait=False),
        KILN_COLD: lambda: ctx.jupyter_kernel("kiln", kernel_dirs, dict(env, XDG_RUNTIME_DIR=xdg_cold),
                                              wait=False),
        KILN_ALONE: lambda: ctx.jupyter_kernel("kiln-standalone", kernel_dirs, env, wait=False),
        IPY: lambda: ctx.ipykernel(wait=False),
    }
    notes = {
        KILN: "the daemon's zygote already running: the kernel connects and asks for a worker",
        KILN_COLD: "the daemon killed before each sample: the kernel starts it, it starts a zygote",
        KILN_ALONE: "its own zygote (numpy, pyplot, pandas) and compile helper",
        IPY: "imports IPython only",
    }

    # -- kernel start, a new kernel per sample --------------------------------
    def cold(label):
        def one():
            if label == KILN_COLD:
                stop_daemons(xdg_cold)
            t0 = time.perf_counter()
            k = starts[label]()
            k.kc.kernel_info(reply=True, timeout=120)
            t1 = time.perf_counter()
            k.wait_ready()
            r = k.execute("1+1")
            t_cell = time.perf_counter() - t0
            ctx.check(r["status"] == "ok" and r["result"] == "2", f"{label}: 1+1 gave {r}")
            ctx.release(k)
            return (t1 - t0, t_cell, t1 - k.started_at)
        return one

    n = ctx.n(8, 2)
    s = ctx.interleave([Job(label, n, cold(label)) for label in starts] + [Job(FLOOR, n, floor(tmp))],
                       what="start: ")
    med = {}
    for metric, i in ((START_INFO, 0), (START_KERNEL, 2), (START_CELL, 1)):
        for label in starts:
            med[metric, label] = ctx.record(metric, label, [v[i] for v in s[label]], note=notes[label])["median"]
    med[FLOOR] = ctx.record(START_INFO, FLOOR, s[FLOOR], note="no kernel can answer sooner than this")["median"]
    warm, ipy = med[START_KERNEL, KILN], med[START_KERNEL, IPY]
    whole = med[START_INFO, IPY]
    ctx.target("Jupyter kernel ready (daemon warm) vs ipykernel, the kernel's part", "≥ 50×",
               f"{ipy / warm:.0f}× ({warm * 1e3:.1f} ms vs {ipy * 1e3:.0f} ms)", ipy / warm >= 50,
               note=f"from start_kernel() itself: {whole / med[START_INFO, KILN]:.0f}×, where a kernel "
                    f"answering at once would get {whole / med[FLOOR]:.0f}×")

    # -- round trip in a running kernel ---------------------------------------
    calls, block = ctx.n(500, 50), ctx.n(50, 25)
    done, jobs, kernels, client_cpu = {}, [], {}, defaultdict(float)
    for label in (KILN, IPY):
        k = kernels[label] = starts[label]().wait_ready()
        ctx.check(k.execute("x = 0")["status"] == "ok", f"{label}: x = 0 failed")
        done[label] = 0

        def trip(label=label, k=k):
            times = []
            cpu0 = time.process_time()
            for _ in range(block):
                dt, r = k.timed("x = x + 1")
                ctx.check(r["status"] == "ok", f"{label}: x = x + 1 gave {r}")
                times.append(dt)
            client_cpu[label] += time.process_time() - cpu0
            done[label] += block
            return times
        jobs.append(Job(label, calls // block, trip))
    s = ctx.interleave(jobs, what="round trip: ")
    # The same kernels through the minimal client; jupyter_client's
    # channels are closed meanwhile, so that nothing reads iopub twice.
    lean_jobs, leans = [], {}
    for label, k in kernels.items():
        k.kc.stop_channels()
        c = leans[label] = ZmqClient(k.km.get_connection_info(session=False))

        def lean(label=label, c=c):
            times = []
            for _ in range(block):
                dt, status = c.timed("x = x + 1")
                ctx.check(status == "ok", f"{label}: x = x + 1 gave {status} (minimal client)")
                times.append(dt)
            done[label] += block
            return times
        lean_jobs.append(Job(label, calls // block, lean))
    s_lean = ctx.interleave(lean_jobs, what="round trip, minimal client: ")
    summ, summ_lean = {}, {}
    for label, k in kernels.items():
        leans[label].close()
        k.connect()
        k.wait_ready()
        r = k.execute("x")
        ctx.check(r["result"] == str(done[label]), f"{label}: x = {r['result']}, expected {done[label]}")
        cpu = client_cpu[label] / len(s[label])
        summ[label] = ctx.record(TRIP, label, s[label],
                                 note=f"request → reply and iopub idle; the client process's CPU time "
                                      f"(all its threads): {cpu * 1e6:.0f} µs per round trip")
        summ_lean[label] = ctx.record(TRIP_LEAN, label, s_lean[label], note="request → reply and iopub idle")
        ctx.release(k)
    p50, lean50 = summ[KILN]["median"], summ_lean[KILN]["median"]
    ctx.target("Jupyter execute round trip p50", "≤ 1 ms", f"{p50 * 1e6:.0f} µs", p50 <= 1e-3,
               note=f"through jupyter_client, whose process spent {client_cpu[KILN] / len(s[KILN]) * 1e6:.0f} µs "
                    f"of CPU per round trip; through a minimal client: {lean50 * 1e6:.0f} µs")

    # -- memory: N idle kernels ------------------------------------------------
    count = ctx.n(20, 5)
    settle = ctx.n(2.0, 1.0)
    for label in (KILN, IPY):
        ks = []
        for _ in range(count):
            k = starts[label]().wait_ready()
            r = k.execute(IMPORT)
            ctx.check(r["status"] == "ok" and r["result"] == "45", f"{label}: {IMPORT} gave {r}")
            ks.append(k)
        time.sleep(settle)
        pids = [k.pid for k in ks] + (daemons(xdg_warm) if label == KILN else [])
        total, parts = tree(pids)
        for i, metric in enumerate(MEMORY):
            ctx.record(metric, label, [total[i] / count], unit="B",
                       note=f"{count} kernels, per kernel; all of them: {parts[i]}")
        for k in ks:
            ctx.release(k)

    # -- a notebook through nbclient ------------------------------------------
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    def notebook(label):
        name, dirs, kenv = {
            KILN: ("kiln", kernel_dirs, dict(env, XDG_RUNTIME_DIR=xdg_warm)),
            IPY: ("python3", None, ctx.ipykernel_env),
        }[label]

        def one():
            nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
            specs = {"kernel_spec_manager": KernelSpecManager(kernel_dirs=dirs)} if dirs else {}
            km = KernelManager(kernel_name=name, **specs)
            t0 = time.perf_counter()
            try:
                # Given its kernel manager, nbclient leaves the kernel
                # running: it is shut down here, as nbclient would its own.
                NotebookClient(nb, km=km, timeout=120, env=kenv).execute(env=kenv)
                km.shutdown_kernel()
                dt = time.perf_counter() - t0
            finally:
                if km.has_kernel:
                    km.shutdown_kernel(now=True)
            outs = nb.cells[-1].outputs
            ctx.check(outs and outs[0]["data"]["text/plain"] == "'done'", f"{label}: the notebook ended {outs}")
            figures = [o for c in nb.cells for o in c.outputs if "image/png" in o.get("data", {})]
            ctx.check(len(figures) == 1, f"{label}: {len(figures)} figures in the notebook")
            return dt
        return one

    s = ctx.interleave([Job(label, ctx.n(5, 1), notebook(label)) for label in (KILN, IPY)],
                       what="notebook: ")
    for label in (KILN, IPY):
        ctx.record(NOTEBOOK, label, s[label], note=f"{len(CELLS)} cells, kernel start to shutdown")
