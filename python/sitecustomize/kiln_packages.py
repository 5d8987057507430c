"""Packages installed for a session, as a cell sees them.

A cell has no network, so pip cannot run in it: the install_packages
request installs wheels outside the jail into the session's packages
directory (shown read-only at /opt/packages), and the front then asks
the worker to put that directory on sys.path before the next cell.
"""

import importlib
import re
import site
import sys

# `pip install x`, `%pip install x`, `!pip install x` (and pip3, and
# `python -m pip install`), at the start of a line of the cell.
_PIP_LINE = re.compile(
    r"^[ \t]*(?:[%!][ \t]*)?(?:(?:python3?(?:\.\d+)?[ \t]+-m[ \t]+)?pip3?)[ \t]+install\b",
    re.MULTILINE,
)

MESSAGE = (
    "packages cannot be installed from a cell: it has no network. "
    "Ask for them with the install_packages tool "
    '({"session_id": "...", "packages": ["name==version"]}); '
    "they can be imported in this session right after, without a restart."
)


class PackageInstallError(Exception):
    """A cell tried to run pip."""


def pip_in_cell(source):
    """Raises PackageInstallError when SOURCE, which did not compile, has
    a pip install command in it."""
    if "install" in source and _PIP_LINE.search(source):
        raise PackageInstallError(MESSAGE) from None


def add_site_dir(path):
    """Puts PATH (a site-packages directory) on sys.path, after the
    preinstalled packages, with its .pth files; forgets the import
    system's record of what it did not find."""
    if path not in sys.path:
        site.addsitedir(path)
    importlib.invalidate_caches()
