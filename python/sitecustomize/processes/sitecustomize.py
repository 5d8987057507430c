"""Loaded by every Python program a jailed session starts (the worker puts
this folder on PYTHONPATH): it tells pip's users at once that the session
has no network.

The worker's environment already keeps pip off the network
(PIP_NO_INDEX=1, PIP_RETRIES=0), so pip never waits on a DNS lookup that
cannot succeed.  This module adds the why and the what instead of pip's
"No matching distribution found": ``pip install NAME`` (or ``python -m
pip install NAME``) of a package that is not installed fails before pip
even starts, saying that there is no network and which packages there
are; any other pip command that installs or downloads and fails gets the
same note after pip's own errors.

Any other program is left alone, and cheaply: one look at sys.orig_argv,
nothing imported.
"""

import os
import sys

# pip's commands that fetch packages from an index.
_FETCHING = {"install", "download", "wheel", "index", "search"}
# Options of `pip install` that change nothing about where packages come
# from: a command with only these is checked before pip starts.
_HARMLESS = {"-q", "--quiet", "-v", "--verbose", "-U", "--upgrade", "--user", "--pre",
             "--no-cache-dir", "--break-system-packages", "--no-input", "--disable-pip-version-check"}
# A requirement naming a package from an index: name, extras, version.
_REQUIREMENT = r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([<>=!~].*)?"
# pip's scripts.
_PIP_SCRIPTS = {"pip", "pip3", f"pip3.{sys.version_info[1]}"}


def _pip_args():
    """pip's own arguments when this process is pip (its script, or
    python -m pip), else None."""
    argv = getattr(sys, "orig_argv", None) or []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return argv[i + 2:] if argv[i + 1:i + 2] == ["pip"] else None
        if arg in ("-c", "-"):
            return None
        if arg.startswith("-"):
            # Options that take a value as the next argument.
            i += 2 if arg in ("-W", "-X", "--check-hash-based-pycs") else 1
            continue
        return argv[i + 1:] if os.path.basename(arg) in _PIP_SCRIPTS else None
    return None


def installed():
    """{normalised name: "Name version"} of every installed distribution."""
    from importlib import metadata

    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(_normalise(name), f"{name} {dist.version}")
    return found


def _normalise(name):
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _note(missing=()):
    have = installed()
    what = ", ".join(missing) if missing else "packages"
    return (
        f"ERROR: there is no network in this session: pip cannot download {what}.\n"
        "Ask for it with the install_packages tool, which installs wheels into this session "
        "from outside it (no restart needed).\n"
        "The packages installed here are all there are: "
        + ", ".join(have[k] for k in sorted(have))
        + ".\n"
    )


def _check_install(args):
    """Fails at once when `pip install ARGS` asks only for packages by
    name and one of them is not installed."""
    import re

    names = []
    for arg in args:
        if arg.startswith("-"):
            if arg not in _HARMLESS:
                return
            continue
        m = re.fullmatch(_REQUIREMENT, arg)
        if m is None:
            return
        names.append(m.group(1))
    if not names:
        return
    have = installed()
    missing = [n for n in names if _normalise(n) not in have]
    if missing:
        sys.stderr.write(_note(missing))
        sys.stderr.flush()
        # Site initialisation cannot end the process with SystemExit.
        os._exit(1)


def _note_on_failure():
    """Adds the note when pip ends with a failure."""
    exit = sys.exit

    def pip_exit(status=None):
        if status not in (None, 0):
            try:
                sys.stderr.write(_note())
            except Exception:
                pass
        exit(status)

    sys.exit = pip_exit


def _main():
    args = _pip_args()
    if not args:
        return
    command = next((a for a in args if not a.startswith("-")), None)
    if command not in _FETCHING:
        return
    if command == "install" and args[0] == "install":
        _check_install(args[1:])
    _note_on_failure()


_main()
