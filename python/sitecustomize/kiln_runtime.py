"""kiln's Python side: loaded into the zygote, inherited by every worker.

The C kernel calls these functions:

* ``zygote_init(site_packages, preload)`` once in the zygote, before any fork:
  adds the sandbox's packages, imports the preload list, warms matplotlib and
  freezes the heap so forks share it.
* ``worker_init(environment)`` once in each jailed worker: the fixed
  environment, fresh random streams, signal handlers, stdio and ``__main__``.
* ``run_cell(source, cell_no, max_result)`` for every cell, with notebook
  semantics: the last expression's value is the result, top-level ``await``
  works (on one event loop that lives as long as the session), tracebacks
  show the cell's own lines and none of kiln's frames, and the front's
  interrupt only ever stops the cell's own code;
* ``changed_files()`` after a shell command the worker ran (kernel/py/shell.c):
  the files it wrote under /work, reported as a cell's are.

This module never runs in a process that serves more than one session.
"""

import _signal
import ast
import asyncio
import builtins
import gc
import importlib
import io
import linecache
import os
import signal
import site
import sys
import threading
import time
import traceback
import types
import warnings

import kiln_builtins

# How run_cell reports a cell's end; the values match the C enum cell_status.
# EXITED: the cell raised SystemExit with a success status (exit(),
# sys.exit(0), raise SystemExit).
OK, ERROR, INTERRUPTED, EXITED = 0, 1, 2, 3

_CO_COROUTINE = 0x0080
_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
# Where a cell with top-level await leaves its last expression's value:
# module code can't return one.
_RESULT = "__kiln_result__"

_main = None
_jailed = False
_loop = None
# _signal's own functions and plain ints: signal's wrappers convert
# every result to an enum, which costs more than the system calls.
_SIGINT = (_signal.SIGINT,)
# True only while a cell's own code runs: the one place the front's
# interrupt may land.
_in_cell = False


def zygote_init(site_packages, preload):
    """Returns (preloaded, failed): the names imported and, for each
    module that could not be, "name: reason"."""
    site.addsitedir(site_packages)
    os.environ["MPLBACKEND"] = "module://kiln_mpl_backend"
    preloaded, failed = [], []
    for name in [n.strip() for n in preload.split(",") if n.strip()]:
        try:
            importlib.import_module(name)
            preloaded.append(name)
        except Exception as exc:  # a missing package is logged, not fatal
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    if "matplotlib" in sys.modules:
        _warm_matplotlib()
    kiln_builtins.install_site()
    import kiln_capture

    kiln_capture.install()
    gc.collect()
    gc.freeze()
    return ",".join(preloaded), "; ".join(failed)


def _warm_matplotlib():
    import matplotlib

    matplotlib.use("module://kiln_mpl_backend")
    # Loading the font list and drawing text once moves that cost (and
    # the font cache's file I/O) into the zygote, shared by every fork.
    from matplotlib import font_manager

    font_manager.fontManager.findfont("DejaVu Sans")
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(1, 1))
        fig.text(0.5, 0.5, "kiln")
        fig.canvas.draw()
        plt.close(fig)


def worker_init(environment, jailed, max_image_side):
    global _main, _jailed
    import kiln_capture

    kiln_capture.MAX_INLINE = max_image_side
    # /work is the session's own only inside the jail: without it there is
    # nothing of the session's to report.
    _jailed = bool(jailed)
    if _jailed:
        # Before any user code, so that no change goes unseen: the files a
        # cell changes are then known from inotify events, not from a walk
        # of /work after every cell.
        import _kiln_watch

        _kiln_watch.start("/work")
    # A fixed environment: nothing of the host's or kiln's reaches a cell.
    os.environ.clear()
    os.environ.update(environment)
    # python, python3 and pip on PATH are the session's own interpreter
    # and packages (sys.executable is the venv's python3), never the
    # host's /usr/bin/python3.
    venv_bin = os.path.dirname(sys.executable)
    os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    os.environ["VIRTUAL_ENV"] = os.path.dirname(venv_bin)
    # os.cpu_count() counts the host's CPUs; the session may run on fewer
    # (the jail restricts its affinity to its --cpus quota), and pools
    # sized by it (multiprocessing, concurrent.futures) should see those.
    os.cpu_count = _cpu_count
    # nproc (and OpenMP code a cell loads, such as scikit-learn's) goes
    # by OMP_NUM_THREADS: the session's CPUs, one thread each.  BLAS
    # stays at one thread (OPENBLAS_NUM_THREADS, MKL_NUM_THREADS): numpy's
    # was started in the zygote, which must not have threads.
    os.environ["OMP_NUM_THREADS"] = str(_cpu_count() or 1)
    if _jailed:
        _offline_pip()
    # Forks of one zygote share numpy's global generator state; random was
    # reseeded by PyOS_AfterFork_Child.  Two sessions must never produce
    # the same stream.
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed()
    _forget_host_paths()
    signal.signal(signal.SIGINT, _on_sigint)
    # Blocked outside the cell's code; run_cell unblocks it.
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _SIGINT)
    asyncio.set_event_loop_policy(_SessionLoopPolicy())
    # With no Python handlers installed these would kill the worker
    # instead of raising OSError in the cell.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = _stream(1)
    sys.stderr = _stream(2)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    # SIGINT is blocked here, so the thread never takes the cell's.
    _start_flusher()
    kiln_builtins.install_input(_flush)
    _main = types.ModuleType("__main__")
    _main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = _main
    sys.argv = [""]
    # A worker is often started before its session is asked for: pay the
    # copy-on-write faults of the first compile and run now, off the
    # first cell's path.
    _execute("_ = 1\n_", "<warm-up>", {})
    repr(_error(ValueError("warm-up"), "<warm-up>"))


