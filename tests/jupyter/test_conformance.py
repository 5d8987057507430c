"""jupyter_kernel_test, the standard harness for Jupyter kernels, run
against kiln's kernelspec: its tests of the messaging protocol, each
message validated against its schema, with the samples a Python kernel
should pass.

Not exercised, because kiln does not do it yet: the pager
(``code_page_something``: kiln has no payloads); the harness skips it,
saying so."""

import os
import shutil
import subprocess
import tempfile

import jupyter_kernel_test

from conftest import KILN_BIN


class KilnKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "kiln"
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    code_generate_error = "raise ValueError('conformance')"
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": "'kiln' + 'ing'", "result": "'kilning'"},
    ]
    code_display_data = [
        {
            "code": "class H:\n    def _repr_html_(self):\n        return '<b>bold</b>'\ndisplay(H())",
            "mime": "text/html",
        },
        {
            "code": "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
            "mime": "image/png",
        },
    ]
    code_clear_output = "from IPython.display import clear_output\nclear_output()"
    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        # Completion looks at the session's live names (rlcompleter), not
        # at code that has not run: a dotted name of a builtin.
        {"text": "str.isdig", "matches": {"str.isdigit"}},
    ]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):"]
    invalid_code_samples = ["import = 7q", "x = )"]
    code_inspect_sample = "zip"
    supported_history_operations = ("tail", "range", "search")
    code_history_pattern = "6 * 7*"

    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="kiln-jkt-")
        subprocess.run(
            [KILN_BIN, "jupyter", "install", "--prefix", cls.prefix, "--", "--spares", "1"],
            check=True, capture_output=True, timeout=30,
        )
        cls.saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "KILN_HOME")}
        os.environ["JUPYTER_PATH"] = os.path.join(cls.prefix, "share", "jupyter")
        os.environ["KILN_HOME"] = os.path.join(cls.prefix, "home")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        for k, v in cls.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(cls.prefix, ignore_errors=True)
