#!/usr/bin/env python3
"""Build a local PEP 503 package index for the install_packages tests.

Usage:
    python3 build_index.py OUTDIR [--python PATH] [--cc CC]

Writes, under OUTDIR:

    simple/index.html                  the project list
    simple/<normalized-name>/index.html  links ../../files/<file>#sha256=<hex>
    files/<wheel or sdist>             the distributions
    manifest.json                      project, version, file, sha256, size

Every wheel is assembled by hand with zipfile (no setuptools or wheel
package).  The one binary wheel, kilntest-native, is compiled with the
system C compiler against the headers of a Python 3.12 interpreter.

Serve the result with:

    python3 -m http.server --bind 127.0.0.1 PORT --directory OUTDIR

and point pip at http://127.0.0.1:PORT/simple.  Uses the standard
library only and runs on Python 3.11 or later.
"""

import argparse
import base64
import glob
import gzip
import hashlib
import html
import io
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

# A fixed timestamp keeps the archives (and so their hashes) reproducible.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
TAR_MTIME = 315532800  # 1980-01-01T00:00:00Z

GENERATOR = "kiln-build-index 1.0"
BIG_BLOB_SIZE = 3 * 1024 * 1024
EVIL_PATH = "../../../../../../../../tmp/kilntest-escaped"
SDIST_MARKER = "/tmp/kilntest-sdist-ran"

NATIVE_SOURCE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
kilntest_add(PyObject *self, PyObject *args)
{
    PyObject *a, *b;
    if (!PyArg_ParseTuple(args, "O!O!:add", &PyLong_Type, &a, &PyLong_Type, &b))
        return NULL;
    return PyNumber_Add(a, b);
}

static PyObject *
kilntest_platform(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString("native");
}

