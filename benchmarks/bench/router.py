"""nginx in front of kiln nodes, configured by docker/nginx/render exactly
as the scale-out test and the Kubernetes router are."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

from .drivers import DriverError, HttpEndpoint, _tail

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RENDER = os.path.join(ROOT, "docker", "nginx", "render")
START_TIMEOUT_S = 10


def nginx_binary():
    """nginx's path, or None when it is not installed."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Router(HttpEndpoint):
    """nginx (one worker process) listening on a loopback port, routing to
    NODES: (name, kiln HttpEndpoint) pairs that share TOKEN."""

    def __init__(self, nodes, token, log_path=os.devnull):
        binary = nginx_binary()
        if binary is None:
            raise DriverError("nginx is not installed (benchmarks/run installs nginx-light)")
        self.dir = tempfile.mkdtemp(prefix="kiln-bench-nginx-")
        port = _free_port()
        listen = f"127.0.0.1:{port}"
        hosts = [f"{name}={node.url.split('/')[2]}" for name, node in nodes]
        conf = subprocess.run([RENDER, listen, *hosts], check=True, capture_output=True, text=True).stdout
        for d in ("body", "proxy"):
            os.mkdir(os.path.join(self.dir, d))
        with open(os.path.join(self.dir, "kiln.conf"), "w") as f:
            f.write(conf)
        temp = "".join(f"    {k}_temp_path {self.dir}/proxy;\n" for k in ("proxy", "fastcgi", "uwsgi", "scgi"))
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(f"worker_processes 1;\nerror_log {log_path} warn;\npid {self.dir}/nginx.pid;\n"
                    "events { worker_connections 4096; }\n"
                    f"http {{\n    access_log off;\n    client_body_temp_path {self.dir}/body;\n{temp}"
                    f"    include {self.dir}/kiln.conf;\n}}\n")
        self.p = subprocess.Popen([binary, "-p", self.dir, "-c", os.path.join(self.dir, "nginx.conf"),
                                   "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://{listen}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.p.poll() is not None or time.monotonic() > deadline:
                self.close_router()
                raise DriverError(f"nginx did not come up on {listen}: {_tail(log_path)}")
            time.sleep(0.05)
        super().__init__(f"http://{listen}/mcp", token, log_path)

    def _why(self):
        return f"nginx {self.p.poll()}: {_tail(self.log_path)}"

    def close_router(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def close(self):
        super().close()
        self.close_router()