def _offline_pip():
    """pip in a session without network: it never tries the network (a
    DNS lookup that cannot succeed, retried for seconds), and every Python
    the session starts loads processes/sitecustomize.py, which says why
    an install fails and lists the packages there are.  No pip
    configuration of the host's applies.  Those Pythons also see the
    packages install_packages installed for the session (the worker's
    own sys.path gets them from the front, kiln_packages)."""
    os.environ.update(
        PIP_NO_INDEX="1",
        PIP_RETRIES="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PIP_CONFIG_FILE=os.devnull,
        PYTHONPATH=os.path.join(os.path.dirname(__file__), "processes") + os.pathsep + "/opt/packages",
    )


def _cpu_count():
    """The number of CPUs the session may run on, as nproc counts them."""
    try:
        return len(os.sched_getaffinity(0)) or None
    except OSError:
        return _host_cpu_count()


_host_cpu_count = os.cpu_count


def _forget_host_paths():
    # matplotlib remembers the configuration and cache directories it
    # found in the zygote, under the host's KILN_HOME; inside the jail it
    # must find them again (MPLCONFIGDIR, under /tmp), or a cell would
    # read the host's path back.  They are memoised in closures.
    mpl = sys.modules.get("matplotlib")
    for name in ("get_configdir", "get_cachedir"):
        f = getattr(mpl, name, None)
        cells = dict(zip(getattr(getattr(f, "__code__", None), "co_freevars", ()),
                         getattr(f, "__closure__", None) or ()))
        if "called" in cells and "ret" in cells:
            cells["called"].cell_contents = False
            cells["ret"].cell_contents = None


def _on_sigint(signum, frame):
    # The front interrupts the cell's code at its deadline.  The same
    # signal arriving while kiln packs up a cell that has already ended
    # (through a thread of the cell's, which does not block it, or after
    # waiting blocked until the next cell) is too late and is dropped:
    # raised there, it would lose the cell's output or stop the next cell.
    if _in_cell:
        raise KeyboardInterrupt


class _SessionLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """Makes the session's loop the main thread's current loop, as a
    notebook kernel's loop is: outside a coroutine, get_event_loop() and
    ensure_future() use the loop that the cells' await runs on, even
    before the first cell with await.  A loop that a cell sets itself
    (asyncio.run does, for its own run) is current until it is unset."""

    _own = None

    def get_event_loop(self):
        if self._own is None and threading.current_thread() is threading.main_thread():
            return _session_loop()
        return super().get_event_loop()

    def set_event_loop(self, loop):
        super().set_event_loop(loop)
        if threading.current_thread() is threading.main_thread():
            self._own = loop


