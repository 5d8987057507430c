"""kiln's snapshots of a session, taken and loaded in its own worker.

A session's globals are pickled in its own worker, in the jail, with
cloudpickle: functions, lambdas and classes defined in cells go by value
(plain pickle would look them up in a __main__ that a fresh worker does not
have).  Modules go by name and are imported again; /work's files go as a
tar archive.  The front never unpickles anything; a snapshot is only ever
loaded by a worker of the session that made it.
"""

import importlib
import io
import os
import types

_SNAP_MAGIC = b"KILNSNAP1\n"
# The token that stands for the session's namespace in a snapshot: the
# globals of every function defined in a cell.  Restored as the new
# worker's namespace, so that those functions see later cells' names.
_MAIN_GLOBALS = "kiln:__main__"


def _snapshot_names(ns):
    for name in list(ns):
        if name.startswith("__") and name.endswith("__"):
            continue  # __builtins__, __name__, __doc__...: a fresh worker has its own
        yield name


def _pickle(values, ns):
    import cloudpickle

    class Pickler(cloudpickle.Pickler):
        def persistent_id(self, obj):
            # cloudpickle makes this dict when it meets the first function
            # defined in a cell; until then there is none to match (and
            # None itself must not match).
            ref = self.globals_ref.get(id(ns))
            if ref is not None and obj is ref:
                return _MAIN_GLOBALS
            return None

    buf = io.BytesIO()
    Pickler(buf, protocol=5).dump(values)
    return buf.getvalue()


def snapshot(ns, fd, max_bytes, jailed):
    """Writes the session's state to FD.  Returns (size, blake2b-256 of
    what was written, lost, dropped): LOST says "name (why); ..." for
    what cannot be pickled, DROPPED names what did not fit in MAX_BYTES."""
    import hashlib
    import pickle

    values, modules, lost = {}, {}, []
    for name in _snapshot_names(ns):
        value = ns[name]
        if isinstance(value, types.ModuleType):
            modules[name] = value.__name__
        else:
            values[name] = value
    try:
        blob = _pickle(values, ns)
        sizes = None
    except BaseException:
        # One of them cannot be pickled: find which, one at a time, and
        # keep the rest (together, so that names sharing an object still
        # share it once restored).
        sizes = {}
        for name in list(values):
            try:
                sizes[name] = len(_pickle(values[name], ns))
            except BaseException as exc:
                lost.append(f"{name} ({type(values[name]).__name__}: {_reason(exc)})")
                del values[name]
        blob = _pickle(values, ns)
    dropped = []
    if len(blob) > max_bytes:
        if sizes is None:
            sizes = {name: len(_pickle(v, ns)) for name, v in values.items()}
        # The largest go first, until what is left fits.
        for name in sorted(values, key=lambda n: sizes.get(n, 0), reverse=True):
            del values[name]
            dropped.append(name)
            blob = _pickle(values, ns)
            if len(blob) <= max_bytes:
                break
    files = _pack_work(lost) if jailed else b""
    payload = _SNAP_MAGIC + pickle.dumps({"modules": modules, "values": blob, "lost": lost,
                                          "dropped": dropped, "files": files}, protocol=5)
    digest = hashlib.blake2b(payload, digest_size=32).digest()
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]
    return len(payload), digest, "; ".join(lost), ", ".join(dropped)


def _pack_work(lost):
    """/work's files as a tar archive (only in the jail: elsewhere /work is
    not the session's own).  What cannot be read is added to LOST."""
    import tarfile

    buf = io.BytesIO()
    # /work's own filesystem only: what the jail mounts inside it (kiln's
    # own files, when kiln is installed under a /work of the host) is not
    # the session's.
    dev = os.stat("/work").st_dev
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for root, dirs, names in os.walk("/work"):
            keep = []
            for d in sorted(dirs):
                path = os.path.join(root, d)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if st.st_dev == dev:
                    keep.append(d)
                    names.append(d)
            dirs[:] = keep
            for name in sorted(names):
                path = os.path.join(root, name)
                try:
                    tar.add(path, arcname=os.path.relpath(path, "/work"), recursive=False)
                except OSError as exc:
                    lost.append(f"{path} ({_reason(exc)})")
    return buf.getvalue()


def _unpack_work(files, lost):
    if not files:
        return
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(files), mode="r") as tar:
            # "data": nothing outside /work, no devices, no setuid bits.
            tar.extractall("/work", filter="data")
    except Exception as exc:
        lost.append(f"/work's files ({_reason(exc)})")
    # The files are the session's as they were, not changes its next cell
    # made: the watcher's record of their writing is dropped (and the
    # directories among them are watched from here on).
    import _kiln_watch

    _kiln_watch.changes()


def _reason(exc):
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def restore(ns, source, expected, jailed):
    """Loads a snapshot (SOURCE: its bytes, or a file descriptor to read
    it from) into the session's namespace, after checking its
    blake2b-256 against EXPECTED.  Returns (ok, message, lost): OK False
    when nothing was restored (MESSAGE says why); LOST names what was
    not, "name (why); ..."."""
    import hashlib
    import pickle

    if isinstance(source, int):
        chunks = []
        while True:
            chunk = os.read(source, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
    else:
        data = source
    if hashlib.blake2b(data, digest_size=32).digest() != expected:
        return False, "the snapshot is damaged (its hash does not match what was written)", ""
    if not data.startswith(_SNAP_MAGIC):
        return False, "the snapshot is not one kiln wrote", ""

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid):
            if pid == _MAIN_GLOBALS:
                return ns
            raise pickle.UnpicklingError("unknown persistent id")

    try:
        outer = pickle.loads(data[len(_SNAP_MAGIC):])
        modules, blob = outer["modules"], outer["values"]
        lost = list(outer.get("lost", []))
        lost += [f"{name} (over --max-snapshot)" for name in outer.get("dropped", [])]
    except Exception as exc:
        return False, f"the snapshot cannot be read: {_reason(exc)}", ""
    if jailed:
        _unpack_work(outer.get("files", b""), lost)
    for name, module in modules.items():
        try:
            ns[name] = importlib.import_module(module)
        except BaseException as exc:
            lost.append(f"{name} (import {module}: {_reason(exc)})")
    try:
        ns.update(Unpickler(io.BytesIO(blob)).load())
    except BaseException as exc:
        lost.append(f"every variable ({type(exc).__name__}: {_reason(exc)})")
    return True, "", "; ".join(lost)
