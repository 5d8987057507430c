"""What a cell shows: figures, images and rich objects, as a notebook does.

Every matplotlib figure a cell created or changed is captured at the end of
the cell (and closed), whether or not it called ``plt.show()``; ``plt.show()``
captures at once, in order.  ``PIL.Image.Image.show()`` and ``display(obj)``
capture too, through one formatter shared with the cell's result.  What is
shown while the cell runs goes to the front at once (a notebook shows it
between the lines printed before and after), and so do IPython's
``update_display`` and ``clear_output`` (kiln_ipython serves
``IPython.display`` where IPython is not installed).

Images are encoded to PNG by ``_kiln_png`` (libpng, in kiln's C), straight
from the pixel buffer.  An object's text form for the model is Markdown when
it has one: its own ``_repr_markdown_``, or for a pandas DataFrame or Series
a table made here (pandas' ``to_markdown`` needs ``tabulate``), with the
shape below it.  Each output is a tuple

    (mime, name, data: bytes, width, height)

collected in ``outputs`` until the runtime takes them at the end of the cell.
"""

import base64
import builtins
import json
import os
import re
import struct
import sys

import _kiln_mark
import _kiln_png

# Largest side of the copy sent inline; the full-size PNG is kept too.
MAX_INLINE = 1568

outputs = []
_counter = 0


def take():
    """Returns the outputs of the cell so far and starts a new list."""
    global outputs, _clear_waiting
    done, outputs = outputs, []
    _places.clear()
    _clear_waiting = False
    return done


# The outputs of the object being shown now, or None: an output made
# outside a show (a figure left open at the end, the cell's value) goes
# at the end of the cell's output.
_collecting = None
# display_id -> the places (marks) of the displays of that id in this cell.
_places = {}
# clear_output(wait=True) was called: the next display clears first.
_clear_waiting = False


def _add(output):
    (outputs if _collecting is None else _collecting).append(output)


def _flush_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _pack(outs):
    """OUTS packed as the front reads them (kernel/proto/records.h); the
    copies to send inline are left out, the full image is there."""
    parts = []
    for mime, _name_, data, width, height in outs:
        if mime.endswith(";inline"):
            continue
        m = mime.encode()
        parts.append(struct.pack("<HHIII", len(m), 0, len(data), min(width, 0xFFFFFFFF),
                                 min(height, 0xFFFFFFFF)) + m + data)
    return b"".join(parts)


def _forget_shown():
    """What the cell showed so far leaves its reply, as clear_output
    leaves a notebook's cell without it."""
    del outputs[:]
    _places.clear()


def _show(make, display_id=None):
    """Runs MAKE, which makes the forms of one object, and shows them at
    this point of the cell's output: what was printed so far goes first,
    then the front passes them on (to a notebook, at once) and notes the
    place, so that the reply has them there too."""
    global _collecting, _clear_waiting
    if _collecting is not None:
        return make()
    mine = _collecting = []
    try:
        return make()
    finally:
        _collecting = None
        if mine:
            if _clear_waiting:
                _clear_waiting = False
                _forget_shown()
            _flush_streams()
            place = _kiln_mark.display(0, display_id, _pack(mine), False)
            outputs.extend(o + (place,) for o in mine)
            if display_id is not None and place is not None:
                _places.setdefault(display_id, []).append(place)


def _update(make, display_id):
    """Runs MAKE, whose forms are the new content of the display named
    DISPLAY_ID: passed on at once; in the reply, they take the place of
    that display's, when this cell showed it."""
    global _collecting
    mine = _collecting = []
    try:
        make()
    finally:
        _collecting = None
    _flush_streams()
    _kiln_mark.display(1, display_id, _pack(mine), False)
    for place in _places.get(display_id, ()):
        at = [i for i, o in enumerate(outputs) if len(o) > 5 and o[5] == place]
        if at:
            outputs[at[0] : at[-1] + 1] = [o + (place,) for o in mine]


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
    _add(("image/png", name, full, width, height))
    if max(width, height) > MAX_INLINE:
        from PIL import Image

        img = Image.frombuffer("RGBA", (width, height), bytes(buf), "raw", "RGBA", 0, 1)
        img.thumbnail((MAX_INLINE, MAX_INLINE), Image.Resampling.LANCZOS)
        small = encode_rgba(img.tobytes(), img.width, img.height)
        _add(("image/png;inline", name, small, img.width, img.height))


def emit_figure(fig):
    fig.canvas.draw()
    buf = fig.canvas.buffer_rgba()
    height, width = buf.shape[0], buf.shape[1]
    _emit_rgba(memoryview(buf).cast("B"), width, height, "figure")