def _session_loop():
    """The session's one event loop, made on first use and kept for the
    life of the worker, so that a task started in one cell can be awaited
    in a later one."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop


def _stream(fd):
    # Buffered, flushed at the end of every cell; fd-level writes by C code
    # and subprocesses go straight to the same pipe.
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, 65536), encoding="utf-8", errors="backslashreplace", line_buffering=False
    )


def _flush():
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass


# Set while a cell runs: what it prints reaches the front within
# _FLUSH_EVERY seconds, even when it then sits in C code, without the cost
# of a write per line.
_cell_running = threading.Event()
_FLUSH_EVERY = 0.1


def _flusher():
    while True:
        _cell_running.wait()
        while _cell_running.is_set():
            time.sleep(_FLUSH_EVERY)
            _flush()


def _start_flusher():
    # Python warns that fork() in a process with threads may deadlock; this
    # thread holds no lock across a fork that the child needs, and a plain
    # interpreter would not warn, so neither does a cell.
    warnings.filterwarnings("ignore", message=r"This process .* is multi-threaded, use of fork",
                            category=DeprecationWarning)
    threading.Thread(target=_flusher, name="kiln-flush", daemon=True).start()


def _cell_filename(cell_no):
    return f"<cell {cell_no}>"


def _compile(source, filename):
    """Returns (body, expr, is_async).  Raises SyntaxError.

    A cell without top-level await is exec'd as BODY, then EXPR (None when
    the cell does not end in an expression) is eval'd for the result.  A
    cell with await is one coroutine, BODY, which leaves the value of its
    last expression in the _RESULT global; EXPR is None.
    """
    tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST | _FLAGS)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body.pop()
    body = compile(tree, filename, "exec", _FLAGS)
    expr = None if last is None else compile(ast.Expression(last.value), filename, "eval", _FLAGS)
    if not (body.co_flags | (expr.co_flags if expr else 0)) & _CO_COROUTINE:
        return body, expr, False
    # One coroutine for the whole cell: its last expression runs in the
    # same task as the rest, on the session's loop, as a notebook's does.
    if last is not None:
        target = ast.copy_location(ast.Name(_RESULT, ast.Store()), last)
        tree.body.append(ast.copy_location(ast.Assign([target], last.value), last))
    return compile(tree, filename, "exec", _FLAGS), None, True


# The filename the compile helper gives every cell: the cache's key does
# not hold the cell's number, so a hit is given its own name on load.
_CACHE_FILENAME = "<cell>"


def compiler_init():
    """In the compile helper, before its jail: imports what a compile may
    reach for (no file can be opened afterwards) and returns what decides
    compiled code besides the source: (magic, optimize, flags, runtime),
    RUNTIME a digest of this file, whose _compile makes the cells' form."""
    import hashlib
    import importlib.util
    import marshal
    import unicodedata  # non-ASCII identifiers are NFKC-normalised with it

    unicodedata.normalize("NFKC", "kiln")
    marshal.dumps(compile("(lambda: 0)()", _CACHE_FILENAME, "exec"))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        compile("'\\d'", _CACHE_FILENAME, "exec")
    with open(__file__, "rb") as f:
        runtime = hashlib.blake2b(f.read(), digest_size=8).hexdigest()
    return importlib.util.MAGIC_NUMBER, sys.flags.optimize, _FLAGS, runtime


def compile_for_cache(source):
    """In the compile helper: the marshalled (body, expr, is_async) of
    SOURCE exactly as _compile makes it, or a str saying why there is
    none.  A cell that does not compile, or whose compile warns, is left
    to its worker, whose own compile shows the error or the warning."""
    import marshal

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            body, expr, is_async = _compile(source, _CACHE_FILENAME)
        except BaseException as exc:  # SyntaxError, RecursionError, MemoryError...
            return f"{type(exc).__name__}: not cached"
    if caught:
        return "the compile warned: not cached"
    return marshal.dumps((body, expr, is_async))


