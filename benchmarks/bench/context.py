"""What a scenario is handed: the systems, counts for the mode, the
interleaving scheduler, sanity checks, and where its figures go."""
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from . import drivers
from .router import Router
from .stats import summarize


class SanityError(AssertionError):
    """A system's output was not what the cell should have produced."""


@dataclass
class Job:
    """RUNS measurements of one system, each one call of FN (which returns a
    sample or a list of samples); WARMUP calls first, not kept."""

    label: str
    runs: int
    fn: Callable
    warmup: int = 1
    samples: list = field(default_factory=list)


class Progress:
    """One status line on a terminal; a line every few seconds otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.prefix = ""
        self.t0 = time.monotonic()

    def begin(self, index, count, title):
        self.prefix = f"[{index}/{count}] {title}"
        self.scenario_t0 = time.monotonic()
        self._emit(self.prefix, force=True)

    def update(self, what, done=None, total=None):
        text = f"{self.prefix} · {what}"
        if total:
            text += f" · {done}/{total}"
        self._emit(f"{text} · {time.monotonic() - self.scenario_t0:.0f} s")

    def end(self, status):
        took = time.monotonic() - self.scenario_t0
        line = f"{self.prefix}: {status} in {took:.1f} s (total {time.monotonic() - self.t0:.0f} s)"
        if self.tty:
            self.stream.write("\r\x1b[K" + line + "\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text):
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def _emit(self, text, force=False):
        now = time.monotonic()
        if self.tty:
            if force or now - self.last >= 0.1:
                self.last = now
                width = 120
                self.stream.write("\r\x1b[K" + text[:width])
                self.stream.flush()
        elif force or now - self.last >= 10:
            self.last = now
            self.stream.write(text + "\n")
            self.stream.flush()


class Context:
    def __init__(self, *, quick, kiln, python, paths, progress, log_dir, peer_env, ipykernel_env):
        self.quick = quick
        self.kiln_binary = kiln
        self.python = python  # kiln's sandbox venv python: the per-call peers' interpreter
        self.paths = paths
        self.progress = progress
        self.log_dir = log_dir
        self.peer_env = peer_env
        self.ipykernel_env = ipykernel_env
        self.results = []
        self.targets = []
        self.scenario = None
        self._open = []
        self._logs = 0

    # -- counts and checks ---------------------------------------------------
    def n(self, full, quick):
        """FULL in the full run, QUICK with --quick."""
        return quick if self.quick else full

    def check(self, cond, what):
        if not cond:
            raise SanityError(f"{self.scenario}: {what}")

    # -- recording -----------------------------------------------------------
    def record(self, metric, system, values, *, unit="s", better="lower", note="", baseline=None):
        """Keeps VALUES (samples) of METRIC for SYSTEM.  The ratio column of
        the table divides by the metric's baseline row: the first kiln row
        unless another says baseline=True."""
        if baseline is None:
            baseline = system.startswith("kiln") and not any(
                r["baseline"] for r in self.results if r["scenario"] == self.scenario and r["metric"] == metric)
        self.results.append({
            "scenario": self.scenario, "metric": metric, "system": system, "unit": unit, "better": better,
            "note": note, "baseline": bool(baseline), "summary": summarize(values, better),
            "values": list(values),
        })
        return self.results[-1]["summary"]

    def target(self, name, goal, measured, met, note=""):
        """A performance target beside the measured figure; MET None means
        there is nothing to measure yet."""
        self.targets.append({"scenario": self.scenario, "target": name, "goal": goal, "measured": measured,
                             "met": met, "note": note})

    # -- systems -------------------------------------------------------------
    def _log(self, name):
        self._logs += 1
        return os.path.join(self.log_dir, f"{self._logs:03d}-{name}.log")

    def _keep(self, obj):
        self._open.append(obj)
        return obj

    def release(self, obj):
        """Closes OBJ now rather than at the end of the scenario."""
        if obj in self._open:
            self._open.remove(obj)
        obj.close()

    def kiln_raw(self, *args, cpus=None):
        """kiln through the raw driver; CPUS confines the server and its
        sessions to those CPUs."""
        return self._keep(drivers.KilnRaw(self.kiln_binary, args, self._log("kiln-raw"), cpus=cpus))

    def kiln_sdk(self, *args, cpus=None):
        """kiln through the MCP SDK client; CPUS confines node, the server
        and its sessions to those CPUs."""
        return self._keep(drivers.KilnSDK(self.kiln_binary, args, self._log("kiln-sdk"), cpus=cpus))

    def kiln_http(self, *args, cpus=None, token=None):
        """kiln serving Streamable HTTP, through the raw HTTP driver; CPUS
        confines the server and its sessions to those CPUs; TOKEN, when
        given, is the bearer token it accepts."""
        return self._keep(drivers.KilnHTTP(self.kiln_binary, args, self._log("kiln-http"), cpus=cpus,
                                           token=token))

    def router(self, nodes, token):
        """nginx routing to NODES ((name, kiln_http) pairs sharing TOKEN), as
        docker/nginx/render configures it, through the raw HTTP driver."""
        return self._keep(Router(nodes, token, self._log("nginx")))

    @contextlib.contextmanager
    def pinned(self, cpus):
        """Runs the block with this thread of the suite confined to CPUS."""
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus)
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    def kilns(self, *args):
        """Both kiln drivers, raw then SDK."""
        return [self.kiln_raw(*args), self.kiln_sdk(*args)]

    def ipykernel(self, wait=True):
        k = self._keep(drivers.IPyKernel(self.ipykernel_env, self._log("ipykernel")))
        return k.wait_ready() if wait else k

    def jupyter_kernel(self, name, kernel_dirs, env, wait=True):
        """The kernel NAME of a kernelspec in KERNEL_DIRS, started with ENV
        and driven as ctx.ipykernel() is."""
        k = self._keep(drivers.IPyKernel(env, self._log(name), kernel_name=name, kernel_dirs=kernel_dirs))
        return k.wait_ready() if wait else k

    def python_per_call(self):
        return drivers.PerCall(drivers.PY, [self.python, "-c"], self.peer_env)

    def bwrap_per_call(self):
        mpl = self.peer_env["MPLCONFIGDIR"]
        argv = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
                "--proc", "/proc", "--bind", mpl, mpl, self.python, "-c"]
        return drivers.PerCall(drivers.BWRAP, argv, self.peer_env)

    def close_all(self):
        errors = []
        while self._open:
            obj = self._open.pop()
            try:
                obj.close()
            except Exception as e:  # keep closing the others
                errors.append(e)
        if errors:
            raise errors[0]

    # -- scheduling ----------------------------------------------------------
    def interleave(self, jobs, what=""):
        """Runs the jobs' warm-ups, then their measurements interleaved:
        every system's runs are spread evenly over the rounds, and each round
        goes A B C, the next C B A, so that drift in the machine's state
        falls on all systems alike.  Returns {label: samples}."""
        jobs = [j for j in jobs if j.runs > 0]
        for j in jobs:
            for _ in range(j.warmup):
                self.progress.update(f"{what}{j.label} warm-up")
                j.fn()
        total = sum(j.runs for j in jobs)
        rounds = max((j.runs for j in jobs), default=0)
        done = 0
        for r in range(rounds):
            order = jobs if r % 2 == 0 else jobs[::-1]
            for j in order:
                if (r + 1) * j.runs // rounds > r * j.runs // rounds:
                    self.progress.update(f"{what}{j.label}", done, total)
                    v = j.fn()
                    j.samples.extend(v if isinstance(v, list) else [v])
                    done += 1
        return {j.label: j.samples for j in jobs}
