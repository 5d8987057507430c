"""`kiln jupyter install` writes a kernelspec Jupyter finds and starts:
through KernelManager, as the notebook server does, and through nbclient
running a notebook."""

import base64
import json
import os
import subprocess
import time

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from conftest import KILN_BIN


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The kernelspec, installed under a prefix Jupyter is told to search;
    the kernels it starts get a KILN_HOME of their own."""
    prefix = tmp_path / "prefix"
    p = subprocess.run(
        [KILN_BIN, "jupyter", "install", "--prefix", str(prefix), "--", "--spares", "1"],
        capture_output=True, text=True, timeout=30,
    )
    assert p.returncode == 0, p.stderr
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("KILN_HOME", str(tmp_path / "home"))
    return prefix


def test_install_writes_kernel_json_with_kiln_argv_and_message_interrupts(installed):
    spec = json.loads((installed / "share/jupyter/kernels/kiln/kernel.json").read_text())
    assert spec["display_name"] == "Python 3 (kiln)"
    assert spec["language"] == "python"
    assert spec["interrupt_mode"] == "message"
    assert spec["argv"] == [
        os.path.realpath(KILN_BIN), "jupyter", "kernel", "-f", "{connection_file}", "--spares", "1",
    ]
    assert "kiln" in KernelSpecManager().find_kernel_specs()


def test_install_standalone_writes_the_mode_into_the_kernels_command(tmp_path):
    p = subprocess.run([KILN_BIN, "jupyter", "install", "--prefix", str(tmp_path), "--standalone",
                        "--", "--memory", "1G"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    spec = json.loads((tmp_path / "share/jupyter/kernels/kiln/kernel.json").read_text())
    assert spec["argv"][5:] == ["--standalone", "--memory", "1G"]


def test_install_refuses_an_unknown_kiln_option_and_a_bad_name(tmp_path):
    p = subprocess.run([KILN_BIN, "jupyter", "install", "--prefix", str(tmp_path), "--",
                        "--no-such-option"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "no-such-option" in p.stderr
    p = subprocess.run([KILN_BIN, "jupyter", "install", "--prefix", str(tmp_path), "--name",
                        "Bad Name"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "kernel name" in p.stderr
    assert not (tmp_path / "share").exists()


def test_kernel_manager_starts_runs_interrupts_and_shuts_down_the_kiln_kernel(installed):
    km = KernelManager(kernel_name="kiln")
    km.start_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive("km_var = 20\nkm_var * 2 + 2", timeout=30)
        assert reply["content"]["status"] == "ok"
        # KernelManager interrupts by message, as the kernelspec says.
        msg_id = kc.execute("import time\ntime.sleep(30)")
        time.sleep(1)
        km.interrupt_kernel()
        while True:
            r = kc.get_shell_msg(timeout=10)
            if r["parent_header"]["msg_id"] == msg_id:
                break
        assert r["content"]["ename"] == "KeyboardInterrupt"
        kc.stop_channels()
        started = time.monotonic()
        km.shutdown_kernel(now=False)
        # It exits on its own after the shutdown_reply, well before the
        # manager would lose patience and kill it.
        assert time.monotonic() - started < 4
        assert km.provisioner is None or not km.is_alive()
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)


def test_nbclient_runs_a_notebook_on_the_kiln_kernel(installed):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 6\nprint('six')"),
        nbformat.v4.new_code_cell("x * 7"),
        nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "plt.figure(figsize=(2, 2), dpi=50)\nplt.plot([0, 1])\nNone"
        ),
    ]
    NotebookClient(nb, kernel_name="kiln", timeout=60, startup_timeout=60).execute()
    assert nb.cells[0].outputs[0]["name"] == "stdout"
    assert nb.cells[0].outputs[0]["text"] == "six\n"
    assert nb.cells[1].outputs[0]["output_type"] == "execute_result"
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == "42"
    assert nb.cells[1].execution_count == 2
    fig = [o for o in nb.cells[2].outputs if o["output_type"] == "display_data"]
    assert len(fig) == 1
    png = base64.b64decode(fig[0]["data"]["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_kernel_manager_restart_gives_a_fresh_namespace(installed):
    # KernelManager restarts by shutdown_request(restart=True), then waits
    # for the process to end and starts another; kiln's kernel stays up on
    # such a request, so the manager stops it (SIGTERM after half its
    # shutdown_wait_time) before starting the new one.
    km = KernelManager(kernel_name="kiln", shutdown_wait_time=2)
    km.start_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive("before_restart = 1", timeout=30)
        kc.stop_channels()
        km.restart_kernel(now=False)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        out = []
        kc.execute_interactive("'before_restart' in globals()", timeout=30, output_hook=out.append)
        assert [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"] == [
            "False"
        ]
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
