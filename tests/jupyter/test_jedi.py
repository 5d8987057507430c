"""Completion by jedi when the sessions' environment has it, and by
rlcompleter on the live names when it does not.  jedi infers what an
expression is without running it, so it completes after a literal or a
call, where rlcompleter (which only looks names up) has nothing.

The environment with jedi is the one the notebook tests run ipykernel in
(peer-venv.sh: ipykernel's requirements, jedi among them, over kiln's
sandbox packages), given to the kernel with --venv.
"""

import os
import subprocess

import pytest

from conftest import Kernel
from test_kernel import ask
from test_notebooks import HERE, SANDBOX_VENV

CODE = "s = 'abc'.upp"


@pytest.fixture(scope="module")
def jedi_venv():
    python = subprocess.run([os.path.join(HERE, "peer-venv.sh"), "ipykernel",
                             os.path.join(HERE, "ipykernel-requirements.txt"), SANDBOX_VENV],
                            check=True, capture_output=True, text=True, timeout=900).stdout.strip()
    return os.path.dirname(os.path.dirname(python))


def test_with_jedi_a_literals_methods_complete(tmp_path, jedi_venv):
    k = Kernel(tmp_path, "--venv", jedi_venv)
    try:
        c = ask(k, lambda kc: kc.complete(CODE, len(CODE)))
        assert c["status"] == "ok"
        assert c["matches"] == ["upper"]
        assert (c["cursor_start"], c["cursor_end"]) == (len(CODE) - 3, len(CODE))
        # It still sees the session's own names.
        k.run("square_side = 4")
        c = ask(k, lambda kc: kc.complete("squ", 3))
        assert c["matches"] == ["square_side"]
        assert c["cursor_start"] == 0
    finally:
        k.stop()


def test_without_jedi_completion_is_rlcompleters(kernel):
    import_jedi = kernel.run("import importlib.util; importlib.util.find_spec('jedi') is None")[1]
    assert [m["content"]["data"]["text/plain"] for m in import_jedi if m["msg_type"] == "execute_result"] == [
        "True"
    ]
    c = ask(kernel, lambda kc: kc.complete(CODE, len(CODE)))
    assert c["status"] == "ok"
    assert c["matches"] == []
