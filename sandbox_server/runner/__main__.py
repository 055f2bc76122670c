"""Entry point: ``python -m selfbox_runner`` inside the sandbox container."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any


def _seed_matplotlib_config() -> None:
    # The font cache is built into the image; the root file system is read-only, so give
    # matplotlib a writable copy where it looks (MPLCONFIGDIR, on the sandbox's tmpfs).
    # A flat directory of a file or two: copied without shutil, a slow import at start-up.
    seed, target = "/opt/selfbox/mplconfig", os.environ.get("MPLCONFIGDIR", "")
    if target and os.path.isdir(seed) and not os.path.exists(target):
        with contextlib.suppress(OSError):
            os.makedirs(target)
            for entry in os.scandir(seed):
                if entry.is_file():
                    with open(entry.path, "rb") as src, \
                            open(os.path.join(target, entry.name), "wb") as dst:
                        dst.write(src.read())


class _LazyOps(dict[str, Any]):
    """The E2B data-plane ops (files, processes, watches) and port forwarding, imported on
    the first op the kernel does not know itself: most sandboxes never use them, and their
    imports are a good part of the runner's start-up time and memory."""

    def __init__(self, kernel: Any, own: dict[str, Any], channel: Any) -> None:
        super().__init__(own)
        self._kernel = kernel
        self._channel = channel
        self._loaded = False

    def get(self, key: str, default: Any = None) -> Any:
        if not self._loaded and key not in self:
            self._loaded = True
            from .envd import ops as envd_ops
            from .portforward import ops as portforward_ops

            self.update(envd_ops(self._kernel))
            self.update(portforward_ops(self._channel))
        return super().get(key, default)


def _enable_user_site() -> None:
    # The image's packages are read-only; `pip install` (with network) goes to the user's
    # site-packages on the writable home. Python adds that directory only if it exists at
    # start; list it anyway (the home stays empty), and a package installed later imports
    # without a restart once import caches are invalidated (the magics do it).
    import site

    path = site.getusersitepackages()
    if site.ENABLE_USER_SITE and path not in sys.path:
        # Ahead of the image's packages, where Python would have put it.
        first = next((i for i, p in enumerate(sys.path) if "-packages" in p), len(sys.path))
        sys.path.insert(first, path)


def _not_dumpable() -> None:
    # Other processes of the sandbox's user (children, shells) may not read this process's
    # memory or descriptors through /proc: the per-execution token that proves a "done"
    # frame is the runner's lives here.
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_dumpable = 4
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0)


def main() -> None:
    _not_dumpable()
    _seed_matplotlib_config()
    _enable_user_site()
    from . import ipython_hook, mplbackend_hook
    from .channel import Channel
    from .kernel import Kernel

    channel = Channel()
    kernel = Kernel(channel)
    # The E2B-compatible data plane and ingress to ports inside the sandbox, on first use.
    kernel.ops = _LazyOps(kernel, kernel.ops, channel)
    mplbackend_hook.install(kernel)
    ipython_hook.install(kernel)
    try:
        kernel.serve()
    finally:
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
