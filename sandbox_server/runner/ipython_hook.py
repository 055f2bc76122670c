"""A small ``IPython.display`` for sandboxes without IPython, wired to the kernel.

Code written for notebooks (and for E2B's Jupyter kernel) does ``from IPython.display import
display, HTML, Markdown, Image``. The shim package in ``shims/`` answers those imports; it is
put last on ``sys.path``, so a real IPython (in the image or pip-installed) always wins.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

HOOK_MODULE = "_selfbox_display"


def install(kernel: Any) -> None:
    hook = types.ModuleType(HOOK_MODULE)
    hook.show = kernel.show  # type: ignore[attr-defined]
    sys.modules[HOOK_MODULE] = hook
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "shims"))
