#!/usr/bin/env python3
"""Quick medians for the kernel, measured through a raw JSON-over-stdio
driver (no MCP SDK in the path):

* new session -> first result of ``1+1`` (run_python without session_id);
* warm round trip of ``x = x + 1`` in an existing session;
* idle worker memory: USS and PSS from /proc/PID/smaps_rollup.

Usage: benchmarks/kernel_quick.py [--kiln build/kiln] [--sessions 50] [--calls 1000]
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
    def __init__(self, binary, home):
        env = dict(os.environ, KILN_HOME=home)
        self.p = subprocess.Popen([binary, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(os.path.dirname(__file__), "..", "build", "kiln"))
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--calls", type=int, default=1000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        k = Kiln(a.kiln, home)
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

        time.sleep(1)
        sessions = k.call("tools/call", {"name": "list_sessions", "arguments": {}})["structuredContent"]["sessions"]
        mem = [rollup(s["pid"]) for s in sessions if s["pid"]]
        k.close()

    def ms(v):
        return f"{v * 1e3:.3f} ms"

    warm.sort()
    print(f"new session -> first result (1+1), one at a time, n={len(new)}: median {ms(statistics.median(new))}")
    print(f"new session -> first result (1+1), back to back, n={len(burst)}: median {ms(statistics.median(burst))}")
    print(f"warm round trip (x = x + 1), n={len(warm)}: median {ms(statistics.median(warm))}, "
          f"p99 {ms(warm[int(len(warm) * 0.99) - 1])}")
    uss = statistics.median(m[0] for m in mem)
    pss = statistics.median(m[1] for m in mem)
    print(f"idle worker, n={len(mem)}: median USS {uss / 1024:.2f} MiB, PSS {pss / 1024:.2f} MiB")


if __name__ == "__main__":
    sys.exit(main())
