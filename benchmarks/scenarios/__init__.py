"""The scenarios: every module in this folder is one.

A scenario module defines

    TITLE = "what it measures"      # a heading of the report
    ORDER = 10                      # its place in the run (lower first)
    def run(ctx): ...               # measures, checks and ctx.record()s

and nothing else is needed: SCENARIOS lists every module here, in ORDER.
See benchmarks/README.md for the context object a scenario is handed.
"""
import importlib
import pkgutil


def _load():
    mods = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
            if not m.name.startswith("_")]
    return sorted(mods, key=lambda m: (m.ORDER, m.__name__))


SCENARIOS = _load()


def name(mod):
    """A scenario's short name: its module's file name."""
    return mod.__name__.rsplit(".", 1)[-1]
