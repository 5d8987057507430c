"""The builtins a cell sees that differ from a script's: help, exit,
quit and the long texts, which site would add (kiln's isolated
configuration does not run site), and input() and getpass(), which ask
the front for a line.  Frames of this module are kiln's: tracebacks leave
them out (kiln_runtime._without_kiln).
"""

import _sitebuiltins
import builtins
import getpass
import site
import sys

_flush = None  # kiln_runtime's flush of the cell's stdout


def _input(prompt=""):
    """input() as a cell sees it: the front asks whoever runs the cell
    (a notebook's frontend) for the line; where nobody can answer (MCP)
    it raises EOFError saying so.  A frame of kiln's: _trim leaves it out,
    so the traceback ends at the line that called input()."""
    import _kiln_mark

    _flush()
    return _kiln_mark.input_request(str(prompt), False)


def _getpass(prompt="Password: ", stream=None):
    """getpass.getpass as a cell sees it: input() whose answer the
    frontend does not echo."""
    import _kiln_mark

    _flush()
    return _kiln_mark.input_request(str(prompt), True)


class _Quitter(_sitebuiltins.Quitter):
    """exit and quit as a cell sees them: calling one stops the cell with
    SystemExit, as in a script.  site's own closes sys.stdin first (for
    IDLE), which would leave the session's stdin closed for later cells."""

    def __repr__(self):
        return f"Use {self.name}() to stop the cell; the session keeps its state"

    def __call__(self, code=None):
        raise SystemExit(code)


class _Helper(_sitebuiltins._Helper):
    """help as a cell sees it: pydoc's text, written to stdout.  A cell has
    no terminal, so there is no pager and no interactive help> prompt."""

    def __repr__(self):
        return "Type help(object) for help about object, or help('topic') for a keyword or topic."

    def __call__(self, *args, **kwds):
        import pydoc

        # pydoc would pick a plain pager anyway while stdout is not a tty;
        # a cell may make it one (or a PAGER appear), and no pager may run.
        pydoc.pager = pydoc.plainpager
        if not args and not kwds:
            print(
                "help() without an argument starts an interactive prompt, which a cell "
                "does not have: ask for one thing at a time, e.g. help(len), help('for'), "
                "help('keywords'), help('topics') or help('modules')."
            )
            return None
        return pydoc.help(*args, **kwds)


def install_site():
    """help, exit, quit, copyright, credits and license, which site adds
    to builtins in a normal interpreter; kiln's isolated configuration does
    not run site."""
    builtins.help = _Helper()
    builtins.exit = _Quitter("exit", "")
    builtins.quit = _Quitter("quit", "")
    site.setcopyright()
    # Long texts page through input() every 23 lines; a cell has no input,
    # so they are printed whole.
    for name in ("copyright", "credits", "license"):
        getattr(builtins, name).MAXLINES = sys.maxsize


def install_input(flush):
    """input() and getpass.getpass() for a worker's cells; FLUSH writes
    out what the cell printed before a prompt."""
    global _flush
    _flush = flush
    builtins.input = _input
    getpass.getpass = _getpass
