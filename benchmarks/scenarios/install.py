"""A small wheel installed into a session and imported: install_packages
then `import` in the next cell, from a package index served on loopback
(tests/integration/packages/build_index.py), so that the network is not
what is measured.

kiln, pip run: an unpinned requirement is never cached, so every call
runs the jailed installer (its namespaces, the proxy, pip) into a new
session.  kiln, cached: a pinned one installed once is linked into each
new session without pip.  ipykernel: pip run from the kernel (it has the
network) with --target, then the import; a fresh directory each time."""
import os
import socket
import subprocess
import sys
import tempfile
import time

from bench.context import Job
from bench.drivers import IPY, RAW

TITLE = "Install a small wheel and import it"
ORDER = 78
METRIC = "install_packages + import, a pure wheel"
PIP, CACHED = f"{RAW}, pip run", f"{RAW}, cached"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _index(ctx):
    """Builds and serves the test index; returns (url, process, directory)."""
    d = tempfile.mkdtemp(prefix="kiln-bench-index-")
    subprocess.run([sys.executable, os.path.join(ctx.paths["root"], "tests", "integration", "packages",
                                                 "build_index.py"), d], check=True, capture_output=True)
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            ctx.check(time.monotonic() < deadline, "the test index did not start")
            time.sleep(0.05)
    return f"http://127.0.0.1:{port}/simple", p, d


def run(ctx):
    url, server, directory = _index(ctx)
    try:
        _measure(ctx, url)
    finally:
        server.kill()
        subprocess.run(["rm", "-rf", directory], check=False)


def _measure(ctx, url):
    raw = ctx.kiln_raw("--package-index", url, "--allow-packages", "kilntest-pure")

    def install(spec, cached):
        def one():
            _, r = raw.run("1")
            sid = r["session_id"]
            t0 = time.perf_counter()
            reply = raw.call("tools/call", {"name": "install_packages",
                                            "arguments": {"session_id": sid, "packages": [spec]}})
            sc = reply.get("structuredContent") or {}
            ctx.check(not reply.get("isError") and sc.get("cached") == cached, f"kiln: {reply}")
            _, r = raw.run("import kilntest_pure\nkilntest_pure.VALUE", sid)
            dt = time.perf_counter() - t0
            ctx.check(r["status"] == "ok" and r["result"] in ("42", "43"), f"kiln: {r}")
            raw.close_sessions([sid])
            return dt
        return one

    # The pinned set, installed once before anything is timed.
    install("kilntest-pure==1.0", False)()

    ipy = ctx.ipykernel()
    count = {"n": 0}

    def ipykernel():
        count["n"] += 1
        code = (
            "import subprocess, sys, importlib, tempfile\n"
            "d = tempfile.mkdtemp()\n"
            f"p = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', "
            f"'--only-binary=:all:', '--no-cache-dir', '--target', d, '--index-url', {url!r}, 'kilntest-pure'])\n"
            "sys.path.insert(0, d)\n"
            "import kilntest_pure\n"
            "del sys.modules['kilntest_pure']\n"
            "sys.path.remove(d)\n"
            "(p.returncode, kilntest_pure.VALUE)"
        )
        dt, r = ipy.timed(code)
        ctx.check(r["status"] == "ok" and r["result"] == "(0, 43)", f"ipykernel: {r}")
        return dt

    runs = ctx.n(20, 3)
    s = ctx.interleave([Job(PIP, runs, install("kilntest-pure", False)),
                        Job(CACHED, runs, install("kilntest-pure==1.0", True)),
                        Job(IPY, runs, ipykernel)])
    ctx.record(METRIC, CACHED, s[CACHED], note="linked from an earlier install of the same pin, no pip")
    ctx.record(METRIC, PIP, s[PIP], note="the jailed installer: namespaces, the proxy, pip", baseline=False)
    ctx.record(METRIC, IPY, s[IPY], note="pip --target from the kernel, which has the network", baseline=False)
