"""selfbox's stand-in for IPython: only ``IPython.display`` (see ``selfbox_runner.ipython_hook``).

``get_ipython()`` returns None, as in a plain Python process: libraries that probe for a
notebook shell then take their plain-Python path.
"""

from __future__ import annotations

from typing import Any

from . import display

__all__ = ["display", "get_ipython"]
version_info = (0, 0, 0, "selfbox-shim")


def get_ipython() -> Any:
    return None