def emit_pil(img):
    rgba = img.convert("RGBA") if img.mode != "RGBA" else img
    _emit_rgba(rgba.tobytes(), rgba.width, rgba.height, "image")


def close_figures(here=False):
    """Captures every open pyplot figure, in creation order, and closes
    it; HERE: each shown at this point of the output."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    from matplotlib._pylab_helpers import Gcf

    for manager in sorted(Gcf.get_all_fig_managers(), key=lambda m: m.num):
        fig = manager.canvas.figure

        def emit(fig=fig):
            try:
                emit_figure(fig)
            finally:
                plt.close(fig)

        if here:
            _show(emit)
        else:
            emit()


def show_figures():
    """pyplot's show(): the open figures, here."""
    close_figures(here=True)


def end_of_cell():
    """Called by the runtime when a cell ends, whatever its outcome."""
    close_figures()


def _pil_show(self, title=None, **kwargs):
    _show(lambda: emit_pil(self))


def install():
    """Makes ``display`` a builtin, as in a notebook, and hooks PIL.  pyplot
    needs no hook: its backend is kiln_mpl_backend, whose show() captures."""
    builtins.display = display
    hook_pil()
    import kiln_ipython

    kiln_ipython.install()


def hook_pil():
    """PIL's show() captures; called before every cell, for a PIL a cell
    imported itself."""
    image = sys.modules.get("PIL.Image")
    if image is not None and image.Image.show is not _pil_show:
        image.Image.show = _pil_show