def _refile(code, filename):
    """CODE, and every code object inside it, with co_filename FILENAME."""
    consts = tuple(_refile(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _load(compiled, filename):
    """The (body, expr, is_async) the compile helper made, named for this
    cell, or None when the bytes are not that."""
    import marshal

    try:
        body, expr, is_async = marshal.loads(compiled)
        if not isinstance(body, types.CodeType) or not (expr is None or isinstance(expr, types.CodeType)):
            return None
        return _refile(body, filename), (None if expr is None else _refile(expr, filename)), bool(is_async)
    except Exception:
        return None


def _execute(source, filename, ns, compiled=None):
    """Runs a cell's source in NS; returns its last expression's value.
    COMPILED: the cache's code for SOURCE, used instead of compiling."""
    loaded = _load(compiled, filename) if compiled is not None else None
    if loaded is None:
        try:
            loaded = _compile(source, filename)
        except SyntaxError:
            # `pip install x` (or %pip, !pip) is no Python: say at once
            # how packages are installed instead.
            import kiln_packages

            kiln_packages.pip_in_cell(source)
            raise
    body, expr, is_async = loaded
    if not is_async:
        eval(body, ns)
        return None if expr is None else eval(expr, ns)
    loop = _session_loop()
    task = loop.create_task(eval(body, ns))
    try:
        loop.run_until_complete(task)
        return ns.get(_RESULT)
    except BaseException as exc:
        if not task.done():
            # Stopped while the cell awaited: the exception has only the
            # loop's frames.  Show where the cell was instead.
            exc.__traceback__ = _await_traceback(task.get_coro())
        raise
    finally:
        ns.pop(_RESULT, None)
        # An interrupt stops the loop, not the cell's task: still pending,
        # the rest of the cell would run in whichever cell next runs the
        # loop.
        task.cancel()


def _await_traceback(coro):
    """A traceback through the frames of a suspended coroutine and those
    it awaits, outermost first."""
    frames = []
    while getattr(coro, "cr_frame", None) is not None:
        frames.append(coro.cr_frame)
        coro = coro.cr_await
    tb = None
    for frame in reversed(frames):
        tb = types.TracebackType(tb, frame, frame.f_lasti, frame.f_lineno)
    return tb


# kiln's own Python files: none of their frames is the cell's business.
_KILN_DIR = os.path.dirname(__file__) + os.sep


def _trim(tb, filename):
    """Drops kiln's own frames: the traceback starts at the cell, ends where
    the cell was when interrupted (not in kiln's signal handler), and has
    no frame of kiln's in between (input(), exit())."""
    t = tb
    while t is not None and t.tb_frame.f_code.co_filename != filename:
        t = t.tb_next
    return _without_kiln(tb if t is None else t)


def _without_kiln(tb):
    """TB, relinked without kiln's frames; cut at kiln's SIGINT handler."""
    head = last = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code is _on_sigint.__code__:
            break
        if not code.co_filename.startswith(_KILN_DIR):
            if last is None:
                head = tb
            else:
                last.tb_next = tb
            last = tb
        tb = tb.tb_next
    if last is not None:
        last.tb_next = None
    return head


def _trim_chain(exc):
    """Drops kiln's frames from the tracebacks of the exceptions EXC was
    raised from or during, and of those of a group: all are shown."""
    seen = {id(exc)}
    todo = [exc.__cause__, exc.__context__, *getattr(exc, "exceptions", ())]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = _without_kiln(e.__traceback__)
        todo += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]


def _is_success(code):
    """Whether SystemExit(CODE) means a successful exit, as the process
    status a script would have: None and 0 (False included)."""
    return code is None or (isinstance(code, int) and code == 0)


def _error(exc, filename):
    tb = _trim(exc.__traceback__, filename)
    _trim_chain(exc)
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    lineno = offset = None
    if isinstance(exc, SyntaxError):
        lineno, offset = exc.lineno, exc.offset
        message = exc.msg
    elif isinstance(exc, SystemExit):
        message = _exit_message(exc.code)
    else:
        try:
            message = str(exc)
        except Exception:
            message = "(unprintable exception)"
    return type(exc).__name__, message, text, lineno, offset


def _exit_message(code):
    """What a SystemExit with a failure status says: its status first, as
    `kiln run` reads it back ("exit status N:")."""
    if isinstance(code, int):
        return (
            f"exit status {int(code)}: the cell called sys.exit({code!r}) and stopped there; "
            "the session keeps its state"
        )
    try:
        text = str(code)
    except Exception:
        text = f"<unprintable {type(code).__qualname__}>"
    return (
        f"exit status 1: {text} (the cell called sys.exit() with this message and "
        "stopped there; the session keeps its state)"
    )


FILE_MIME = "application/vnd.kiln.file"
_files = {}


def _scan_work(limit=10000):
    """{path: (size, mtime_ns)} of the regular files under /work, bounded."""
    found = {}
    # Only /work's own filesystem: kiln's read-only binds can sit beneath
    # it when the host keeps Python or the venv under a /work directory.
    dev = os.stat("/work").st_dev
    stack = [("/work", "")]
    while stack and len(found) < limit:
        top, rel = stack.pop()
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for e in entries:
            path = f"{rel}/{e.name}" if rel else e.name
            try:
                if e.is_dir(follow_symlinks=False):
                    if path.count("/") < 16 and e.stat(follow_symlinks=False).st_dev == dev:
                        stack.append((e.path, path))
                elif e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    if st.st_dev == dev:
                        found[path] = (st.st_size, st.st_mtime_ns)
            except OSError:
                continue
            if len(found) >= limit:
                break
    return found


def _report_files(outputs):
    """Adds an output for each file under /work created or changed since
    the last call: the paths the watcher had events for, or, when it lost
    track (first cell, queue overflow, fd closed by the cell, no watches
    left), those whose size or time differ from the last scan's."""
    global _files
    if not _jailed:
        return
    import _kiln_watch

    changed = _kiln_watch.changes()
    if changed is None:
        now = _scan_work()
        for path, (size, mtime) in sorted(now.items()):
            if _files.get(path) != (size, mtime):
                outputs.append((FILE_MIME, path, b"", min(size, 0xFFFFFFFF), 0))
        _files = now
        return
    if not changed:
        return
    import stat

    dev = os.stat("/work").st_dev
    for path in changed:
        try:
            st = os.lstat(f"/work/{path}")
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_dev != dev:
            _files.pop(path, None)
            continue
        outputs.append((FILE_MIME, path, b"", min(st.st_size, 0xFFFFFFFF), 0))
        # Kept current, and as bounded as the scan, for the next scan to
        # compare with.
        if path in _files or len(_files) < 10000:
            _files[path] = (st.st_size, st.st_mtime_ns)


def changed_files():
    """The outputs (as run_cell gives them) of the files under /work that
    changed since the last call, for a shell command the worker ran."""
    outputs = []
    try:
        _report_files(outputs)
    except Exception:
        pass
    return outputs


def run_cell(source, cell_no, max_result, compiled=None):
    """Runs one cell in the session's globals.

    Returns (status, result, err_type, err_message, traceback, lineno,
    offset, outputs); result and the error fields are None when absent,
    outputs is the list of kiln_capture outputs (figures, images,
    display()), in the order they were shown.
    """
    global _in_cell
    import kiln_capture

    kiln_capture.hook_pil()
    kiln_capture.max_result = max_result
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        # A cell put the default back; kiln's handler does the same for
        # the cell's code, and guards kiln's own.
        signal.signal(signal.SIGINT, _on_sigint)
        # Over signal.signal's handler, kiln's C one that drops an
        # interrupt meant for an earlier cell (kernel/py/interrupt.c).
        import _kiln_interrupt
        _kiln_interrupt.arm()
    filename = _cell_filename(cell_no)
    ns = _main.__dict__
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    status, result, err = OK, None, (None, None, None, None, None)
    try:
        try:
            # An interrupt that waited here since the previous cell is
            # delivered by the unblock itself, before _in_cell is set, and
            # dropped.
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, _SIGINT)
            _in_cell = True
            _cell_running.set()
            value = _execute(source, filename, ns, compiled)
            if value is not None:
                ns["_"] = value
                # The value's repr is the cell's code too (an interrupt
                # may stop it), but never fails the cell.
                result = kiln_capture.format_object(value, max_result)[0]
        finally:
            # From here to the next cell, an interrupt waits blocked (or,
            # taken by another thread, is dropped by _on_sigint).
            _in_cell = False
            _cell_running.clear()
            _signal.pthread_sigmask(_signal.SIG_BLOCK, _SIGINT)
    except KeyboardInterrupt as exc:
        status, err = INTERRUPTED, _error(exc, filename)
    except SystemExit as exc:
        # exit() ends the cell, never the session: a notebook's kernel
        # would restart, losing the state the next cells rely on.  A
        # successful exit is no error; any other is one, with its status.
        if _is_success(exc.code):
            status = EXITED
        else:
            status, err = ERROR, _error(exc, filename)
    except BaseException as exc:
        status, err = ERROR, _error(exc, filename)
    try:
        kiln_capture.end_of_cell()
    except Exception as exc:
        print(f"kiln: capturing the cell's figures failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    _flush()
    outputs = kiln_capture.take()
    try:
        _report_files(outputs)
    except Exception:
        pass
    return (status, result) + err + (outputs,)


def snapshot(fd, max_bytes):
    """The session's state written to FD (kiln_snapshot.snapshot)."""
    import kiln_snapshot

    return kiln_snapshot.snapshot(_main.__dict__, fd, max_bytes, _jailed)


def restore(source, expected):
    """A snapshot loaded into the session (kiln_snapshot.restore)."""
    import kiln_snapshot

    return kiln_snapshot.restore(_main.__dict__, source, expected, _jailed)


def introspect(kind, code, cursor, max_bytes):
    """A frontend's question about CODE at CURSOR, answered as JSON bytes
    (kiln_introspect.answer).  The session's own code runs in it (an
    expression, a property): the interrupt at its deadline reaches that
    code as a cell's does."""
    global _in_cell
    import kiln_introspect

    try:
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, _SIGINT)
        _in_cell = True
        return kiln_introspect.answer(_main.__dict__, kind, code, cursor, max_bytes)
    finally:
        _in_cell = False
        _signal.pthread_sigmask(_signal.SIG_BLOCK, _SIGINT)
