"""kiln's matplotlib backend: Agg, with a show() that captures.

Selected with MPLBACKEND=module://kiln_mpl_backend, so that pyplot imported
by a cell (not only the preloaded one) hands its figures to kiln.
"""

from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

import kiln_capture

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def show(*args, **kwargs):
    """Captures every open figure, in order, and closes it, at this
    point of the cell's output."""
    kiln_capture.show_figures()