static PyMethodDef kilntest_methods[] = {
    {"add", kilntest_add, METH_VARARGS, "add(a, b) -> a + b, for two ints."},
    {"platform", kilntest_platform, METH_NOARGS, "platform() -> 'native'."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kilntest_module = {
    PyModuleDef_HEAD_INIT, "kilntest_native",
    "A compiled test module for the kiln package installer.",
    -1, kilntest_methods,
};

PyMODINIT_FUNC
PyInit_kilntest_native(void)
{
    return PyModule_Create(&kilntest_module);
}
"""

SDIST_SETUP_PY = f'''\
"""This setup.py must never run: the installer only accepts wheels."""
with open({SDIST_MARKER!r}, "w") as marker:
    marker.write("setup.py of kilntest-sdistonly ran\\n")

from setuptools import setup

setup(name="kilntest-sdistonly", version="1.0", py_modules=[])
'''


# ---------------------------------------------------------------------------
# Names and hashes


def normalize(name):
    """Return the PEP 503 normalized form of a project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def file_stem(name):
    """Return the name as used in wheel and sdist file names (PEP 427/625)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def record_hash(data):
    """Return the RECORD hash field: sha256=<urlsafe base64, no padding>."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# ---------------------------------------------------------------------------
# Wheels


def metadata_text(name, version, summary, requires=()):
    """Return the METADATA file of a wheel (core metadata 2.1)."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    lines += [f"Requires-Dist: {req}" for req in requires]
    return "\n".join(lines) + "\n\n"


def wheel_text(tag, purelib):
    """Return the WHEEL file of a wheel."""
    return (
        "Wheel-Version: 1.0\n"
        f"Generator: {GENERATOR}\n"
        f"Root-Is-Purelib: {'true' if purelib else 'false'}\n"
        f"Tag: {tag}\n"
    )


def zip_entry(path, mode=0o644):
    """Return a ZipInfo with a fixed date and the given unix permissions."""
    info = zipfile.ZipInfo(path, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100000 | mode) << 16
    return info


def build_wheel(outdir, name, version, tag, files, summary,
                requires=(), purelib=True):
    """Write a wheel to outdir and return its file name.

    files is a list of (archive path, bytes, unix mode).  The dist-info
    METADATA, WHEEL and RECORD are added here; RECORD lists every file
    with its sha256 and size, and itself without either.
    """
    dist_info = f"{file_stem(name)}-{version}.dist-info"
    entries = list(files) + [
        (f"{dist_info}/METADATA",
         metadata_text(name, version, summary, requires).encode(), 0o644),
        (f"{dist_info}/WHEEL", wheel_text(tag, purelib).encode(), 0o644),
    ]
    record = "".join(
        f"{path},{record_hash(data)},{len(data)}\n" for path, data, _ in entries
    )
    record += f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode(), 0o644))

    filename = f"{file_stem(name)}-{version}-{tag}.whl"
    with zipfile.ZipFile(os.path.join(outdir, filename), "w") as archive:
        for path, data, mode in entries:
            archive.writestr(zip_entry(path, mode), data)
    return filename


def module_file(package, source):
    """Return a files entry for <package>/__init__.py."""
    return (f"{package}/__init__.py", source.encode(), 0o644)


# ---------------------------------------------------------------------------
# The native extension


def default_python():
    """Return the Python 3.12 interpreter to compile against.

    Prefers the newest $(pyenv root)/versions/3.12.*/bin/python3.12, then
    python3.12 on PATH.
    """
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        result = subprocess.run(["pyenv", "root"], capture_output=True,
                                text=True, check=False)
        root = result.stdout.strip() if result.returncode == 0 else None
    if root:
        pattern = os.path.join(root, "versions", "3.12.*", "bin", "python3.12")
        found = sorted(glob.glob(pattern), key=version_key)
        if found:
            return found[-1]
    found = shutil.which("python3.12")
    if found:
        return found
    sys.exit("build_index: no python3.12 found; pass --python PATH")


def version_key(path):
    """Sort key for .../versions/3.12.N/... paths: by N, numerically."""
    match = re.search(r"/3\.12\.(\d+)", path)
    return int(match.group(1)) if match else -1


def python_build_info(python):
    """Return (include dir, EXT_SUFFIX) of the given interpreter.

    Exits if it is not a CPython 3.12, since the wheel is tagged cp312.
    """
    code = ("import sys, sysconfig; print(sysconfig.get_paths()['include']); "
            "print(sysconfig.get_config_var('EXT_SUFFIX')); "
            "print('%d.%d' % sys.version_info[:2]); "
            "print(sys.implementation.name)")
    result = subprocess.run([python, "-c", code], capture_output=True,
                            text=True, check=True)
    include, suffix, version, impl = result.stdout.split("\n")[:4]
    if version != "3.12" or impl != "cpython":
        sys.exit(f"build_index: {python} is {impl} {version}, need CPython 3.12")
    if not os.path.exists(os.path.join(include, "Python.h")):
        sys.exit(f"build_index: no Python.h in {include}")
    return include, suffix


def compile_native(include, suffix, cc):
    """Compile the kilntest_native extension; return (file name, bytes).

    include and suffix are the Python 3.12 header directory and EXT_SUFFIX.
    """
    filename = "kilntest_native" + suffix
    with tempfile.TemporaryDirectory(prefix="kilntest-native-") as tmp:
        source = os.path.join(tmp, "kilntest_native.c")
        output = os.path.join(tmp, filename)
        with open(source, "w") as handle:
            handle.write(NATIVE_SOURCE)
        # No -lpython: the symbols come from the interpreter that loads it.
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-I", include,
                        source, "-o", output], check=True)
        with open(output, "rb") as handle:
            return filename, handle.read()


# ---------------------------------------------------------------------------
# The sdist


def build_sdist(outdir, name, version, summary):
    """Write <name>-<version>.tar.gz with PKG-INFO and setup.py; return it."""
    stem = f"{file_stem(name)}-{version}"
    members = [
        ("PKG-INFO", metadata_text(name, version, summary).encode()),
        ("setup.py", SDIST_SETUP_PY.encode()),
    ]
    filename = f"{stem}.tar.gz"
    path = os.path.join(outdir, filename)
    # mtime=0 on the gzip header keeps the archive reproducible.
    with open(path, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            info = tarfile.TarInfo(f"{stem}/{member}")
            info.size = len(data)
            info.mtime = TAR_MTIME
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return filename


# ---------------------------------------------------------------------------
# The packages


def build_distributions(files_dir, build_info, cc):
    """Build every test distribution; return [(project, version, file)].

    build_info is (include dir, EXT_SUFFIX) from python_build_info.
    """
    arch = platform.machine()
    native_tag = f"cp312-cp312-linux_{arch}"
    built = []

    def wheel(name, version, files, summary, requires=(), tag="py3-none-any",
              purelib=True):
        filename = build_wheel(files_dir, name, version, tag, files, summary,
                               requires, purelib)
        built.append((name, version, filename))

    wheel("kilntest-pure", "1.0",
          [module_file("kilntest_pure",
                       'VALUE = 42\n\n\ndef hello():\n    return "pure"\n')],
          "A pure Python wheel.")
    wheel("kilntest-pure", "2.0",
          [module_file("kilntest_pure",
                       'VALUE = 43\n\n\ndef hello():\n    return "pure"\n')],
          "A pure Python wheel, second version.")

    so_name, so_data = compile_native(*build_info, cc)
    wheel("kilntest-native", "1.0", [(so_name, so_data, 0o755)],
          "A compiled extension module.", tag=native_tag, purelib=False)

    built.append(("kilntest-sdistonly", "1.0",
                  build_sdist(files_dir, "kilntest-sdistonly", "1.0",
                              "Published only as an sdist.")))

    wheel("kilntest-evil", "1.0",
          [module_file("kilntest_evil", "EVIL = True\n"),
           (EVIL_PATH, b"escaped the install directory\n", 0o644)],
          "A wheel with a path-traversal member.")

    wheel("kilntest-conflict", "1.0",
          [module_file("kilntest_conflict", "CONFLICT = True\n")],
          "Requires a numpy that does not exist.", requires=["numpy>=999"])

    wheel("kilntest-dep", "1.0",
          [module_file("kilntest_dep",
                       "from kilntest_pure import VALUE\n\nDOUBLE = VALUE * 2\n")],
          "Depends on kilntest-pure 1.0.", requires=["kilntest-pure==1.0"])

    blob = random.Random(1).randbytes(BIG_BLOB_SIZE)
    wheel("kilntest-big", "1.0",
          [module_file("kilntest_big", "BLOB = 'blob.bin'\n"),
           ("kilntest_big/blob.bin", blob, 0o644)],
          "A 3 MiB wheel of incompressible data.")
    return built


# ---------------------------------------------------------------------------
# The index


def page(title, links):
    """Return a PEP 503 HTML page with one anchor per (href, text)."""
    anchors = "\n".join(
        f'    <a href="{html.escape(href)}">{html.escape(text)}</a><br/>'
        for href, text in links
    )
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.0">\n'
        f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
        f"    <h1>{html.escape(title)}</h1>\n{anchors}\n  </body>\n</html>\n"
    )


def describe(files_dir, built):
    """Return the manifest entries: project, version, file, sha256, size."""
    entries = []
    for project, version, filename in built:
        with open(os.path.join(files_dir, filename), "rb") as handle:
            data = handle.read()
        entries.append({
            "project": normalize(project),
            "version": version,
            "file": filename,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        })
    return entries


def write_index(outdir, entries):
    """Write simple/index.html and simple/<project>/index.html."""
    simple = os.path.join(outdir, "simple")
    projects = sorted({entry["project"] for entry in entries})
    for project in projects:
        links = [
            (f"../../files/{e['file']}#sha256={e['sha256']}", e["file"])
            for e in entries if e["project"] == project
        ]
        os.makedirs(os.path.join(simple, project))
        write_text(os.path.join(simple, project, "index.html"),
                   page(f"Links for {project}", links))
    write_text(os.path.join(simple, "index.html"),
               page("Simple index", [(f"{p}/", p) for p in projects]))


def write_text(path, text):
    """Write text to path as UTF-8."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def prepare(outdir):
    """Create outdir, replacing what an earlier run of this script left."""
    os.makedirs(outdir, exist_ok=True)
    for sub in ("simple", "files"):
        shutil.rmtree(os.path.join(outdir, sub), ignore_errors=True)
    manifest = os.path.join(outdir, "manifest.json")
    if os.path.exists(manifest):
        os.remove(manifest)
    files_dir = os.path.join(outdir, "files")
    os.makedirs(files_dir)
    return files_dir


def main(argv=None):
    """Parse the command line and build the index."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", help="directory to build the index in")
    parser.add_argument("--python", help="a CPython 3.12 interpreter whose "
                        "headers the native wheel is compiled against")
    parser.add_argument("--cc", default=os.environ.get("CC", "cc"),
                        help="C compiler (default: $CC or cc)")
    args = parser.parse_args(argv)

    # Check the interpreter before touching OUTDIR.
    build_info = python_build_info(args.python or default_python())
    outdir = os.path.abspath(args.outdir)
    files_dir = prepare(outdir)
    built = build_distributions(files_dir, build_info, args.cc)
    entries = describe(files_dir, built)
    write_index(outdir, entries)
    write_text(os.path.join(outdir, "manifest.json"),
               json.dumps({"projects": entries}, indent=2) + "\n")
    for entry in entries:
        print(f"{entry['file']}  {entry['size']}  {entry['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
