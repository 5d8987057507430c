"""What a notebook frontend asks of a session between its cells: the names
that complete the word at the cursor, the object under the cursor,
whether a cell is whole, and the values of expressions (a Jupyter
execute_request's user_expressions).

Called in the session's worker (FRAME_INTROSPECT, kernel/py/worker.c) with
the session's namespace; each answer is a JSON object (kiln.h,
front_introspect).  Cursor positions count characters.  Completion looks
at live objects, as a notebook's does: a dotted name before the cursor is
evaluated (attribute access only, never a call), so a property of the
session's own classes may run.
"""

import ast
import builtins
import codeop
import inspect
import json
import keyword
import re
import rlcompleter
import warnings

COMPLETE, INSPECT, IS_COMPLETE, EVALUATE = 1, 2, 3, 4

# The dotted name that ends where the cursor is.
_WORD_BEFORE = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*\.?$|[^\W\d]?$")
_WORD_AFTER = re.compile(r"\w*")
_MAX_MATCHES = 1000
_MAX_DOC = 20000


def answer(ns, kind, code, cursor, max_bytes):
    """KIND's answer about CODE with the cursor at character CURSOR, as
    JSON text of at most MAX_BYTES bytes."""
    cursor = max(0, min(cursor, len(code)))
    if kind == COMPLETE:
        reply = complete(ns, code, cursor)
        while len(_dump(reply)) > max_bytes and reply["matches"]:
            del reply["matches"][len(reply["matches"]) // 2:]
    elif kind == INSPECT:
        reply = inspect_at(ns, code, cursor)
        while len(_dump(reply)) > max_bytes and reply["text"]:
            reply["text"] = reply["text"][: len(reply["text"]) // 2]
    elif kind == IS_COMPLETE:
        reply = is_complete(code)
    elif kind == EVALUATE:
        reply = evaluate(ns, code)
        texts = [v["data"] for v in reply.values() if v["status"] == "ok"]
        while len(_dump(reply)) > max_bytes and any(t["text/plain"] for t in texts):
            longest = max(texts, key=lambda t: len(t["text/plain"]))
            longest["text/plain"] = longest["text/plain"][: len(longest["text/plain"]) // 2]
    else:
        raise ValueError(f"no such introspection: {kind}")
    return _dump(reply)


def evaluate(ns, exprs):
    """EXPRS, a JSON object of expressions by name, each evaluated in NS
    as ipykernel evaluates user_expressions: its repr, or the exception
    it raised.  An interrupt (the deadline) ends them all: the rest are
    not evaluated."""
    try:
        exprs = json.loads(exprs)
    except ValueError as exc:
        raise ValueError(f"the expressions are not JSON: {exc}") from None
    if not isinstance(exprs, dict) or not all(isinstance(v, str) for v in exprs.values()):
        raise ValueError("the expressions are not an object of strings")
    out = {}
    stopped = None
    for name, src in exprs.items():
        if stopped is None:
            try:
                out[name] = {"status": "ok", "data": {"text/plain": repr(eval(src, ns))}, "metadata": {}}
                continue
            except KeyboardInterrupt:
                stopped = "interrupted at the deadline"
                exc = KeyboardInterrupt(stopped)
            except BaseException as e:
                exc = e
        else:
            exc = KeyboardInterrupt(f"not evaluated: an earlier expression was {stopped}")
        out[name] = {"status": "error", "ename": type(exc).__name__, "evalue": str(exc), "traceback": []}
    return out


def _dump(reply):
    # A docstring may hold a lone surrogate, which UTF-8 cannot carry.
    return json.dumps(reply, ensure_ascii=False).encode("utf-8", "replace")


def complete(ns, code, cursor):
    """Names that complete the word ending at CURSOR, in order, and the
    span they replace: jedi's when the session's environment has jedi
    (it infers what an expression is without running it: a literal, a
    call's result), else rlcompleter's on the live names."""
    reply = _jedi_complete(ns, code, cursor)
    if reply is not None:
        return reply
    before = code[:cursor]
    m = _WORD_BEFORE.search(before)
    word = m.group(0) if m else ""
    start = cursor - len(word)
    # Inside a string or a comment nothing is a name.
    if word and _in_string_or_comment(before[:start]):
        return {"matches": [], "cursor_start": cursor, "cursor_end": cursor}
    completer = rlcompleter.Completer(ns)
    matches, seen = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for state in range(_MAX_MATCHES * 2):
            try:
                name = completer.complete(word, state)
            except Exception:
                break
            if name is None:
                break
            # rlcompleter marks callables with "(" (or "()" when they take
            # no argument) and some keywords with " " or ":"; a frontend
            # wants the name.
            name = name.removesuffix("()").rstrip("( :")
            if name not in seen and name.startswith(word):
                seen.add(name)
                matches.append(name)
            if len(matches) >= _MAX_MATCHES:
                break
    # Names of one's own before dunder names, each group in order.
    matches.sort(key=lambda n: (n.rpartition(".")[2].startswith("_"), n))
    return {"matches": matches, "cursor_start": start, "cursor_end": cursor}


def _jedi_complete(ns, code, cursor):
    """jedi's completions at CURSOR, or None when jedi is not installed or
    fails on this code."""
    try:
        import jedi
    except ImportError:
        return None
    before = code[:cursor]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = jedi.Interpreter(code, [ns]).complete(line, column)
    except Exception:
        return None
    # Each completion is the name and, in .complete, what it adds to what
    # was typed: the typed part, the same for all, is what they replace.
    typed = len(found[0].name) - len(found[0].complete) if found else 0
    matches = [c.name for c in found[:_MAX_MATCHES]]
    return {"matches": matches, "cursor_start": cursor - typed, "cursor_end": cursor}


def _in_string_or_comment(text):
    """Whether TEXT (a cell up to a point) ends inside a string or a comment,
    on its last line: enough for the names a frontend asks about."""
    line = text.rsplit("\n", 1)[-1]
    quote = None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return True
        i += 1
    return quote is not None


def _name_at(code, cursor):
    """The dotted name under or just before CURSOR; in a call's
    parentheses with nothing under the cursor, the function's."""
    m = _WORD_BEFORE.search(code[:cursor])
    head = m.group(0) if m else ""
    tail = _WORD_AFTER.match(code, cursor).group(0)
    name = (head + tail).rstrip(".")
    if name:
        return name
    # foo(|  or  foo(a, |: the innermost open call.
    depth = 0
    for i in range(cursor - 1, -1, -1):
        ch = code[i]
        if ch == ")":
            depth += 1
        elif ch == "(":
            if depth == 0:
                m = _WORD_BEFORE.search(code[:i])
                return m.group(0).rstrip(".") if m else ""
            depth -= 1
        elif ch == "\n" and depth == 0:
            break
    return ""


def _resolve(ns, name):
    parts = name.split(".")
    if parts[0] in ns:
        obj = ns[parts[0]]
    elif hasattr(builtins, parts[0]):
        obj = getattr(builtins, parts[0])
    else:
        raise LookupError(name)
    for part in parts[1:]:
        obj = getattr(obj, part)
    return obj


def inspect_at(ns, code, cursor):
    """The object named at CURSOR: its type, signature and docstring."""
    name = _name_at(code, cursor)
    if not name or keyword.iskeyword(name):
        return {"found": False, "name": name, "text": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = _resolve(ns, name)
    except Exception:
        return {"found": False, "name": name, "text": ""}
    lines = [f"Type:      {type(obj).__name__}"]
    if callable(obj):
        try:
            lines.append(f"Signature: {name}{inspect.signature(obj)}")
        except (TypeError, ValueError):
            pass
    else:
        try:
            text = repr(obj)
        except Exception as exc:
            text = f"<repr failed: {type(exc).__name__}>"
        if len(text) > 200:
            text = text[:200] + "…"
        lines.append(f"Value:     {text}")
    doc = inspect.getdoc(obj) if not isinstance(obj, (int, float, str, bytes, list, dict, tuple, set)) else None
    if doc:
        if len(doc) > _MAX_DOC:
            doc = doc[:_MAX_DOC] + "…"
        lines.append("Docstring:\n" + doc)
    return {"found": True, "name": name, "text": "\n".join(lines)}


def is_complete(code):
    """Whether CODE is a whole cell, as IPython's console decides it:
    "invalid" when no more lines could make it compile; "incomplete", with
    the next line's indent, when more could (codeop, top-level await
    allowed) or when it compiles but ends inside an indented block with no
    blank line after it; else "complete"."""
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT | ast.PyCF_ONLY_AST
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(code, "<cell>", "exec", flags, dont_inherit=True)
        except (SyntaxError, OverflowError, ValueError, MemoryError, RecursionError):
            compiler = codeop.CommandCompiler()
            compiler.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            try:
                if compiler(code, "<cell>", "exec") is not None:
                    return {"status": "invalid", "indent": ""}
            except (SyntaxError, OverflowError, ValueError, MemoryError, RecursionError):
                return {"status": "invalid", "indent": ""}
            return {"status": "incomplete", "indent": _next_indent(code)}
    lines = code.split("\n")
    if len(lines) > 1 and lines[-1][:1] in (" ", "\t") and lines[-1].strip():
        return {"status": "incomplete", "indent": _next_indent(code)}
    return {"status": "complete", "indent": ""}


def _next_indent(code):
    """The indent of the line after CODE's last: that line's, one level
    deeper after a colon."""
    last = next((line for line in reversed(code.splitlines()) if line.strip()), "")
    indent = last[: len(last) - len(last.lstrip())]
    if last.rstrip().endswith(":"):
        indent += "    "
    return indent
