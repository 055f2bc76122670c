"""Connect the matplotlib backend (imported lazily, by matplotlib) to the kernel."""

from __future__ import annotations

import os
import sys
from typing import Any

BACKEND = "module://selfbox_runner.mplbackend"


def install(kernel: Any) -> None:
    os.environ.setdefault("MPLBACKEND", BACKEND)
    # The backend module is imported by matplotlib only when a figure is drawn; it reads the
    # hook from this module's attribute then.
    sys.modules[__name__].kernel = kernel  # type: ignore[attr-defined]
