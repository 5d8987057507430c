"""The kiln daemon (kernel/daemon): kernels take their workers from zygotes
it keeps, shared by kernels started with the same options.

Each test that watches the daemon itself gives its kernels a runtime
directory of its own (XDG_RUNTIME_DIR), so that it starts, sees and stops
a daemon no other test uses.
"""

import glob
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import KILN_BIN, Kernel, running


def procs():
    """{pid: (comm, ppid, cmdline)} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = st[st.index("(") + 1 : st.rindex(")")]
        ppid = int(st[st.rindex(")") + 2 :].split()[1])
        out[int(d)] = (comm, ppid, cmd)
    return out


def results(msgs):
    """The text/plain of each execute_result among iopub messages MSGS."""
    return [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]


def children(pid, comm):
    return sorted(p for p, (c, pp, _) in procs().items() if pp == pid and c == comm)


def daemon_of(xdg):
    """The pid of the daemon serving under XDG, or None."""
    found = [p for p, (c, _, cmd) in procs().items() if c == "kiln-daemon" and f"--socket {xdg}/" in cmd]
    assert len(found) <= 1, found
    return found[0] if found else None


def wait_for(cond, timeout=15, what="the condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def xdg(tmp_path):
    d = tmp_path / "xdg"
    d.mkdir(mode=0o700)
    yield str(d)
    pid = daemon_of(str(d))
    if pid:
        os.kill(pid, signal.SIGKILL)


def kernel(tmp_path, name, xdg, *extra, home=None, idle="30"):
    return Kernel(tmp_path / name, *extra, home=home or tmp_path / "home",
                  env={"XDG_RUNTIME_DIR": xdg, "KILN_DAEMON_IDLE": idle})


@pytest.fixture
def kdir(tmp_path):
    for n in ("a", "b", "c"):
        (tmp_path / n).mkdir()
    return tmp_path


def test_kernels_with_the_same_options_share_one_zygote_of_the_daemon(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    b = kernel(kdir, "b", xdg)
    try:
        daemon = daemon_of(xdg)
        assert daemon, "no daemon was started"
        # One zygote, the daemon's; none in either kernel.
        assert len(children(daemon, "kiln-zygote")) == 1
        assert children(a.proc.pid, "kiln-zygote") == children(b.proc.pid, "kiln-zygote") == []
        ra, _ = a.run("x = 'a'; x")
        rb, _ = b.run("x = 'b'; x")
        assert ra["content"]["status"] == rb["content"]["status"] == "ok"
        # Sessions of their own: each kernel sees its own x.
        _, msgs = a.run("x")
        assert results(msgs) == ["'a'"]
        # Workers are the daemon's children (their inits), none the kernels'.
        assert children(a.proc.pid, "kiln-init") == []
        assert len(children(daemon, "kiln-init")) >= 2
    finally:
        b.stop()
        a.stop()


def test_the_second_kernel_starts_without_starting_an_interpreter(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    try:
        zygotes = children(daemon_of(xdg), "kiln-zygote")
        b = kernel(kdir, "b", xdg)
        try:
            assert children(daemon_of(xdg), "kiln-zygote") == zygotes
            reply, _ = b.run("1 + 1")
            assert reply["content"]["status"] == "ok"
        finally:
            b.stop()
    finally:
        a.stop()


def test_different_options_get_a_zygote_of_their_own(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    b = kernel(kdir, "b", xdg, "--memory", "512M")
    try:
        assert len(children(daemon_of(xdg), "kiln-zygote")) == 2
        reply, _ = b.run("1 + 1")
        assert reply["content"]["status"] == "ok"
    finally:
        b.stop()
        a.stop()


def test_a_killed_kernels_workers_end_with_it_and_others_run_on(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    b = kernel(kdir, "b", xdg)
    try:
        daemon = daemon_of(xdg)
        c = kernel(kdir, "c", xdg)
        c.run("import time")
        # c's worker: the init it holds a pidfd of (not the daemon's spare).
        mine = pidfd_targets(c.proc.pid) & set(children(daemon, "kiln-init"))
        assert len(mine) == 1
        others = pidfd_targets(a.proc.pid) | pidfd_targets(b.proc.pid)
        c.client.execute("while True: pass")
        time.sleep(0.5)
        c.proc.kill()
        c.proc.wait()
        wait_for(lambda: not (set(children(daemon, "kiln-init")) & mine), what="c's workers to end")
        c.stop()
        reply, _ = b.run("2 + 2")
        assert reply["content"]["status"] == "ok"
        assert set(children(daemon, "kiln-init")) >= others
    finally:
        b.stop()
        a.stop()


def test_the_daemon_exits_after_its_idle_time_and_removes_its_socket(kdir, xdg):
    a = kernel(kdir, "a", xdg, idle="1")
    daemon = daemon_of(xdg)
    zygote = children(daemon, "kiln-zygote")[0]
    sock = glob.glob(f"{xdg}/kiln/daemon-*.sock")
    assert len(sock) == 1
    a.stop()
    wait_for(lambda: daemon_of(xdg) is None, what="the daemon to exit")
    assert not os.path.exists(sock[0])
    wait_for(lambda: not os.path.exists(f"/proc/{zygote}"), timeout=5, what="its zygote to end")


def test_the_socket_is_the_users_alone(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    try:
        (sock,) = glob.glob(f"{xdg}/kiln/daemon-*.sock")
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(f"{xdg}/kiln").st_mode) == 0o700
    finally:
        a.stop()


def config_frame():
    """A frame that is not a configuration of this build (type 3, one field
    of the wrong size)."""
    field = struct.pack("<HI", 26, 3) + b"abc"
    return struct.pack("<IHH", len(field), 3, 0) + field


TALK = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
got = b""
try:
    # A refused peer's connection may be closed before it sends.
    s.sendall(bytes.fromhex(sys.argv[2]))
    while chunk := s.recv(65536):
        got += chunk
except (BrokenPipeError, ConnectionResetError):
    pass
sys.stdout.buffer.write(b"eof:" + got)
"""