# The rich text forms shown beside an object's text form.  Markdown is not
# among them: when an object has it, it is the text form itself.
_TEXT_MIMES = (
    ("_repr_html_", "text/html"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
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
    """Emits OBJ's rich forms and returns (text, mime, shown): its text
    form for the model, that form's mime (text/markdown or text/plain), and
    whether an image of it was emitted.

    Figures and PIL images become PNG outputs; objects with ``_repr_png_``,
    ``_repr_jpeg_`` or ``_repr_svg_`` their image; ``_repr_html_``,
    ``_repr_latex_`` and ``_repr_json_`` their forms.  The text form is
    the Markdown of ``_repr_markdown_`` or of a pandas table when there is
    one, else pandas' text or the repr.  A form that raises is skipped with
    a note on stderr; a repr that raises becomes a short text saying so.
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
        return f"<Figure {int(obj.bbox.width)}x{int(obj.bbox.height)}>", "text/plain", shown
    if mod.startswith("PIL.") and hasattr(obj, "tobytes") and hasattr(obj, "mode"):
        shown = True
        try:
            emit_pil(obj)
        except Exception as exc:
            _note(obj, "convert()", exc)
            shown = False
        return f"<PIL image {obj.width}x{obj.height} {obj.mode}>", "text/plain", shown
    before = len(outputs)
    mime = "text/plain"
    if not isinstance(obj, type):
        for method, image in (("_repr_png_", "image/png"), ("_repr_jpeg_", "image/jpeg")):
            data = _form(obj, method)
            # IPython's own display classes give their images as base64.
            if isinstance(data, str):
                try:
                    data = base64.b64decode(data, validate=True)
                except ValueError:
                    data = None
            if isinstance(data, (bytes, bytearray)):
                _add((image, _name("display", image.split("/")[1]), bytes(data), 0, 0))
        svg = _form(obj, "_repr_svg_")
        if isinstance(svg, (str, bytes, bytearray)) and svg:
            # An image, kept as an artifact like a PNG; never cut, which
            # would leave it unreadable (the reply's byte cap bounds it).
            data = svg.encode("utf-8", "backslashreplace") if isinstance(svg, str) else bytes(svg)
            _add(("image/svg+xml", _name("display", "svg"), data, *_svg_size(data)))
        for method, form in _TEXT_MIMES:
            data = _form(obj, method)
            if data is None:
                continue
            try:
                if form == "application/json" and not isinstance(data, str):
                    data = json.dumps(data)
                data = _cut(str(data), limit).encode("utf-8", "backslashreplace")
            except Exception as exc:
                _note(obj, f"{method}()", exc)
                continue
            _add((form, _name("display", "txt"), data, 0, 0))
        data = _form(obj, "_repr_markdown_")
        if data is not None:
            try:
                text, mime = str(data), "text/markdown"
            except Exception as exc:
                _note(obj, "_repr_markdown_()", exc)
    if text is None and mod.startswith("pandas"):
        text = _pandas_markdown(obj)
        if text is not None:
            mime = "text/markdown"
        else:
            text = _pandas_text(obj)
    if text is None:
        try:
            text = repr(obj)
        except Exception as exc:
            text = f"<repr of {type(obj).__qualname__} raised {_note(obj, '__repr__()', exc)}>"
    text = _cut(text, limit)
    shown = any(o[0].startswith("image/") for o in outputs[before:])
    return text, mime, shown


# A width or height attribute, its number and its unit.
_SVG_LENGTH = re.compile(rb'\s(width|height)\s*=\s*["\']\s*([0-9.]+)\s*([a-z]*)\s*["\']')
# CSS pixels per unit of an SVG length.
_SVG_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 9.6 / 2.54}


def _svg_size(data):
    """(width, height) in pixels of an SVG's root element when it gives
    them in absolute units, else (0, 0): said in the artifact's listing."""
    start = data.find(b"<svg")
    end = data.find(b">", start)
    if start < 0 or end < 0:
        return 0, 0
    size = {}
    for name, number, unit in _SVG_LENGTH.findall(data[start:end]):
        scale = _SVG_UNITS.get(unit.decode())
        try:
            if scale is not None and name not in size:
                size[name] = min(int(round(float(number) * scale)), 0xFFFFFFFF)
        except ValueError:
            pass
    return size.get(b"width", 0), size.get(b"height", 0)


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


# A table shows at most this many rows (head and tail, half each) and
# columns (first and last, half each); what is left out is an ellipsis row
# or column, and the shape below the table gives the whole size.
MAX_ROWS = 20
MAX_COLS = 20
_ELLIPSIS = "…"


def _pandas_markdown(obj):
    """A Markdown table of a DataFrame or Series, with pandas' footer, or
    None for any other pandas object (or one this cannot lay out)."""
    pd = sys.modules.get("pandas")
    if pd is None:
        return None
    try:
        if isinstance(obj, pd.DataFrame):
            if obj.shape[1] == 0:
                return None
            return _markdown_table(pd, obj) + f"\n\n[{obj.shape[0]} rows x {obj.shape[1]} columns]"
        if isinstance(obj, pd.Series):
            footer = [] if obj.name is None else [f"Name: {obj.name}"]
            footer += [f"Length: {len(obj)}", f"dtype: {obj.dtype}"]
            frame = obj.to_frame(name="" if obj.name is None else obj.name)
            return _markdown_table(pd, frame) + "\n\n" + ", ".join(footer)
    except Exception as exc:
        _note(obj, "(Markdown table)", exc)
    return None


def _cell(text, width):
    """TEXT as one cell of a Markdown table: its pipes escaped, its line
    breaks shown as \\n, and cut to WIDTH characters (pandas' column
    width) when WIDTH is set."""
    text = str(text).strip().replace("|", "\\|").replace("\r", "\\r").replace("\n", "\\n")
    if width and len(text) > width:
        text = text[: width - 1] + _ELLIPSIS
    return text


def _colwidth(pd):
    try:
        width = pd.get_option("display.max_colwidth")
    except Exception:
        return 50
    return width if isinstance(width, int) and width > 3 else None


def _column_text(values, width):
    """The shown values of one column (a Series), formatted by pandas all
    together, so that a column's numbers share their precision."""
    lines = values.to_string(index=False, header=False, length=False, dtype=False, name=False)
    lines = lines.split("\n")
    # Every value is on its own line (pandas escapes line breaks); if a
    # value's formatting ever breaks that, format each one alone.
    if len(lines) != len(values):
        lines = [str(v) for v in values]
    return [_cell(v, width) for v in lines]


def _markdown_table(pd, df):
    rows, cols = df.shape
    if rows > MAX_ROWS:
        half = MAX_ROWS // 2
        shown_rows = df.iloc[list(range(half)) + list(range(rows - half, rows))]
    else:
        half, shown_rows = None, df
    if cols > MAX_COLS:
        left = MAX_COLS // 2
        keep = list(range(left)) + list(range(cols - left, cols))
    else:
        left, keep = None, list(range(cols))

    width = _colwidth(pd)
    index = shown_rows.index
    header, align, body = [], [], []
    for level in range(index.nlevels):
        name = index.names[level]
        header.append(_cell("" if name is None else name, width))
        align.append("---")
        body.append(_column_text(pd.Series(index.get_level_values(level)), width))
    for n, j in enumerate(keep):
        if n == left:
            header.append(_ELLIPSIS)
            align.append("---")
            body.append([_ELLIPSIS] * len(shown_rows))
        column = shown_rows.iloc[:, j]
        label = df.columns[j]
        header.append(_cell(" / ".join(map(str, label)) if isinstance(label, tuple) else label, width))
        numeric = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
        align.append("---:" if numeric else "---")
        body.append(_column_text(column, width))

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for i in range(len(shown_rows)):
        if i == half:
            lines.append("| " + " | ".join([_ELLIPSIS] * len(header)) + " |")
        lines.append("| " + " | ".join(col[i] for col in body) + " |")
    return "\n".join(lines)


def _emit(obj, limit):
    """Makes OBJ's forms: its images and rich forms, and its text form
    unless an image shows it (a Markdown form is always kept: it says
    what a picture may not)."""
    text, mime, shown = format_object(obj, limit)
    if not shown or mime == "text/markdown":
        _add((mime, _name("display", "txt"), text.encode("utf-8", "backslashreplace"), 0, 0))


def _emit_raw(bundle, limit):
    """Makes the forms of BUNDLE, a dict of mime to data as IPython's
    display(raw=True) takes it; images may be bytes or base64 text."""
    if not isinstance(bundle, dict):
        _emit(bundle, limit)
        return
    for mime, data in bundle.items():
        try:
            if mime in ("image/png", "image/jpeg"):
                if isinstance(data, str):
                    data = base64.b64decode(data)
                _add((mime, _name("display", mime.split("/")[1]), bytes(data), 0, 0))
            elif mime == "image/svg+xml":
                data = data.encode("utf-8", "backslashreplace") if isinstance(data, str) else bytes(data)
                _add((mime, _name("display", "svg"), data, *_svg_size(data)))
            elif isinstance(mime, str) and mime.startswith(("text/", "application/json")):
                if mime == "application/json" and not isinstance(data, str):
                    data = json.dumps(data)
                data = _cut(str(data), limit).encode("utf-8", "backslashreplace")
                _add((mime, _name("display", "txt"), data, 0, 0))
        except Exception as exc:
            _note(bundle, f"[{mime!r}]", exc)


def _display_id(display_id, transient):
    if isinstance(transient, dict) and transient.get("display_id") is not None:
        display_id = transient["display_id"]
    if display_id is True:
        return os.urandom(16).hex()
    return None if display_id is None or display_id is False else str(display_id)


def display(*objs, include=None, exclude=None, metadata=None, transient=None, display_id=None,
            raw=False, clear=False, update=False, **kwargs):
    """Shows each object at this point of the cell's output, as a
    notebook does (IPython's display: display_id names the display, and
    then a DisplayHandle is returned; update=True gives the display of
    that id new content; clear=True clears the output first; raw=True
    takes dicts of mime to data)."""
    if clear:
        clear_output(wait=True)
    display_id = _display_id(display_id, transient)
    emit = _emit_raw if raw else _emit
    for obj in objs:
        if update and display_id is not None:
            _update(lambda obj=obj: emit(obj, max_result), display_id)
        else:
            _show(lambda obj=obj: emit(obj, max_result), display_id)
    if display_id is not None:
        return DisplayHandle(display_id)
    return None


def update_display(obj, *, display_id, **kwargs):
    """Gives the display named DISPLAY_ID the content of OBJ."""
    kwargs.pop("update", None)
    display(obj, display_id=display_id, update=True, **kwargs)


def clear_output(wait=False):
    """Clears what the cell has shown, as in a notebook: at once, or with
    WAIT when the next output comes (no flicker in a loop that redraws).
    The reply then holds only what was shown after it; the text the cell
    printed stays in the reply whole, since it is the cell's log, kept
    and numbered by byte (an agent reading it after a clear still needs
    an error printed before), where a notebook would clear it too."""
    global _clear_waiting
    _flush_streams()
    _kiln_mark.display(2, None, b"", bool(wait))
    if wait:
        _clear_waiting = True
    else:
        _clear_waiting = False
        _forget_shown()


class DisplayHandle:
    """A display a cell can show again or give new content, by its id."""

    def __init__(self, display_id=None):
        self.display_id = os.urandom(16).hex() if display_id is None else str(display_id)

    def __repr__(self):
        return f"<{type(self).__name__} display_id={self.display_id}>"

    def display(self, obj, **kwargs):
        kwargs.pop("display_id", None)
        display(obj, display_id=self.display_id, **kwargs)

    def update(self, obj, **kwargs):
        kwargs.pop("display_id", None)
        update_display(obj, display_id=self.display_id, **kwargs)
