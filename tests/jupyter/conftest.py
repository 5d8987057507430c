"""Fixtures for the Jupyter tests: kiln's kernel started as Jupyter starts
it (``kiln jupyter kernel -f CONNECTION_FILE``), and a jupyter_client
client connected to it.

KILN_BIN names the kiln to test (tests/jupyter/run passes build/kiln).
Every kernel gets a KILN_HOME of its own under pytest's tmp_path.
"""

import os
import subprocess
import uuid

import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

KILN_BIN = os.environ.get("KILN_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "kiln"
)


def running(pid):
    """Whether PID is a process that has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Kernel:
    """A kiln kernel process and a client of it."""

    def __init__(self, tmp, *extra, transport="tcp", home=None, env=None):
        self.connection_file, self.info = write_connection_file(
            fname=str(tmp / "kernel.json"),
            transport=transport,
            # For ipc, a path prefix: the sockets are ip-PORT.
            ip="127.0.0.1" if transport == "tcp" else str(tmp / "kiln-ipc"),
            # write_connection_file's default is no key at all (unsigned
            # messages); Jupyter's kernel managers always make one.
            key=uuid.uuid4().hex.encode(),
        )
        self.env = dict(os.environ, KILN_HOME=str(home or tmp / "home"), **(env or {}))
        self.log = open(tmp / "kernel.log", "w+")
        self.proc = subprocess.Popen(
            [KILN_BIN, "jupyter", "kernel", "-f", self.connection_file, *extra],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = BlockingKernelClient(connection_file=self.connection_file)
        self.client.load_connection_file()
        self.client.start_channels()
        try:
            self.client.wait_for_ready(timeout=60)
        except Exception:
            self.stop()
            raise

    def logs(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def run(self, code, timeout=30, **kw):
        """Executes CODE and returns (reply, [iopub messages of it])."""
        msgs = []
        reply = self.client.execute_interactive(
            code, output_hook=msgs.append, timeout=timeout, **kw
        )
        return reply, msgs

    def stop(self):
        self.client.stop_channels()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """One kernel shared by a module's tests that leave it as they found it."""
    k = Kernel(tmp_path_factory.mktemp("kernel"))
    yield k
    k.stop()


@pytest.fixture
def fresh_kernel(tmp_path):
    """A kernel of the test's own, for tests that restart or stop it."""
    k = Kernel(tmp_path)
    yield k
    k.stop()