def talk(path, data, uid=None):
    """Connects to PATH (as UID, in a process of its own), sends DATA and
    returns what comes back before the daemon closes the connection."""
    ids = {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}
    # The system's Python: another uid may not be able to reach this one.
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    p = subprocess.run([python, "-c", TALK, path, data.hex()], capture_output=True, timeout=30, **ids)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
def test_another_uid_is_refused_even_where_the_socket_lets_it_in(tmp_path):
    # A daemon at a path anyone can reach, the socket opened to all: the
    # modes are the first guard, the peer's uid is the second.
    d = tempfile.mkdtemp(prefix="kiln-daemon-test-")
    os.chmod(d, 0o755)
    sock = os.path.join(d, "daemon.sock")
    p = subprocess.Popen([KILN_BIN, "daemon", "--socket", sock, "--idle-exit", "30"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(sock), what="the socket")
        os.chmod(sock, 0o666)
        # A configuration of another build gets its refusal from the
        # daemon when the peer is the user...
        answer = talk(sock, config_frame())
        assert answer.startswith(b"eof:") and b"not of this build" in answer
        # ...and nothing at all when it is another uid.
        assert talk(sock, config_frame(), uid=65534) == b"eof:"
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


def test_garbage_from_a_peer_closes_its_connection_and_the_daemon_serves_on(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    try:
        (sock,) = glob.glob(f"{xdg}/kiln/daemon-*.sock")
        # A header announcing a frame far past the limit, then junk.
        assert talk(sock, struct.pack("<IHH", 1 << 30, 1, 0) + b"x" * 64) == b"eof:"
        # A spawn request before any configuration.
        assert talk(sock, struct.pack("<IHH", 0, 1, 0)) == b"eof:"
        # A source to compile before any configuration.
        assert talk(sock, struct.pack("<IHH", 0, 2, 0)) == b"eof:"
        # A compile link's configuration of another build is refused in
        # the helper's words (FRAME_COMPILER_FAILED).
        bad = config_frame()
        answer = talk(sock, bad[:4] + struct.pack("<H", 4) + bad[6:])
        assert answer.startswith(b"eof:") and b"not of this build" in answer
        assert struct.unpack("<H", answer[8:10]) == (17,)
        b = kernel(kdir, "b", xdg)
        try:
            reply, _ = b.run("1 + 1")
            assert reply["content"]["status"] == "ok"
        finally:
            b.stop()
        reply, _ = a.run("3 + 3")
        assert reply["content"]["status"] == "ok"
    finally:
        a.stop()


def test_a_cell_cannot_reach_the_daemon(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    try:
        (sock,) = glob.glob(f"{xdg}/kiln/daemon-*.sock")
        code = (
            "import socket, errno\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            f"    s.connect({sock!r}); r = 'connected'\n"
            "except OSError as e:\n"
            "    r = errno.errorcode[e.errno]\n"
            "r"
        )
        _, msgs = a.run(code)
        assert results(msgs) == [
            "'ENOENT'"
        ]
    finally:
        a.stop()



def test_a_kernel_whose_daemon_died_gets_a_new_one_and_says_its_state_was_lost(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    try:
        a.run("x = 1")
        old = daemon_of(xdg)
        inits = children(old, "kiln-init")
        os.kill(old, signal.SIGKILL)
        # The workers end with their daemon (their inits' parent-death
        # signal), and the kernel sees it through their status pipes.
        wait_for(lambda: not any(running(p) for p in inits), what="the workers to end")
        time.sleep(0.5)
        reply, _ = a.run("x", timeout=60)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "NameError"
        assert "fresh interpreter" in reply["content"]["traceback"][-1]
        reply, _ = a.run("y = 2; y", timeout=60)
        assert reply["content"]["status"] == "ok"
        new = daemon_of(xdg)
        assert new and new != old
    finally:
        a.stop()


def test_standalone_starts_a_zygote_of_the_kernels_own(kdir, xdg):
    a = kernel(kdir, "a", xdg, "--standalone")
    try:
        assert len(children(a.proc.pid, "kiln-zygote")) == 1
        assert daemon_of(xdg) is None
        _, msgs = a.run("6 * 7")
        assert results(msgs) == ["42"]
    finally:
        a.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only kiln running as root makes cgroups")
def test_a_kernel_on_the_daemon_makes_no_cgroups_and_names_the_daemons(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    try:
        daemon = daemon_of(xdg)
        theirs = glob.glob(f"/sys/fs/cgroup/*/kiln-{daemon}") + glob.glob(f"/sys/fs/cgroup/kiln-{daemon}")
        if not theirs:
            pytest.skip("the daemon found no cgroups to use on this host")
        assert glob.glob(f"/sys/fs/cgroup/*/kiln-{a.proc.pid}") + glob.glob(f"/sys/fs/cgroup/kiln-{a.proc.pid}") == []
        banner = wait_for(lambda: [l for l in a.logs().splitlines() if "protections:" in l], what="the banner")
        # The daemon's limits, as its zygote words them, not "unavailable".
        assert "cgroups: cgroup v" in banner[0] and "memory" in banner[0], banner[0]
    finally:
        a.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only kiln running as root limits memory with cgroups")
def test_a_kernel_on_the_daemon_says_its_session_ran_out_of_memory(kdir, xdg):
    # The cgroups are the daemon's: their counters reach the kernel with
    # the worker, so the kernel can tell a kill for memory from any other.
    a = kernel(kdir, "a", xdg, "--memory", "256M")
    try:
        reply, msgs = a.run("b = bytearray(2 << 30)", timeout=120)
        assert reply["content"]["status"] == "error"
        errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
        assert errors and "ran out of memory" in errors[0]["evalue"], errors
        assert "256 MiB" in errors[0]["evalue"]
        reply, _ = a.run("1 + 1")
        assert reply["content"]["status"] == "ok"
    finally:
        a.stop()


def pidfd_targets(pid):
    """The pids that process PID holds pidfds of (a kernel on the daemon
    holds one of its worker's init)."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                m = re.search(r"^Pid:\s+(\d+)", f.read(), re.M)
        except OSError:
            continue
        if m:
            out.add(int(m.group(1)))
    return out


def test_the_daemon_keeps_a_spare_worker_and_the_next_kernel_takes_it(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    try:
        a.run("1")
        daemon = daemon_of(xdg)
        mine = pidfd_targets(a.proc.pid)
        assert len(mine & set(children(daemon, "kiln-init"))) == 1
        spare = wait_for(lambda: [p for p in children(daemon, "kiln-init") if p not in mine],
                         what="a spare worker")
        assert len(spare) == 1
        b = kernel(kdir, "b", xdg)
        try:
            reply, _ = b.run("x = 1; x")
            assert reply["content"]["status"] == "ok"
            # The second kernel's worker is the spare; another is made.
            assert spare[0] in pidfd_targets(b.proc.pid)
            taken = mine | pidfd_targets(b.proc.pid)
            wait_for(lambda: [p for p in children(daemon, "kiln-init") if p not in taken], what="a new spare")
        finally:
            b.stop()
    finally:
        a.stop()


def test_a_spare_that_dies_is_forgotten_and_the_next_kernel_gets_a_worker(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    try:
        a.run("1")
        daemon = daemon_of(xdg)
        mine = pidfd_targets(a.proc.pid)
        (spare,) = wait_for(lambda: [p for p in children(daemon, "kiln-init") if p not in mine],
                            what="a spare worker")
        os.kill(spare, signal.SIGKILL)
        wait_for(lambda: not running(spare), what="the spare to end")
        b = kernel(kdir, "b", xdg)
        try:
            _, msgs = b.run("6 * 7")
            assert results(msgs) == ["42"]
            assert spare not in pidfd_targets(b.proc.pid)
        finally:
            b.stop()
        reply, _ = a.run("2")
        assert reply["content"]["status"] == "ok"
    finally:
        a.stop()


def test_the_daemons_compile_helper_is_started_again_when_it_dies(kdir, xdg):
    a = kernel(kdir, "a", xdg)
    try:
        a.run("def first_cached():\n    return 1")
        wait_for(lambda: cache_stats(kdir / "home")["entries"] >= 1, what="the first cell in the cache")
        (helper,) = children(daemon_of(xdg), "kiln-compiler")
        os.kill(helper, signal.SIGKILL)
        wait_for(lambda: not running(helper), what="the helper to end")
        # The kernel reconnects after its wait; the daemon starts a new
        # helper, and later cells fill the cache again.
        def cached_again():
            a.run("def second_cached():\n    return 2")
            return cache_stats(kdir / "home")["entries"] >= 2
        wait_for(cached_again, timeout=30, what="a cell cached by a new helper")
        assert [p for p in children(daemon_of(xdg), "kiln-compiler") if p != helper]
    finally:
        a.stop()


def test_spare_directories_of_a_daemon_that_is_gone_are_removed(kdir, xdg):
    sessions = kdir / "home" / "packages" / "sessions"
    sessions.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = sessions / f"spare-{gone.pid}-0"
    live = sessions / f"spare-{os.getpid()}-0"
    stale.mkdir()
    live.mkdir()
    a = kernel(kdir, "a", xdg)
    try:
        wait_for(lambda: not stale.exists(), what="the stale spare's directory to go")
        assert live.exists(), "a live process's directory was removed"
    finally:
        a.stop()


def cache_stats(home):
    p = subprocess.run([KILN_BIN, "cache", "stats", "--home", str(home)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return {k: int(v) for k, v in (line.split()[:2] for line in p.stdout.splitlines()
                                   if line.split()[:1] and line.split()[0] in ("entries", "hits", "misses"))}


def test_kernels_on_the_daemon_share_its_compile_helper_and_hit_the_code_cache(kdir, xdg):
    # The first run of a cell misses the cache and the daemon's helper
    # compiles it; the same cell in another kernel is then a hit.
    cell = "def cached_f(n):\n    return sum(i * i for i in range(n))\ncached_f(10)"
    a = kernel(kdir, "a", xdg)
    try:
        reply, _ = a.run(cell)
        assert reply["content"]["status"] == "ok"
        wait_for(lambda: cache_stats(kdir / "home")["entries"] >= 1, what="the helper's code in the cache")
        helpers = children(daemon_of(xdg), "kiln-compiler")
        assert len(helpers) == 1, "the daemon holds one compile helper"
        assert children(a.proc.pid, "kiln-compiler") == []
        # The first kernel's link came while the zygote still started: the
        # zygote's frames are not the compile link's.
        assert "compile helper" not in a.logs(), a.logs()
        b = kernel(kdir, "b", xdg)
        try:
            before = cache_stats(kdir / "home")
            _, msgs = b.run(cell)
            assert results(msgs) == ["285"]
            after = wait_for(lambda: (s := cache_stats(kdir / "home"))["hits"] > before["hits"] and s,
                             what="a cache hit")
            assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]
            assert children(daemon_of(xdg), "kiln-compiler") == helpers
        finally:
            b.stop()
    finally:
        a.stop()


def userns_works():
    try:
        return subprocess.run(["unshare", "-Ur", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not userns_works(), reason="needs `unshare -Ur` (user namespaces) to make a host without pid namespaces")
@pytest.mark.parametrize("mode", [[], ["--standalone"]], ids=["daemon", "standalone"])
def test_a_host_that_cannot_build_the_jail_gets_a_refusal_not_a_kernel(tmp_path, xdg, mode):
    # In a user namespace of its own that allows no pid namespace, the jail
    # cannot be built.  A kernel on the daemon tries the namespaces while it
    # starts; it must still refuse before it serves, as a standalone one does.
    from jupyter_client.connect import write_connection_file
    cf, _ = write_connection_file(str(tmp_path / "conn.json"), key=b"k")
    limit = 'echo 0 > /proc/sys/user/max_pid_namespaces && exec "$@"'
    env = dict(os.environ, XDG_RUNTIME_DIR=xdg, KILN_HOME=str(tmp_path / "home"), KILN_DAEMON_IDLE="5")
    try:
        p = subprocess.run(["unshare", "-Ur", "sh", "-c", limit, "sh", KILN_BIN, "jupyter", "kernel", "-f", cf,
                            *mode], env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the kernel served on a host where its jail cannot be built")
    assert p.returncode == 1, p.stderr
    assert "cannot sandbox workers on this host: namespaces:" in p.stderr
    assert "--insecure-no-sandbox" in p.stderr


def test_kiln_daemon_says_its_usage_and_refuses_what_it_does_not_know():
    p = subprocess.run([KILN_BIN, "daemon", "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("Usage: kiln daemon")
    p = subprocess.run([KILN_BIN, "daemon", "--bogus"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "unexpected argument '--bogus'" in p.stderr
    p = subprocess.run([KILN_BIN, "daemon", "--idle-exit", "soon"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "expected seconds" in p.stderr
