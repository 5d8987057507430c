"""8 sessions running trivial cells at once for a fixed time: one call in
flight per session, the next sent as soon as its previous reply arrives.
Aggregate cells per second, counted in fixed windows (the tail column is
the slowest 1% of windows), and the round trip of each call under that
load.  The client shares the 2 cores with what it measures.

ipykernel: 8 kernels, each driven from its own thread of the client,
execute_request → execute_reply."""
import threading
import time

from bench.context import Job
from bench.drivers import IPY

TITLE = "Throughput, 8 sessions"
ORDER = 40
SESSIONS = 8
CODE = "x = x + 1"
RATE = f"trivial cells/s, {SESSIONS} sessions, {SESSIONS} in flight"
LATENCY = "round trip under that load"


def windows(done, seconds, width):
    """Completions per second in each full window of WIDTH seconds."""
    n = int(seconds / width + 1e-9)
    counts = [0] * n
    for t in done:
        i = int(t / width)
        if i < n:
            counts[i] += 1
    return [c / width for c in counts]


def run(ctx):
    seconds, rounds, width = ctx.n(4.0, 1.5), ctx.n(5, 1), ctx.n(1.0, 0.5)
    counts, latency, jobs, checks = {}, {}, [], []

    for k in ctx.kilns():
        sids = []
        for _ in range(SESSIONS):
            _, r = k.run("x = 0")
            sids.append(r["session_id"])
            counts[r["session_id"]] = 0
        latency[k.label] = []

        def one(k=k, sids=sids, length=seconds, keep=True):
            res = k.pipeline(sids, CODE, length)
            ctx.check(not res["errors"], f"{k.label}: {res['errors'][:1]}")
            for sid, c in res["ok"].items():
                counts[sid] += c
            if keep:
                latency[k.label].extend(res["latency"])
                return windows(res["done"], length, width)
            return []
        jobs.append(Job(k.label, rounds, one, warmup=0))
        one(length=0.5, keep=False)
        checks.append(lambda k=k, sids=sids: [(sid, k.run("x", sid)[1]["result"]) for sid in sids])

    ctx.progress.update(f"starting {SESSIONS} ipykernels")
    kernels = [ctx.ipykernel(wait=False) for _ in range(SESSIONS)]
    for i, kern in enumerate(kernels):
        kern.wait_ready()
        kern.execute("x = 0")
        counts[f"ipykernel-{i}"] = 0
    latency[IPY] = []

    def ipy_round(length=seconds, keep=True):
        start = time.perf_counter()
        end = start + length
        done, lat, errors = [], [], []
        lock = threading.Lock()

        def loop(i, kern):
            n = 0
            while time.perf_counter() < end:
                dt, status = kern.request(CODE)
                t1 = time.perf_counter()
                with lock:
                    done.append(t1 - start)
                    lat.append(dt)
                    if status == "ok":
                        counts[f"ipykernel-{i}"] += 1
                    else:
                        errors.append(status)
                n += 1
                if n % 50 == 0:
                    kern.drain()
            kern.drain()
        threads = [threading.Thread(target=loop, args=(i, kern)) for i, kern in enumerate(kernels)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ctx.check(not errors, f"ipykernel: {errors[:1]}")
        if keep:
            latency[IPY].extend(lat)
            return windows(done, length, width)
        return []
    ipy_round(0.5, keep=False)
    jobs.append(Job(IPY, rounds, ipy_round, warmup=0))
    checks.append(lambda: [(f"ipykernel-{i}", kern.execute("x")["result"]) for i, kern in enumerate(kernels)])

    s = ctx.interleave(jobs)

    # Every cell ran, once: each session's counter is its number of replies.
    for check in checks:
        for key, value in check():
            ctx.check(value == str(counts[key]), f"session {key}: x = {value}, expected {counts[key]}")

    note = f"{rounds} × {seconds:g} s, {width:g} s windows"
    for label in [j.label for j in jobs]:
        summ = ctx.record(RATE, label, s[label], unit="/s", better="higher", note=note)
        ctx.record(LATENCY, label, latency[label])
        if label.startswith("kiln"):
            ctx.target(f"aggregate trivial executions/s, 8 sessions on 2 cores — {label}", "≥ 5,000/s",
                       f"{summ['median']:,.0f}/s", summ["median"] >= 5000)
