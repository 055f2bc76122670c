"""Entry point: ``python -m selfbox_runner`` inside the sandbox container."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys


def _seed_matplotlib_config() -> None:
    # The font cache is built into the image; the root file system is read-only, so give
    # matplotlib a writable copy where it looks (MPLCONFIGDIR, on the sandbox's tmpfs).
    seed, target = "/opt/selfbox/mplconfig", os.environ.get("MPLCONFIGDIR", "")
    if target and os.path.isdir(seed) and not os.path.exists(target):
        with contextlib.suppress(OSError):
            shutil.copytree(seed, target)


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
    from .envd import ops as envd_ops  # the E2B-compatible data plane: files, processes
    kernel.ops.update(envd_ops(kernel))
    from .portforward import ops as portforward_ops  # ingress to a port inside the sandbox
    kernel.ops.update(portforward_ops(channel))
    mplbackend_hook.install(kernel)
    ipython_hook.install(kernel)
    try:
        kernel.serve()
    finally:
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
