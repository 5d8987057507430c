"""The kernel's channels: signatures checked, malformed and oversized
messages dropped, the heartbeat, the connection file's transports and
its refusals."""

import os
import signal
import subprocess
import sys
import time
import uuid

import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.session import Session

from conftest import KILN_BIN, Kernel, running
from test_kernel import replies_to


def send_signed(kc, key, msg_type, content):
    """Sends MSG_TYPE on the client's shell socket, signed with KEY."""
    bad = Session(key=key, session=kc.session.session, username=kc.session.username)
    msg = bad.msg(msg_type, content)
    bad.send(kc.shell_channel.socket, msg)
    return msg["header"]["msg_id"]


def test_a_message_signed_with_another_key_gets_no_reply(kernel):
    kc = kernel.client
    forged = [
        send_signed(kc, b"not-the-key", "kernel_info_request", {}),
        send_signed(kc, b"not-the-key", "execute_request", {"code": "forged = 1", "silent": False}),
    ]
    assert replies_to(kc, forged, 1.5) == []
    # A correctly signed message is still served, and the forged cell never ran.
    reply, msgs = kernel.run("'forged' in globals()")
    assert reply["content"]["status"] == "ok"
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == [
        "False"
    ]
    assert "bad signature" in kernel.logs()


def test_a_signed_message_sent_again_is_dropped_as_a_replay(kernel):
    kc = kernel.client
    # The exact frames of a correctly signed execute_request, sent twice:
    # what someone who captured them on the wire would do.
    msg = kc.session.msg("execute_request", {"code": "replayed = globals().get('replayed', 0) + 1",
                                             "silent": False})
    frames = kc.session.serialize(msg)
    sock = kc.shell_channel.socket
    sock.send_multipart(frames)
    assert len(replies_to(kc, [msg["header"]["msg_id"]], 10, until=1)) == 1
    sock.send_multipart(frames)
    assert replies_to(kc, [msg["header"]["msg_id"]], 1.5) == []
    reply, msgs = kernel.run("replayed")
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["1"]
    assert "a replay" in kernel.logs()


def test_an_unsigned_message_gets_no_reply(kernel):
    kc = kernel.client
    sock = kc.shell_channel.socket
    header = (
        b'{"msg_id":"unsigned-1","msg_type":"kernel_info_request","session":"s",'
        b'"username":"u","date":"2024-01-01T00:00:00Z","version":"5.4"}'
    )
    sock.send_multipart([b"<IDS|MSG>", b"", header, b"{}", b"{}", b"{}"])
    assert replies_to(kc, ["unsigned-1"], 1) == []
    assert kc.kernel_info(reply=True, timeout=10)["content"]["status"] == "ok"


def test_heartbeat_echoes(kernel):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.linger = 0
    s.connect("tcp://127.0.0.1:%d" % kernel.info["hb_port"])
    try:
        s.send(b"ping-1234")
        assert s.poll(5000) == zmq.POLLIN
        assert s.recv() == b"ping-1234"
    finally:
        s.close()


def test_bad_connection_file_is_refused_clearly(tmp_path):
    import json
    import subprocess

    from conftest import KILN_BIN

    for field, value, says in [
        ("shell_port", 0, "shell_port"),
        ("signature_scheme", "hmac-md5", "signature_scheme"),
        ("transport", "udp", "transport"),
    ]:
        cf = {
            "transport": "tcp", "ip": "127.0.0.1", "key": "k", "signature_scheme": "hmac-sha256",
            "shell_port": 50001, "iopub_port": 50002, "stdin_port": 50003,
            "control_port": 50004, "hb_port": 50005,
        }
        cf[field] = value
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(cf))
        p = subprocess.run([KILN_BIN, "jupyter", "kernel", "-f", str(path)],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, KILN_HOME=str(tmp_path / "home")))
        assert p.returncode == 2, p.stderr
        assert says in p.stderr, p.stderr


def test_ipc_transport_serves_like_tcp(tmp_path):
    k = Kernel(tmp_path, transport="ipc")
    try:
        reply, msgs = k.run("print('over ipc'); 6 * 7")
        assert reply["content"]["status"] == "ok"
        assert [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"] == ["over ipc\n"]
        assert os.path.exists(str(tmp_path / "kiln-ipc") + "-%d" % k.info["shell_port"])
    finally:
        k.stop()


def test_garbage_and_oversized_messages_are_dropped_and_the_kernel_serves_on(kernel):
    ctx = zmq.Context.instance()
    port = kernel.info["control_port"]
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect("tcp://127.0.0.1:%d" % port)
    try:
        # No delimiter; too few parts; a frame past control's size limit.
        s.send_multipart([b"just", b"junk"])
        s.send_multipart([b"<IDS|MSG>", b"", b"{}"])
        s.send_multipart([b"<IDS|MSG>", b"", b"x" * (2 << 20), b"{}", b"{}", b"{}"])
        assert s.poll(500) == 0
    finally:
        s.close()
    kc = kernel.client
    msg = kc.session.msg("kernel_info_request", {})
    kc.control_channel.send(msg)
    reply = kc.get_control_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg["header"]["msg_id"]
    assert kc.kernel_info(reply=True, timeout=10)["content"]["status"] == "ok"
    assert "no <IDS|MSG> delimiter" in kernel.logs()


LAUNCHER = """
import os, subprocess, sys, time
env = dict(os.environ, JPY_PARENT_PID=str(os.getpid()))
p = subprocess.Popen(sys.argv[1:], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(p.pid, flush=True)
time.sleep(float(os.environ["LAUNCHER_LIFE"]))
"""


def test_a_kernel_stops_when_the_process_that_started_it_is_gone(tmp_path):
    # As Jupyter starts it: the launcher's pid in JPY_PARENT_PID.  The
    # launcher exits without a shutdown_request, as a crashed server does.
    cf, info = write_connection_file(fname=str(tmp_path / "kernel.json"), ip="127.0.0.1",
                                     key=uuid.uuid4().hex.encode())
    env = dict(os.environ, KILN_HOME=str(tmp_path / "home"), LAUNCHER_LIFE="3")
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, KILN_BIN, "jupyter", "kernel", "-f", cf],
                                env=env, stdout=subprocess.PIPE, text=True)
    kernel = int(launcher.stdout.readline())
    kc = BlockingKernelClient(connection_file=cf)
    kc.load_connection_file()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        assert os.path.exists(f"/proc/{kernel}")
        launcher.wait(timeout=30)
        end = time.monotonic() + 20
        while running(kernel) and time.monotonic() < end:
            time.sleep(0.1)
        assert not running(kernel), "the kernel outlived the process that started it"
    finally:
        kc.stop_channels()
        if running(kernel):
            os.kill(kernel, signal.SIGKILL)

