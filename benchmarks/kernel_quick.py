#!/usr/bin/env python3
"""Quick medians for the kernel, measured through a raw JSON-over-stdio
driver (no MCP SDK in the path):

* new session -> first result of ``1+1`` (run_python without session_id);
* warm round trip of ``x = x + 1`` in an existing session;
* a numpy-bound cell in kiln against the same code in a plain python3;
* idle worker memory: USS and PSS from /proc/PID/smaps_rollup.

Usage: benchmarks/kernel_quick.py [--kiln build/kiln] [--sessions 50] [--calls 1000] [-- SERVE-OPTIONS]
The full suite, with peers side by side, lives beside this file.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


class Kiln:
    def __init__(self, binary, home, args=()):
        env = dict(os.environ, KILN_HOME=home)
        self.p = subprocess.Popen([binary, "serve", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=env, bufsize=0)
        self.next_id = 0
        self.call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "kernel_quick", "version": "1"}})

    def call(self, method, params):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        line = self.p.stdout.readline()
        reply = json.loads(line)
        assert reply.get("id") == self.next_id, reply
        return reply["result"]

    def run(self, code, session_id=None):
        args = {"code": code}
        if session_id:
            args["session_id"] = session_id
        return self.call("tools/call", {"name": "run_python", "arguments": args})["structuredContent"]

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def rollup(pid):
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return uss, fields.get("Pss", 0)


def session_memory(pid):
    pids = [pid]
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        pids += [int(p) for p in f.read().split()]
    parts = [rollup(p) for p in pids]
    return sum(u for u, _ in parts), sum(p for _, p in parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(os.path.dirname(__file__), "..", "build", "kiln"))
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--compute", type=int, default=15, help="runs of the numpy cell")
    ap.add_argument("kiln_args", nargs="*", help="extra `kiln serve` options (after --)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        k = Kiln(a.kiln, home, a.kiln_args)
        # Warm-up: the zygote is ready once a first session answers.
        assert k.run("1+1")["result"] == "2"

        # New sessions arriving one at a time, as an agent opens them: a
        # spare worker is ready for each.  Then a burst, back to back, which
        # outruns the spares and pays for the fork.
        new, burst, ids = [], [], []
        for series, pause in ((new, 0.05), (burst, 0)):
            for _ in range(a.sessions // 2):
                time.sleep(pause)
                t = time.perf_counter()
                r = k.run("1+1")
                series.append(time.perf_counter() - t)
                assert r["result"] == "2" and r["new_session"], r
                ids.append(r["session_id"])

        sid = ids[0]
        k.run("x = 0", sid)
        warm = []
        for _ in range(a.calls):
            t = time.perf_counter()
            r = k.run("x = x + 1", sid)
            warm.append(time.perf_counter() - t)
            assert r["status"] == "ok", r
        assert k.run("x", sid)["result"] == str(a.calls)

        # Compute overhead: the same numpy cell in kiln and in a plain
        # python3 from kiln's venv, each timed inside the cell.
        cell = ("import numpy as np, time\n"
                "a = np.random.rand(500, 500)\n"
                "t = time.perf_counter()\n"
                "for _ in range(20): a @ a\n"
                "time.perf_counter() - t")
        inside = [float(k.run(cell, sid)["result"]) for _ in range(a.compute)]
        venv_py = os.path.join(os.path.dirname(a.kiln), "..", ".venv", "bin", "python3")
        plain_env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        outside = []
        for _ in range(a.compute):
            out = subprocess.run([venv_py, "-c", cell.rsplit("\n", 1)[0] + "\nprint(time.perf_counter() - t)"],
                                 capture_output=True, text=True, env=plain_env, check=True).stdout
            outside.append(float(out))

        time.sleep(1)
        sessions = k.call("tools/call", {"name": "list_sessions", "arguments": {}})["structuredContent"]["sessions"]
        # A session is its sandbox's init (the pid listed) and the worker.
        mem = [session_memory(s["pid"]) for s in sessions if s["pid"]]
        k.close()

    def ms(v):
        return f"{v * 1e3:.3f} ms"

    warm.sort()
    print(f"new session -> first result (1+1), one at a time, n={len(new)}: median {ms(statistics.median(new))}")
    print(f"new session -> first result (1+1), back to back, n={len(burst)}: median {ms(statistics.median(burst))}")
    print(f"warm round trip (x = x + 1), n={len(warm)}: median {ms(statistics.median(warm))}, "
          f"p99 {ms(warm[int(len(warm) * 0.99) - 1])}")
    print(f"numpy 500x500 matmul x20, n={len(inside)}: kiln {ms(statistics.median(inside))}, "
          f"plain python {ms(statistics.median(outside))}, ratio {statistics.median(inside) / statistics.median(outside):.3f}")
    uss = statistics.median(m[0] for m in mem)
    pss = statistics.median(m[1] for m in mem)
    print(f"idle session (init + worker), n={len(mem)}: median USS {uss / 1024:.2f} MiB, PSS {pss / 1024:.2f} MiB")


if __name__ == "__main__":
    sys.exit(main())
