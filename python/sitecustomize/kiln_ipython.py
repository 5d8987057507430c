"""``IPython.display`` for code written for notebooks, where IPython is not
installed: ``from IPython.display import display, clear_output,
update_display, HTML, Markdown, Image`` works in a cell as in Jupyter.

The functions are kiln_capture's; the display classes hold data and give
it through the ``_repr_*_`` forms kiln_capture reads.  A real IPython,
installed in the session, is found first: this one is the last finder on
``sys.meta_path``, and answers only for the modules named below.
"""

import importlib.abc
import importlib.machinery
import json
import os
import sys

import kiln_capture
from kiln_capture import DisplayHandle, clear_output, display, update_display


def get_ipython():
    """There is no IPython shell: code that asks gets None, as in a plain
    interpreter, and keeps to what works without one."""
    return None


class DisplayObject:
    """Data shown through one of its forms; DATA, or the contents of
    FILENAME, or (for what can be linked) URL."""

    _binary = False

    def __init__(self, data=None, url=None, filename=None, metadata=None):
        if isinstance(data, (os.PathLike,)) or (
            isinstance(data, str) and filename is None and url is None and _looks_like_path(data, self)
        ):
            data, filename = None, os.fspath(data)
        self.url = url
        self.filename = filename
        self.metadata = metadata or {}
        if data is None and filename is not None:
            with open(filename, "rb" if self._binary else "r") as f:
                data = f.read()
        self.data = data

    def __repr__(self):
        return f"<IPython.core.display.{type(self).__name__} object>"


def _looks_like_path(data, obj):
    # IPython reads a str naming an existing file for Image only.
    return isinstance(obj, Image) and len(data) < 4096 and os.path.isfile(data)


class TextDisplayObject(DisplayObject):
    def __init__(self, data=None, url=None, filename=None, metadata=None):
        super().__init__(data, url, filename, metadata)
        if isinstance(self.data, bytes):
            self.data = self.data.decode("utf-8", "replace")


class HTML(TextDisplayObject):
    def _repr_html_(self):
        return self.data


class Markdown(TextDisplayObject):
    def _repr_markdown_(self):
        return self.data


class Latex(TextDisplayObject):
    def _repr_latex_(self):
        return self.data


class Pretty(TextDisplayObject):
    def __repr__(self):
        return str(self.data)


class Javascript(TextDisplayObject):
    """Script kiln's frontends do not run; its text is shown."""

    def __repr__(self):
        return str(self.data)


class SVG(DisplayObject):
    def _repr_svg_(self):
        data = self.data
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


class JSON(DisplayObject):
    def __init__(self, data=None, url=None, filename=None, expanded=False, metadata=None, root="root", **kwargs):
        super().__init__(data, url, filename, metadata)
        if isinstance(self.data, str):
            self.data = json.loads(self.data)

    def _repr_json_(self):
        return self.data


class Image(DisplayObject):
    """A PNG or JPEG from bytes, a file or a URL (only linked: a cell may
    have no network)."""

    _binary = True

    def __init__(self, data=None, url=None, filename=None, format=None, embed=None, width=None,
                 height=None, retina=False, unconfined=False, metadata=None, alt=None):
        if isinstance(data, str) and data.startswith(("http://", "https://")) and url is None:
            data, url = None, data
        super().__init__(data, url, filename, metadata)
        self.width, self.height, self.alt = width, height, alt
        fmt = (format or "").lower()
        if not fmt:
            name = (filename or url or "").lower()
            fmt = "jpeg" if name.endswith((".jpg", ".jpeg")) else "png" if name.endswith(".png") else ""
        if not fmt and isinstance(self.data, bytes):
            fmt = "jpeg" if self.data[:3] == b"\xff\xd8\xff" else "png"
        self.format = "jpeg" if fmt == "jpg" else fmt

    def _repr_png_(self):
        return self.data if self.format == "png" and isinstance(self.data, bytes) else None

    def _repr_jpeg_(self):
        return self.data if self.format == "jpeg" and isinstance(self.data, bytes) else None

    def _repr_html_(self):
        if self.data is not None or self.url is None:
            return None
        size = "".join(f' {k}="{v}"' for k, v in (("width", self.width), ("height", self.height)) if v)
        return f'<img src="{self.url}"{size}/>'


def display_html(*objs, raw=False, **kwargs):
    _display_as("text/html", objs, raw, kwargs)


def display_markdown(*objs, raw=False, **kwargs):
    _display_as("text/markdown", objs, raw, kwargs)


def _display_as(mime, objs, raw, kwargs):
    if raw:
        for obj in objs:
            display({mime: obj}, raw=True, **kwargs)
    else:
        display(*objs, **kwargs)


_NAMES = {
    "display": display,
    "clear_output": clear_output,
    "update_display": update_display,
    "DisplayHandle": DisplayHandle,
    "DisplayObject": DisplayObject,
    "TextDisplayObject": TextDisplayObject,
    "HTML": HTML,
    "Markdown": Markdown,
    "Latex": Latex,
    "Pretty": Pretty,
    "Javascript": Javascript,
    "SVG": SVG,
    "JSON": JSON,
    "Image": Image,
    "display_html": display_html,
    "display_markdown": display_markdown,
}

# The modules served, and what each holds.
_MODULES = {
    "IPython": {"display": None, "get_ipython": get_ipython, "version_info": (0, 0, 0, "kiln")},
    "IPython.display": _NAMES,
    "IPython.core": {},
    "IPython.core.display": _NAMES,
    "IPython.core.getipython": {"get_ipython": get_ipython},
}


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name not in _MODULES:
            return None
        package = name in ("IPython", "IPython.core")
        return importlib.machinery.ModuleSpec(name, self, is_package=package)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        names = dict(_MODULES[module.__name__])
        if module.__name__ == "IPython":
            names["display"] = importlib.import_module("IPython.display")
        if module.__spec__.submodule_search_locations is not None:
            module.__path__ = []
        module.__dict__.update(names)


def install():
    """Serves the modules above when nothing earlier on sys.meta_path
    does (IPython is not installed)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())


for _cls in (DisplayObject, TextDisplayObject, HTML, Markdown, Latex, Pretty, Javascript, SVG, JSON, Image):
    _cls.__module__ = "IPython.core.display"
del _cls
