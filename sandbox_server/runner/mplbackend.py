"""A matplotlib backend (``MPLBACKEND=module://selfbox_runner.mplbackend``): Agg rendering, and
``plt.show()`` sends the open figures to the host as PNG results, as a notebook would."""

from __future__ import annotations

from typing import Any

from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def show(*args: Any, **kwargs: Any) -> None:
    from matplotlib import pyplot

    from . import mplbackend_hook

    kernel = getattr(mplbackend_hook, "kernel", None)
    for num in pyplot.get_fignums():
        if kernel is not None:
            kernel.display(pyplot.figure(num))
    pyplot.close("all")
