"""The store the daemon owns (kernel/daemon/stores.c, kernel/store/link.c):
kernels read kiln.db and send their writes to the daemon, which alone
writes it; a kernel whose daemon died writes it until the next daemon
takes it back; malformed store links are refused.
"""

import glob
import os
import re
import signal
import socket
import struct
import subprocess
import time

from conftest import KILN_BIN, running
from test_daemon import children, daemon_of, kdir, kernel, talk, wait_for, xdg  # noqa: F401 (fixtures)


def open_modes(pid, path):
    """The access mode ("r", "w", "rw") of each descriptor PID holds on PATH."""
    modes = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != str(path):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = int(re.search(r"^flags:\s+(\d+)", f.read(), re.M).group(1), 8)
        except OSError:
            continue
        modes.append(("r", "w", "rw")[flags & 3])
    return modes


def history(home):
    p = subprocess.run([KILN_BIN, "history", "--home", str(home)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_the_daemon_writes_the_store_and_a_kernel_whose_daemon_died_writes_it_until_the_next_takes_it(kdir, xdg):
    db = kdir / "home" / "kiln.db"
    a = kernel(kdir, "a", xdg)
    try:
        a.run("hist_one = 1")
        old = daemon_of(xdg)
        # The kernel reads kiln.db; only the daemon writes it.
        assert open_modes(a.proc.pid, db) and set(open_modes(a.proc.pid, db)) == {"r"}, a.logs()
        assert "rw" in open_modes(old, db)
        wait_for(lambda: "hist_one = 1" in history(kdir / "home"), what="the daemon to commit the row")
        inits = children(old, "kiln-init")
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: not any(running(p) for p in inits), what="the workers to end")
        a.run("hist_two = 2", timeout=60)
        a.run("hist_three = 3", timeout=60)
        # Nothing is lost: the kernel writes the rows itself meanwhile...
        wait_for(lambda: "hist_three = 3" in history(kdir / "home"), what="the rows after the daemon died")
        assert "hist_two = 2" in history(kdir / "home")
        assert "itself until a daemon takes it back" in a.logs(), a.logs()
        # ... and the new daemon takes the store back.
        new = daemon_of(xdg)
        assert new and new != old
        time.sleep(1.2)
        a.run("hist_four = 4", timeout=60)
        wait_for(lambda: "hist_four = 4" in history(kdir / "home"), what="the row the new daemon writes")
        assert re.search(r"store: the daemon writes \S+kiln\.db again", a.logs()), a.logs()
        assert "rw" in open_modes(new, db)
    finally:
        a.stop()


def test_a_store_no_kernel_uses_is_kept_for_the_idle_time_then_closed(kdir, xdg):
    # The next kernel on a KILN_HOME (a restart, another notebook) finds
    # its store open; one nobody comes back to is closed.
    h1, h2 = kdir / "h1", kdir / "h2"
    b = kernel(kdir, "b", xdg, home=h2, idle="3")
    try:
        daemon = daemon_of(xdg)
        a = kernel(kdir, "a", xdg, home=h1, idle="3")
        a.run("1")
        assert "rw" in open_modes(daemon, h1 / "kiln.db")
        a.stop()
        time.sleep(1)
        assert "rw" in open_modes(daemon, h1 / "kiln.db"), "closed at once"
        wait_for(lambda: not open_modes(daemon, h1 / "kiln.db"), timeout=15, what="the unused store to close")
        assert daemon_of(xdg) == daemon
        assert "rw" in open_modes(daemon, h2 / "kiln.db")
        assert "is closed" in open(glob.glob(f"{xdg}/kiln/daemon-*.sock.log")[0]).read()
        reply, _ = b.run("2")
        assert reply["content"]["status"] == "ok"
    finally:
        b.stop()


def frame(ftype, *fields):
    """A frame of FTYPE with FIELDS, (tag, bytes) each."""
    body = b"".join(struct.pack("<HI", tag, len(data)) + data for tag, data in fields)
    return struct.pack("<IHH", len(body), ftype, 0) + body


STORE_OPEN, STORE_WRITE, STORE_SYNC, STORE_READY, STORE_FAILED, STORE_SYNCED = 5, 6, 7, 8, 9, 18
TAG_PATH, TAG_KIND = 21, 44


def test_malformed_store_links_are_refused_and_the_store_serves_on(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    try:
        (sock,) = glob.glob(f"{xdg}/kiln/daemon-*.sock")
        # A write before any store is open.
        assert talk(sock, frame(STORE_WRITE, (TAG_KIND, struct.pack("<Q", 1)))) == b"eof:"
        # A KILN_HOME that is not an absolute path to a directory.
        answer = talk(sock, frame(STORE_OPEN, (TAG_PATH, b"home")))
        assert struct.unpack("<H", answer[8:10]) == (STORE_FAILED,), answer
        assert b"not a directory" in answer
        # A store opened twice on one link.
        home = str(kdir / "home").encode()
        answer = talk(sock, frame(STORE_OPEN, (TAG_PATH, home)) + frame(STORE_OPEN, (TAG_PATH, home)))
        assert answer == b"eof:" + frame(STORE_READY)
        # A write the daemon does not know is dropped, and the link still
        # answers a sync.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(sock)
        s.sendall(frame(STORE_OPEN, (TAG_PATH, home)) + frame(STORE_WRITE, (TAG_KIND, struct.pack("<Q", 99)))
                  + frame(STORE_SYNC))
        want = frame(STORE_READY) + frame(STORE_SYNCED)
        got = b""
        while len(got) < len(want) and (chunk := s.recv(4096)):
            got += chunk
        s.close()
        assert got == want
        log = open(glob.glob(f"{xdg}/kiln/daemon-*.sock.log")[0]).read()
        assert "an unknown store write 99" in log, log
        reply, _ = a.run("after_garbage = 1")
        assert reply["content"]["status"] == "ok"
        wait_for(lambda: "after_garbage = 1" in history(kdir / "home"), what="the kernel's row")
    finally:
        a.stop()
