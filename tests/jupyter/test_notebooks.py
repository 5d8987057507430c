"""Real notebooks executed end to end by nbclient, on kiln's kernel and on
ipykernel (with the same numpy, pandas and matplotlib: peer-venv.sh),
and the outputs of each cell compared: the same output types in the same
order, and for every display and result, ipykernel's richest form (HTML,
PNG) among kiln's.

The notebooks: a pandas + matplotlib analysis; one with an exception in
the middle (allow_errors); one with top-level await; one with a runaway
cell that nbclient's timeout interrupts; one that updates a display by
its handle and redraws with clear_output."""

import json
import os
import subprocess

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import KILN_BIN

HERE = os.path.dirname(os.path.abspath(__file__))
SANDBOX_VENV = os.environ.get("KILN_VENV") or os.path.join(HERE, "..", "..", ".venv")
RICH = ("text/html", "image/png")


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """JUPYTER_PATH with two kernelspecs: kiln's and ipykernel's."""
    tmp = tmp_path_factory.mktemp("notebooks")
    prefix = tmp / "prefix"
    subprocess.run([KILN_BIN, "jupyter", "install", "--prefix", str(prefix), "--", "--spares", "1"],
                   check=True, capture_output=True, timeout=30)
    python = subprocess.run([os.path.join(HERE, "peer-venv.sh"), "ipykernel",
                             os.path.join(HERE, "ipykernel-requirements.txt"), SANDBOX_VENV],
                            check=True, capture_output=True, text=True, timeout=900).stdout.strip()
    spec = prefix / "share" / "jupyter" / "kernels" / "peer-ipykernel"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ipykernel", "language": "python",
    }))
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "KILN_HOME", "MPLBACKEND")}
    os.environ["JUPYTER_PATH"] = str(prefix / "share" / "jupyter")
    os.environ["KILN_HOME"] = str(tmp / "home")
    # ipykernel's inline backend, as in a notebook server.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run(cells, kernel_name, **kw):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    kw.setdefault("timeout", 60)
    NotebookClient(nb, kernel_name=kernel_name, startup_timeout=90, **kw).execute()
    return nb


def shape(nb):
    """Per cell, its outputs as (output_type, stream name or the rich
    forms among RICH)."""
    cells = []
    for cell in nb.cells:
        outs = []
        for o in cell.outputs:
            if o["output_type"] == "stream":
                outs.append(("stream", o["name"]))
            elif o["output_type"] in ("display_data", "execute_result"):
                outs.append((o["output_type"], tuple(m for m in RICH if m in o["data"])))
            else:
                outs.append((o["output_type"], o.get("ename")))
        cells.append(outs)
    return cells


def compare(cells, **kw):
    kiln = run(cells, "kiln", **kw)
    peer = run(cells, "peer-ipykernel", **kw)
    assert shape(kiln) == shape(peer), f"kiln: {shape(kiln)}\nipykernel: {shape(peer)}"
    return kiln


ANALYSIS = [
    "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt",
    "rng = np.random.default_rng(0)\n"
    "df = pd.DataFrame({'group': list('abcab' * 20), 'value': rng.normal(size=100)})\n"
    "print(len(df), 'rows')",
    "df.groupby('group')['value'].agg(['mean', 'count'])",
    "fig, ax = plt.subplots(figsize=(3, 2))\ndf['value'].hist(ax=ax, bins=10)\nplt.show()",
    "summary = df['value'].describe()\nsummary['count']",
]


def test_an_analysis_notebook_gives_ipykernels_outputs(kernels):
    nb = compare(ANALYSIS)
    assert nb.cells[1].outputs[0]["text"] == "100 rows\n"
    assert nb.cells[4].outputs[0]["data"]["text/plain"] == "np.float64(100.0)"


def test_an_exception_mid_notebook_is_an_error_output_and_the_rest_runs(kernels):
    nb = compare(["a = 1", "b = 1 / 0", "c = a + 1\nc"], allow_errors=True)
    assert nb.cells[1].outputs[0]["ename"] == "ZeroDivisionError"
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "2"


def test_top_level_await_runs_in_a_notebook(kernels):
    nb = compare(["import asyncio\nawait asyncio.sleep(0.01)\n'awaited'"])
    assert nb.cells[0].outputs[0]["data"]["text/plain"] == "'awaited'"


def test_a_runaway_cell_is_interrupted_by_the_timeout_and_the_notebook_goes_on(kernels):
    cells = ["kept = 'yes'", "while True:\n    pass", "kept"]
    kiln = run(cells, "kiln", timeout=3, interrupt_on_timeout=True, allow_errors=True)
    peer = run(cells, "peer-ipykernel", timeout=3, interrupt_on_timeout=True, allow_errors=True)
    assert shape(kiln) == shape(peer), f"kiln: {shape(kiln)}\nipykernel: {shape(peer)}"
    assert kiln.cells[1].outputs[-1]["ename"] == "KeyboardInterrupt"
    assert kiln.cells[2].outputs[0]["data"]["text/plain"] == "'yes'"


PROGRESS = [
    "from IPython.display import display, update_display, clear_output, HTML",
    "h = display(HTML('<b>0</b>'), display_id=True)\n"
    "for i in range(1, 4):\n"
    "    h.update(HTML(f'<b>{i}</b>'))\n"
    "print('done')",
    "display(HTML('<i>gone</i>'))\n"
    "for i in range(3):\n"
    "    clear_output(wait=True)\n"
    "    print(f'step {i}')\n"
    "display(HTML('<i>end</i>'))",
]


def test_a_display_updated_by_its_handle_and_a_redraw_with_clear_output_end_as_in_ipykernel(kernels):
    nb = compare(PROGRESS)
    # nbclient applied the updates where the display is, and the clears.
    assert nb.cells[1].outputs[0]["data"]["text/html"] == "<b>3</b>"
    assert nb.cells[1].outputs[1]["text"] == "done\n"
    assert [o.get("text") or o["data"]["text/html"] for o in nb.cells[2].outputs] == [
        "step 2\n",
        "<i>end</i>",
    ]
