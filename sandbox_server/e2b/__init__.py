"""selfbox's E2B-compatible API: the unmodified ``e2b`` / ``e2b-code-interpreter`` SDKs run
against a selfbox server when ``E2B_API_URL`` and ``E2B_SANDBOX_URL`` point at it.

* control plane (API key): :mod:`.control` — ``/sandboxes``, ``/v2/sandboxes``
* code interpreter (access token): :mod:`.interpreter` — ``/execute``, ``/contexts``
* envd (access token): :mod:`.envd_files` (``/files``, ``/health``), :mod:`.filesystem` and
  :mod:`.process` (Connect RPC, framing in :mod:`.connect`)
* features selfbox does not offer (fork, snapshots, templates, ...): :mod:`.unsupported` (501)

Everything runs through the one :class:`~sandbox_server.manager.SandboxManager`.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import control, envd_files, filesystem, interpreter, process, unsupported

__all__ = ["routers"]

routers: tuple[APIRouter, ...] = (
    control.router,
    interpreter.router,
    envd_files.router,
    filesystem.router,
    process.router,
    unsupported.router,
)
