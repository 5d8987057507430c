"""Figure -> PNG: kiln's encoder against matplotlib's savefig, in one run.

Runs inside a kiln session (it needs the built-in _kiln_png module):

    build/kiln run benchmarks/figure_encode.py

The figure is the suite's: 5 lines with a legend, 640x480.  kiln encodes
the canvas's RGBA buffer (what a cell's figure costs after drawing);
savefig(format="png") is what a notebook or a script would call; PIL's
writer on the same buffer isolates the encoder from the drawing.
"""

import io
import statistics
import time

import _kiln_png
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

RUNS = 15

x = np.linspace(0, 10, 500)
fig = plt.figure()
for i in range(5):
    plt.plot(x, np.sin(x + i), label=f"line {i}")
plt.legend()
fig.canvas.draw()


def kiln():
    buf = fig.canvas.buffer_rgba()
    h, w = buf.shape[:2]
    return _kiln_png.encode(memoryview(buf).cast("B"), w, h)[0]


def savefig():
    b = io.BytesIO()
    fig.savefig(b, format="png")
    return b.getvalue()


def pil():
    buf = fig.canvas.buffer_rgba()
    b = io.BytesIO()
    Image.frombuffer("RGBA", (buf.shape[1], buf.shape[0]), bytes(buf), "raw", "RGBA", 0, 1).save(b, "PNG")
    return b.getvalue()


times = {f.__name__: [] for f in (kiln, savefig, pil)}
sizes = {}
for f in (kiln, savefig, pil):
    f()
for _ in range(RUNS):
    for f in (kiln, savefig, pil):  # interleaved
        t = time.perf_counter()
        data = f()
        times[f.__name__].append(time.perf_counter() - t)
        sizes[f.__name__] = len(data)

# Sanity: every encoder produced a PNG of the figure's size.
for f in (kiln, savefig, pil):
    im = Image.open(io.BytesIO(f()))
    assert (im.format, im.size) == ("PNG", (640, 480)), (f.__name__, im.format, im.size)

base = statistics.median(times["kiln"])
print("| encoder | median ms | bytes | time vs kiln |")
print("|---|---|---|---|")
for name, label in (("kiln", "kiln (_kiln_png, libpng)"), ("savefig", "matplotlib savefig(png)"), ("pil", "PIL save of the same buffer")):
    m = statistics.median(times[name])
    print(f"| {label} | {m * 1e3:.2f} | {sizes[name]} | {m / base:.1f}x |")
