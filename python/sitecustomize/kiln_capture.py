"""What a cell shows: figures, images and rich objects, as a notebook does.

Every matplotlib figure a cell created or changed is captured at the end of
the cell (and closed), whether or not it called ``plt.show()``; ``plt.show()``
captures at once, in order.  ``PIL.Image.Image.show()`` and ``display(obj)``
capture too, through one formatter shared with the cell's result.

Images are encoded to PNG by ``_kiln_png`` (libpng, in kiln's C), straight
from the pixel buffer.  Each output is a tuple

    (mime, name, data: bytes, width, height)

collected in ``outputs`` until the runtime takes them at the end of the cell.
"""

import builtins
import json
import sys

import _kiln_png

# Largest side of the copy sent inline; the full-size PNG is kept too.
MAX_INLINE = 1568

outputs = []
_counter = 0


def take():
    """Returns the outputs of the cell so far and starts a new list."""
    global outputs
    done, outputs = outputs, []
    return done


def _name(kind, ext):
    global _counter
    _counter += 1
    return f"{kind}-{_counter}.{ext}"


def encode_rgba(buf, width, height):
    """PNG bytes of an RGBA buffer."""
    return _kiln_png.encode(buf, width, height)[0]


def _emit_rgba(buf, width, height, kind):
    """Adds the full-size PNG and, for a large image, a smaller inline copy."""
    full = encode_rgba(buf, width, height)
    name = _name(kind, "png")
    outputs.append(("image/png", name, full, width, height))
    if max(width, height) > MAX_INLINE:
        from PIL import Image

        img = Image.frombuffer("RGBA", (width, height), bytes(buf), "raw", "RGBA", 0, 1)
        img.thumbnail((MAX_INLINE, MAX_INLINE), Image.Resampling.LANCZOS)
        small = encode_rgba(img.tobytes(), img.width, img.height)
        outputs.append(("image/png;inline", name, small, img.width, img.height))


def emit_figure(fig):
    fig.canvas.draw()
    buf = fig.canvas.buffer_rgba()
    height, width = buf.shape[0], buf.shape[1]
    _emit_rgba(memoryview(buf).cast("B"), width, height, "figure")


def emit_pil(img):
    rgba = img.convert("RGBA") if img.mode != "RGBA" else img
    _emit_rgba(rgba.tobytes(), rgba.width, rgba.height, "image")


def close_figures():
    """Captures every open pyplot figure, in creation order, and closes it."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    from matplotlib._pylab_helpers import Gcf

    for manager in sorted(Gcf.get_all_fig_managers(), key=lambda m: m.num):
        try:
            emit_figure(manager.canvas.figure)
        finally:
            plt.close(manager.canvas.figure)


def end_of_cell():
    """Called by the runtime when a cell ends, whatever its outcome."""
    close_figures()


def _pil_show(self, title=None, **kwargs):
    emit_pil(self)


def install():
    """Makes ``display`` a builtin, as in a notebook, and hooks PIL.  pyplot
    needs no hook: its backend is kiln_mpl_backend, whose show() captures."""
    builtins.display = display
    hook_pil()


def hook_pil():
    """PIL's show() captures; called before every cell, for a PIL a cell
    imported itself."""
    image = sys.modules.get("PIL.Image")
    if image is not None and image.Image.show is not _pil_show:
        image.Image.show = _pil_show


_TEXT_MIMES = (
    ("_repr_markdown_", "text/markdown"),
    ("_repr_html_", "text/html"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
    ("_repr_svg_", "image/svg+xml"),
)


def _note(obj, what, exc):
    """Says on the cell's stderr that one form of OBJ could not be made:
    a broken form is skipped, it never fails the cell that shows it."""
    try:
        why = f"{type(exc).__name__}: {exc}"
    except Exception:
        why = type(exc).__name__
    print(f"kiln: {type(obj).__qualname__}.{what} raised {why}; left out", file=sys.stderr)
    return why


def _form(obj, method):
    """What OBJ's METHOD (a ``_repr_*_`` form) returns, or None."""
    try:
        fn = getattr(obj, method, None)
        if not callable(fn):
            return None
        data = fn()
    except Exception as exc:
        _note(obj, f"{method}()", exc)
        return None
    # IPython's forms may return (data, metadata).
    if isinstance(data, tuple):
        data = data[0] if data else None
    return data


# Characters of a result's repr and of each text form a cell displays
# (--max-result); kiln_runtime sets it for every cell.
max_result = 65536


def _cut(text, limit):
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


def format_object(obj, limit):
    """Emits OBJ's rich forms and returns (text, shown): its text form for
    the model, and whether an image of it was emitted.

    Figures and PIL images become PNG outputs; objects with ``_repr_png_``
    or ``_repr_jpeg_`` their image; pandas objects a text table (and HTML
    as a rich form); everything else its ``_repr_*_`` forms and repr.  A
    form that raises is skipped with a note on stderr; a repr that raises
    becomes a short text saying so.
    """
    text = None
    mod = type(obj).__module__ or ""
    if mod.startswith("matplotlib") and hasattr(obj, "canvas") and hasattr(obj, "savefig"):
        shown = True
        try:
            emit_figure(obj)
        except Exception as exc:
            _note(obj, "draw()", exc)
            shown = False
        finally:
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                plt.close(obj)
        return f"<Figure {int(obj.bbox.width)}x{int(obj.bbox.height)}>", shown
    if mod.startswith("PIL.") and hasattr(obj, "tobytes") and hasattr(obj, "mode"):
        shown = True
        try:
            emit_pil(obj)
        except Exception as exc:
            _note(obj, "convert()", exc)
            shown = False
        return f"<PIL image {obj.width}x{obj.height} {obj.mode}>", shown
    before = len(outputs)
    if not isinstance(obj, type):
        for method, mime in (("_repr_png_", "image/png"), ("_repr_jpeg_", "image/jpeg")):
            data = _form(obj, method)
            if isinstance(data, (bytes, bytearray)):
                outputs.append((mime, _name("display", mime.split("/")[1]), bytes(data), 0, 0))
        for method, mime in _TEXT_MIMES:
            data = _form(obj, method)
            if data is None:
                continue
            try:
                if mime == "application/json" and not isinstance(data, str):
                    data = json.dumps(data)
                data = _cut(str(data), limit).encode("utf-8", "backslashreplace")
            except Exception as exc:
                _note(obj, f"{method}()", exc)
                continue
            outputs.append((mime, _name("display", "txt"), data, 0, 0))
    if mod.startswith("pandas"):
        text = _pandas_text(obj)
    if text is None:
        try:
            text = repr(obj)
        except Exception as exc:
            text = f"<repr of {type(obj).__qualname__} raised {_note(obj, '__repr__()', exc)}>"
    text = _cut(text, limit)
    shown = any(o[0].startswith("image/") for o in outputs[before:])
    return text, shown


def _pandas_text(obj):
    to_string = getattr(obj, "to_string", None)
    if not callable(to_string):
        return None
    try:
        return to_string(max_rows=60, max_cols=20)
    except TypeError:
        return None
    except Exception as exc:
        _note(obj, "to_string()", exc)
        return None


def display(*objs, **kwargs):
    """Shows each object below the cell's output, as a notebook does."""
    for obj in objs:
        text, shown = format_object(obj, max_result)
        if not shown:
            outputs.append(("text/plain", _name("display", "txt"), text.encode("utf-8", "backslashreplace"), 0, 0))
