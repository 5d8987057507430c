"""The systems under test, each behind a small driver.

* KilnRaw: `kiln serve` spoken to directly, newline-delimited JSON-RPC on
  its stdin and stdout, nothing else in the path: measures kiln.
* KilnSDK: the same server behind the official MCP TypeScript SDK client
  (sdk_driver.mjs in node): measures what an agent sees.
* KilnHTTP: `kiln serve --http` spoken to directly, JSON-RPC POSTed on
  keep-alive connections, one MCP session each (mcp_http.py): measures kiln
  over Streamable HTTP.
* IPyKernel: an ipykernel started and driven by jupyter_client.
* PerCall: a fresh process per call: `python -c`, or the same inside
  bubblewrap.

A kiln reply is returned condensed (see condense) by every kiln driver, so
that the scenarios check them alike.
"""
import base64
import io
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time

from .mcp_http import HttpError, McpHttpClient, pipeline as http_pipeline

RAW = "kiln (raw stdio)"
SDK = "kiln (MCP SDK)"
HTTP = "kiln (raw HTTP)"
IPY = "ipykernel"
PY = "python -c"
BWRAP = "bwrap + python -c"

PROTOCOL = "2025-06-18"
PNG = b"\x89PNG\r\n\x1a\n"
EDGE = 200  # characters of stdout/stderr kept at each end of a condensed reply
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SDK_DRIVER = os.path.join(HERE, "sdk_driver.mjs")


class DriverError(RuntimeError):
    """A system under test failed in a way no measurement survives."""


def condense(sc, content=()):
    """structuredContent with stdout and stderr as length, head and tail,
    and the images of the reply's content as {mime, bytes, png}."""
    out = dict(sc)
    out["images"] = []
    for block in content:
        if block.get("type") == "image":
            data = base64.b64decode(block["data"])
            out["images"].append({"mime": block.get("mimeType"), "bytes": len(data), "png": data[:8] == PNG})
    for key in ("stdout", "stderr"):
        text = out.pop(key, "") or ""
        out[key + "_len"] = len(text)
        if len(text) <= 2 * EDGE:
            out[key + "_head"], out[key + "_tail"] = text, ""
        else:
            out[key + "_head"], out[key + "_tail"] = text[:EDGE], text[-EDGE:]
    return out


