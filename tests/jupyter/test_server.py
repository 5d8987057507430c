"""jupyter_server starts kiln through its kernelspec, and a cell runs
through the REST API and the kernel's websocket: the path JupyterLab
takes.  jupyter_server runs from an environment of its own
(tests/clients/.venv-server, made by peer-venv.sh from
server-requirements.txt)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from conftest import KILN_BIN

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = uuid.uuid4().hex


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    prefix = tmp / "prefix"
    subprocess.run([KILN_BIN, "jupyter", "install", "--prefix", str(prefix), "--", "--spares", "1"],
                   check=True, capture_output=True, timeout=30)
    python = subprocess.run([os.path.join(HERE, "peer-venv.sh"), "server",
                             os.path.join(HERE, "server-requirements.txt")],
                            env=dict(os.environ, PYTHON=sys.executable),
                            check=True, capture_output=True, text=True, timeout=900).stdout.strip()
    port = free_port()
    env = dict(os.environ, JUPYTER_PATH=str(prefix / "share" / "jupyter"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               KILN_HOME=str(tmp / "home"))
    log = open(tmp / "server.log", "w+")
    proc = subprocess.Popen(
        [python, "-m", "jupyter_server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         *(["--allow-root"] if os.getuid() == 0 else []),
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp}"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"jupyter_server did not start: {log.read()[-3000:]}")
            time.sleep(0.2)
    yield base, python
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def api(base, method, path, body=None):
    req = urllib.request.Request(f"{base}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"token {TOKEN}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None


# Runs in the server's environment, where websocket-client is: sends an
# execute_request on the kernel's channels websocket, as JupyterLab does,
# and prints the messages of its reply as JSON lines.
CLIENT = r"""
import json, sys, uuid, websocket
url, token, code = sys.argv[1:4]
ws = websocket.create_connection(url, header=[f"Authorization: token {token}"], timeout=60)
msg_id = uuid.uuid4().hex
ws.send(json.dumps({"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "t",
                               "session": uuid.uuid4().hex, "date": "", "version": "5.4"},
                    "parent_header": {}, "metadata": {}, "channel": "shell",
                    "content": {"code": code, "silent": False, "store_history": True,
                                "user_expressions": {}, "allow_stdin": False}}))
seen = set()
while not {"execute_reply", "idle"} <= seen:
    m = json.loads(ws.recv())
    if m.get("parent_header", {}).get("msg_id") != msg_id:
        continue
    kind = m["msg_type"]
    if kind == "status":
        kind = m["content"]["execution_state"]
    seen.add(kind)
    print(json.dumps({"type": m["msg_type"], "channel": m.get("channel"), "content": m["content"]}))
"""


def test_jupyter_server_runs_a_cell_on_kiln_over_its_websocket(server):
    base, python = server
    specs = api(base, "GET", "/api/kernelspecs")
    assert "kiln" in specs["kernelspecs"]
    assert specs["kernelspecs"]["kiln"]["spec"]["display_name"] == "Python 3 (kiln)"
    kernel = api(base, "POST", "/api/kernels", {"name": "kiln"})
    try:
        ws = base.replace("http", "ws", 1) + f"/api/kernels/{kernel['id']}/channels"
        out = subprocess.run([python, "-c", CLIENT, ws, TOKEN, "print('via the server')\n6 * 7"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        msgs = [json.loads(line) for line in out.stdout.splitlines()]
        streams = [m["content"]["text"] for m in msgs if m["type"] == "stream"]
        assert "".join(streams) == "via the server\n"
        results = [m["content"]["data"]["text/plain"] for m in msgs if m["type"] == "execute_result"]
        assert results == ["42"]
        (reply,) = [m for m in msgs if m["type"] == "execute_reply"]
        assert reply["channel"] == "shell" and reply["content"]["status"] == "ok"
        listed = api(base, "GET", f"/api/kernels/{kernel['id']}")
        assert listed["name"] == "kiln"
    finally:
        api(base, "DELETE", f"/api/kernels/{kernel['id']}")
    assert all(k["id"] != kernel["id"] for k in api(base, "GET", "/api/kernels"))
