"""The lean kernel's matplotlib backend: ``plt.show()`` shows the figures as PNG, then closes them.

Loaded by matplotlib (``MPLBACKEND=module://_lean_figures``) inside the kernel; the lean
kernel makes the name importable. Figures still open when a cell ends are shown the same
way, as the notebook's inline backend does.
"""

import sys

from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def show(*_args: object, **_kwargs: object) -> None:
    """Show every open figure through the kernel and close it."""
    kernel = sys.modules.get("_lean_kernel")
    if kernel is not None:
        kernel.show_figures()