def _tail(path, n=2000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _affinity(cpus):
    """A preexec_fn that confines the child (and all it starts) to CPUS."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class KilnRaw:
    """`kiln serve` over its stdio, one JSON-RPC message per line."""

    label = RAW

    def __init__(self, binary, args=(), log_path=os.devnull, cpus=None):
        self.home = tempfile.mkdtemp(prefix="kiln-bench-home-")
        self.log_path = log_path
        self.log = open(log_path, "ab")
        env = dict(os.environ, KILN_HOME=self.home)
        self.p = subprocess.Popen([binary, "serve", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, env=env, bufsize=0, preexec_fn=_affinity(cpus))
        self.out = io.BufferedReader(self.p.stdout, 1 << 16)
        self.next_id = 0
        self.call("initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                                 "clientInfo": {"name": "kiln-benchmarks", "version": "0"}})
        self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _write(self, msg):
        try:
            self.p.stdin.write((json.dumps(msg) + "\n").encode())
        except BrokenPipeError:
            raise DriverError(f"kiln exited ({self.p.poll()}): {_tail(self.log_path)}") from None

    def send(self, method, params):
        self.next_id += 1
        self._write({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.next_id

    def recv(self):
        while True:
            line = self.out.readline()
            if not line:
                raise DriverError(f"kiln closed its stdout ({self.p.poll()}): {_tail(self.log_path)}")
            msg = json.loads(line)
            if "id" in msg:
                return msg

    def call(self, method, params):
        want = self.send(method, params)
        reply = self.recv()
        if reply.get("id") != want or "error" in reply:
            raise DriverError(f"{method}: unexpected reply {str(reply)[:500]}")
        return reply["result"]

    @staticmethod
    def _args(code, sid, timeout_s):
        args = {"code": code}
        if sid:
            args["session_id"] = sid
        if timeout_s:
            args["timeout_s"] = timeout_s
        return {"name": "run_python", "arguments": args}

    def run(self, code, sid=None, timeout_s=None):
        """One run_python call: (seconds, condensed structuredContent)."""
        params = self._args(code, sid, timeout_s)
        t0 = time.perf_counter()
        want = self.send("tools/call", params)
        reply = self.recv()
        if reply.get("id") != want or "error" in reply:
            raise DriverError(f"run_python: unexpected reply {str(reply)[:500]}")
        sc = reply["result"]["structuredContent"]
        # A stream too long for the reply is read whole from the resource
        # it names, and the read is timed too: the client then has all of
        # it, as a peer's client has.
        for key in ("stdout", "stderr"):
            if key not in sc and sc.get(key + "_uri"):
                sc[key] = self.call("resources/read", {"uri": sc[key + "_uri"]})["contents"][0]["text"]
        t1 = time.perf_counter()
        return t1 - t0, condense(sc, reply["result"].get("content", ()))

    def run_many(self, code, sid=None, n=1, pause=0.0):
        """N calls one after another: (seconds per call, [first, last reply], replies not ok)."""
        params = self._args(code, sid, None)
        times, first, last, bad = [], None, None, []
        for _ in range(n):
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            want = self.send("tools/call", params)
            reply = self.recv()
            times.append(time.perf_counter() - t0)
            if reply.get("id") != want or "error" in reply:
                raise DriverError(f"run_python: unexpected reply {str(reply)[:500]}")
            sc = reply["result"]["structuredContent"]
            if first is None:
                first = sc
            last = sc
            if sc["status"] != "ok":
                bad.append(condense(sc))
        return times, [condense(first), condense(last)], bad

    def pipeline(self, sids, code, seconds):
        """One call in flight per session, the next sent as soon as the
        previous reply arrives, for SECONDS."""
        inflight, done, latency, ok, errors = {}, [], [], {s: 0 for s in sids}, []
        start = time.perf_counter()
        end = start + seconds
        for sid in sids:
            inflight[self.send("tools/call", self._args(code, sid, None))] = (sid, time.perf_counter())
        while inflight:
            reply = self.recv()
            now = time.perf_counter()
            sid, t0 = inflight.pop(reply["id"])
            done.append(now - start)
            latency.append(now - t0)
            sc = reply["result"]["structuredContent"]
            if sc["status"] == "ok":
                ok[sid] += 1
            elif len(errors) < 5:
                errors.append(condense(sc))
            if now < end:
                inflight[self.send("tools/call", self._args(code, sid, None))] = (sid, time.perf_counter())
        return {"done": done, "latency": latency, "ok": ok, "errors": errors}

    def list_sessions(self):
        return self.call("tools/call", {"name": "list_sessions", "arguments": {}})["structuredContent"]["sessions"]

    def close_sessions(self, sids):
        for sid in sids:
            self.call("tools/call", {"name": "close_session", "arguments": {"session_id": sid}})

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


class KilnSDK:
    """`kiln serve` behind the MCP TypeScript SDK client (sdk_driver.mjs)."""

    label = SDK

    def __init__(self, binary, args=(), log_path=os.devnull, cpus=None, node="node"):
        self.home = tempfile.mkdtemp(prefix="kiln-bench-home-")
        self.log_path = log_path
        self.log = open(log_path, "ab")
        env = dict(os.environ, KILN_HOME=self.home)
        self.p = subprocess.Popen([node, SDK_DRIVER, "--commands", "--kiln", binary, "--", *args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                  text=True, bufsize=1, preexec_fn=_affinity(cpus))
        hello = self._read()
        self.sdk_version = hello.get("sdk_version")

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            raise DriverError(f"sdk_driver exited ({self.p.poll()}): {_tail(self.log_path)}")
        msg = json.loads(line)
        if "error" in msg:
            raise DriverError(f"sdk_driver: {msg['error'][:2000]}")
        return msg

    def command(self, **cmd):
        try:
            self.p.stdin.write(json.dumps(cmd) + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            raise DriverError(f"sdk_driver exited ({self.p.poll()}): {_tail(self.log_path)}") from None
        return self._read()

    def run(self, code, sid=None, timeout_s=None):
        cmd = {"op": "run", "code": code, "n": 1}
        if sid:
            cmd["session_id"] = sid
        r = self.command(**cmd)
        return r["times_ns"][0] / 1e9, r["replies"][0]

    def run_many(self, code, sid=None, n=1, pause=0.0):
        cmd = {"op": "run", "code": code, "n": n, "pause_ms": pause * 1e3}
        if sid:
            cmd["session_id"] = sid
        r = self.command(**cmd)
        return [t / 1e9 for t in r["times_ns"]], r["replies"], r["not_ok"] if r["n_not_ok"] else []

    def pipeline(self, sids, code, seconds):
        r = self.command(op="pipeline", session_ids=list(sids), code=code, seconds=seconds)
        return {"done": [t / 1e9 for t in r["done_ns"]], "latency": [t / 1e9 for t in r["latency_ns"]],
                "ok": r["ok"], "errors": r["errors"]}

    def list_sessions(self):
        return self.command(op="list")["sessions"]

    def close_sessions(self, sids):
        self.command(op="close", session_ids=list(sids))

    def close(self):
        try:
            self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.p.stdin.close()
            self.p.wait(timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


class HttpEndpoint:
    """MCP over Streamable HTTP at URL, with the bearer TOKEN, spoken to
    over keep-alive HTTP/1.1 connections: one MCP session on its own
    connection for run() and the like, and as many more as connect()
    makes.  LOG_PATH is the log that errors quote."""

    label = HTTP

    def __init__(self, url, token, log_path):
        self.url, self.token, self.log_path = url, token, log_path
        self.clients = []
        self.client = self.connect()

    def _why(self):
        """What an error adds: the end of the log."""
        return _tail(self.log_path)

    def connect(self):
        """A new MCP session of this driver on a connection of its own."""
        try:
            c = McpHttpClient(self.url, self.token, PROTOCOL)
        except (OSError, HttpError) as e:
            raise DriverError(f"connecting to {self.url}: {e}; {self._why()}") from None
        self.clients.append(c)
        return c

    def disconnect(self, client):
        """Ends CLIENT's MCP session and closes its connection."""
        self.clients.remove(client)
        client.close()

    def _call(self, client, method, params):
        try:
            return client.call(method, params)
        except (OSError, HttpError) as e:
            raise DriverError(f"{method}: {e}; {self._why()}") from None

    def run(self, code, sid=None, timeout_s=None, client=None):
        """One run_python call: (seconds, condensed structuredContent)."""
        client = client or self.client
        params = KilnRaw._args(code, sid, timeout_s)
        t0 = time.perf_counter()
        result = self._call(client, "tools/call", params)
        sc = result["structuredContent"]
        for key in ("stdout", "stderr"):
            if key not in sc and sc.get(key + "_uri"):
                sc[key] = self._call(client, "resources/read", {"uri": sc[key + "_uri"]})["contents"][0]["text"]
        t1 = time.perf_counter()
        return t1 - t0, condense(sc, result.get("content", ()))

    def run_many(self, code, sid=None, n=1, pause=0.0):
        """N calls one after another: (seconds per call, [first, last reply], replies not ok)."""
        params = KilnRaw._args(code, sid, None)
        times, first, last, bad = [], None, None, []
        for _ in range(n):
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            sc = self._call(self.client, "tools/call", params)["structuredContent"]
            times.append(time.perf_counter() - t0)
            if first is None:
                first = sc
            last = sc
            if sc["status"] != "ok":
                bad.append(condense(sc))
        return times, [condense(first), condense(last)], bad

    def pipeline(self, sessions, code, seconds):
        """SESSIONS: (client, kiln session id) pairs.  One call in flight per
        pair, each on its client's connection, the next sent as soon as the
        previous reply arrives, for SECONDS."""
        clients = [c for c, _ in sessions]
        ok = {sid: 0 for _, sid in sessions}
        done, latency, errors = [], [], []

        def request(i):
            return clients[i].request("tools/call", KilnRaw._args(code, sessions[i][1], None))

        def reply(i, result, t0, now):
            done.append(now)
            latency.append(now - t0)
            sc = result["structuredContent"]
            if sc["status"] == "ok":
                ok[sessions[i][1]] += 1
            elif len(errors) < 5:
                errors.append(condense(sc))
        try:
            start = http_pipeline(clients, request, seconds, reply)
        except (OSError, HttpError) as e:
            raise DriverError(f"pipeline: {e}; {self._why()}") from None
        return {"done": [t - start for t in done], "latency": latency, "ok": ok, "errors": errors}

    def list_sessions(self, client=None):
        return self._call(client or self.client, "tools/call",
                          {"name": "list_sessions", "arguments": {}})["structuredContent"]["sessions"]

    def close_sessions(self, sids, client=None):
        for sid in sids:
            self._call(client or self.client, "tools/call", {"name": "close_session", "arguments": {"session_id": sid}})

    def close(self):
        for c in self.clients:
            c.close()
        self.clients = []


class KilnHTTP(HttpEndpoint):
    """`kiln serve --http 127.0.0.1:0` with a bearer token (TOKEN, or one
    of its own), spoken to as an HttpEndpoint."""

    LISTEN_TIMEOUT_S = 60

    def __init__(self, binary, args=(), log_path=os.devnull, cpus=None, token=None):
        self.home = tempfile.mkdtemp(prefix="kiln-bench-home-")
        self.log_path = log_path
        self.log = open(log_path, "ab")
        token = token or secrets.token_hex(24)
        tokens = os.path.join(self.home, "tokens")
        with open(os.open(tokens, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(token + "\n")
        env = dict(os.environ, KILN_HOME=self.home)
        self.p = subprocess.Popen([binary, "serve", "--http", "127.0.0.1:0", "--token-file", tokens, *args],
                                  stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.PIPE, env=env,
                                  cwd=self.home, preexec_fn=_affinity(cpus))
        super().__init__(self._listening(), token, log_path)

    def _why(self):
        return f"kiln {self.p.poll()}: {_tail(self.log_path)}"

    def _listening(self):
        """kiln's URL, from the line it prints once it listens; the rest of
        its stderr is copied to the log by a thread, so that it never
        blocks on a full pipe."""
        deadline = time.monotonic() + self.LISTEN_TIMEOUT_S
        url = None
        while url is None and time.monotonic() < deadline:
            line = self.p.stderr.readline()
            if not line:
                break
            self.log.write(line)
            if line.startswith(b"kiln: serving MCP at "):
                url = line.split()[-1].decode()
        self.log.flush()
        if url is None:
            self.p.kill()
            self.p.wait()
            raise DriverError(f"kiln serve --http printed no URL ({self.p.poll()}): {_tail(self.log_path)}")

        def copy(src=self.p.stderr, dst=self.log):
            for chunk in iter(lambda: src.read1(1 << 16), b""):
                dst.write(chunk)
                dst.flush()
        self.copier = threading.Thread(target=copy, daemon=True)
        self.copier.start()
        return url

    def close(self):
        super().close()
        self.p.terminate()
        try:
            self.p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.copier.join(timeout=10)
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


class IPyKernel:
    """An ipykernel started by jupyter_client's KernelManager and driven by
    its blocking client, the way a notebook frontend runs cells.  Another
    kernel the same way: KERNEL_NAME, looked up in KERNEL_DIRS when given
    (a KernelSpecManager's search path) rather than Jupyter's own."""

    label = IPY

    def __init__(self, env, log_path=os.devnull, kernel_name="python3", kernel_dirs=None):
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        self.log = open(log_path, "ab")
        specs = {"kernel_spec_manager": KernelSpecManager(kernel_dirs=kernel_dirs)} if kernel_dirs else {}
        self.km = KernelManager(kernel_name=kernel_name, **specs)
        self.km.start_kernel(env=env, stdout=self.log, stderr=self.log)
        # From here on the time is the kernel's: start_kernel() has written
        # the connection file and started the process.
        self.started_at = time.perf_counter()
        self.connect()

    def connect(self):
        """A new client for the kernel, its channels started."""
        import zmq

        self.kc = self.km.client()
        # The client retries its connections every millisecond, not
        # ZeroMQ's default 100 ms: a kernel binds its ports only some time
        # after it starts, and a client that came too early would otherwise
        # wait a whole interval, whatever the kernel.
        self.kc.context.setsockopt(zmq.RECONNECT_IVL, 1)
        self.kc.start_channels()

    def wait_ready(self, timeout=120):
        self.kc.wait_for_ready(timeout=timeout)
        return self

    @property
    def pid(self):
        prov = getattr(self.km, "provisioner", None)
        proc = getattr(prov, "process", None)
        return proc.pid if proc is not None else None

    def execute(self, code, timeout=600):
        """Runs CODE; returns status, result (text/plain of execute_result),
        stdout, stderr and PNG images (bytes) from display_data."""
        out = {"stdout": [], "stderr": [], "result": None, "images": [], "error": None}

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]].append(content["text"])
            elif kind == "execute_result":
                out["result"] = content["data"].get("text/plain")
            elif kind == "display_data" and "image/png" in content["data"]:
                out["images"].append(base64.b64decode(content["data"]["image/png"]))
            elif kind == "error":
                out["error"] = f"{content['ename']}: {content['evalue']}"

        reply = self.kc.execute_interactive(code, output_hook=hook, timeout=timeout, allow_stdin=False)
        out["status"] = reply["content"]["status"]
        out["stdout"] = "".join(out["stdout"])
        out["stderr"] = "".join(out["stderr"])
        return out

    def request(self, code, timeout=600):
        """execute_request -> execute_reply alone, the leanest round trip
        jupyter_client has: (seconds, reply status).  What the cell sent on
        iopub stays queued: call drain() every few hundred requests."""
        t0 = time.perf_counter()
        reply = self.kc.execute(code, allow_stdin=False, reply=True, timeout=timeout)
        return time.perf_counter() - t0, reply["content"]["status"]

    def drain(self):
        """Discards the iopub messages no one read."""
        while self.kc.iopub_channel.msg_ready():
            self.kc.iopub_channel.get_msg(timeout=0)

    def timed(self, code):
        t0 = time.perf_counter()
        r = self.execute(code)
        return time.perf_counter() - t0, r

    def close(self):
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        finally:
            self.log.close()


class PerCall:
    """A fresh interpreter per call: ARGV + [code]."""

    def __init__(self, label, argv, env):
        self.label = label
        self.argv = list(argv)
        self.env = env

    def run(self, code, timeout=600):
        """(seconds, stdout, stderr, exit code) of one call."""
        t0 = time.perf_counter()
        p = subprocess.run([*self.argv, code], capture_output=True, env=self.env, timeout=timeout)
        dt = time.perf_counter() - t0
        return dt, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), p.returncode

    def close(self):
        pass
