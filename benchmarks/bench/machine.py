"""The machine and the versions of everything measured, for the report."""
import json
import os
import platform
import subprocess
from importlib import metadata


def _run(argv, cwd=None):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (p.stdout or p.stderr).strip() if p.returncode == 0 else None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    return "unknown"


def _pkg(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def describe(root, kiln, sandbox_python, sdk_dir):
    commit = _run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root)
    if commit:
        changed = _run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no", "--", ".",
                        ":!benchmarks"], cwd=root)
        if changed:
            commit += " (with uncommitted changes)"
    sandbox = _run([sandbox_python, "-c", "import sys, numpy, matplotlib; "
                    "print(sys.version.split()[0], numpy.__version__, matplotlib.__version__)"])
    py, np, mpl = (sandbox or "? ? ?").split()
    try:
        with open(os.path.join(sdk_dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")) as f:
            sdk = json.load(f)["version"]
    except OSError:
        sdk = None
    bwrap = _run(["bwrap", "--version"])
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory": _mem_total(),
        "kernel": platform.release(),
        "os": _os_name(),
        "loadavg_start": loadavg(),
        "versions": {
            "kiln": _run([kiln, "--version"]),
            "kiln commit": commit,
            "Python (sandbox and peers)": py,
            "numpy": np,
            "matplotlib": mpl,
            "ipykernel": _pkg("ipykernel"),
            "jupyter_client": _pkg("jupyter_client"),
            "IPython": _pkg("ipython"),
            "pyzmq": _pkg("pyzmq"),
            "bubblewrap": bwrap.split()[-1] if bwrap else None,
            "node": _run(["node", "--version"]),
            "@modelcontextprotocol/sdk": sdk,
        },
    }
