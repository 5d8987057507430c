"""A hostile cell in a kiln Jupyter kernel is contained as it is over MCP:
a subset of the security battery (tests/security) run through
jupyter_client.  Each attack runs twice: against the jailed kernel, where
it must fail and leave the kernel serving, and against a kernel started
with --insecure-no-sandbox, where it must succeed, so that no check here
passes whether or not the jail is there.

The subset: a host file by its absolute path, a write outside /work and
/tmp, a TCP connection to a listener on the host's loopback, and a signal
to a host process (the kernel itself).  The rest of the battery (mounts,
devices, capabilities, seccomp, the control socket, the compile helper)
is the same jail and runs over MCP only."""

import os
import socket

import pytest

from conftest import Kernel


@pytest.fixture(scope="module", params=["jailed", "unjailed"])
def mode(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    extra = ["--insecure-no-sandbox"] if request.param == "unjailed" else []
    k = Kernel(tmp, *extra)
    yield request.param, k, tmp
    k.stop()


def outcome(kernel, code):
    """'ok' and the value's text, or the exception's name."""
    reply, msgs = kernel.run(code)
    c = reply["content"]
    if c["status"] != "ok":
        return c["ename"]
    results = [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]
    return results[0] if results else "ok"


def check(mode_name, got, escaped):
    if mode_name == "jailed":
        assert got != escaped, f"the attack worked through the jail: {got}"
    else:
        assert got == escaped, f"the attack did not work even unjailed ({got}): the test cannot tell"


def test_a_host_file_cannot_be_read(mode):
    name, kernel, tmp = mode
    secret = tmp / "host-secret.txt"
    secret.write_text("host secret")
    got = outcome(kernel, f"open({str(secret)!r}).read()")
    check(name, got, "'host secret'")


def test_nothing_outside_work_and_tmp_can_be_written(mode):
    name, kernel, tmp = mode
    target = tmp / "written-from-a-cell"
    got = outcome(kernel, f"open({str(target)!r}, 'w').write('x')")
    check(name, got, "1")
    if name == "jailed":
        assert not target.exists()


def test_the_hosts_loopback_is_out_of_reach(mode):
    name, kernel, _ = mode
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        got = outcome(
            kernel,
            f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.close()\n'connected'",
        )
    finally:
        listener.close()
    check(name, got, "'connected'")


def test_a_host_process_cannot_be_signalled(mode):
    name, kernel, _ = mode
    # Signal 0 only checks that the process can be reached.
    got = outcome(kernel, f"import os\nos.kill({kernel.proc.pid}, 0)\n'reached'")
    check(name, got, "'reached'")
    assert kernel.proc.poll() is None


def test_the_kernel_serves_on_after_the_attacks(mode):
    _, kernel, _ = mode
    assert outcome(kernel, "21 * 2") == "42"
