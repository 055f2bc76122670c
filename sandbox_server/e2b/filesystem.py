"""envd's ``filesystem.Filesystem`` RPCs (unary, JSON codec): ListDir, Stat, MakeDir, Remove,
Move. Each is one runner op, done inside the sandbox as the sandbox user."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from ..routers.deps import Manager
from .auth import DataSandbox
from .connect import ConnectError
from .rpc import serve_unary
from .runner_ops import call_op

__all__ = ["router"]

router = APIRouter(prefix="/filesystem.Filesystem", tags=["e2b envd filesystem"])


def _path(message: dict[str, Any], key: str = "path") -> str:
    value = message.get(key)
    if not isinstance(value, str) or not value:
        raise ConnectError("invalid_argument", f"{key} is required")
    return value


@router.post("/ListDir")
async def list_dir(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        depth = message.get("depth") or 1
        if not isinstance(depth, int) or depth < 1:
            raise ConnectError("invalid_argument", "depth must be a positive integer")
        reply = await call_op(manager, sandbox, "fs_list", path=_path(message), depth=depth)
        return {"entries": reply["entries"]}

    return await serve_unary(request, handle)


@router.post("/Stat")
async def stat(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        reply = await call_op(manager, sandbox, "fs_stat", path=_path(message))
        return {"entry": reply["entry"]}

    return await serve_unary(request, handle)


@router.post("/MakeDir")
async def make_dir(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        reply = await call_op(manager, sandbox, "fs_mkdir", path=_path(message))
        return {"entry": reply["entry"]}

    return await serve_unary(request, handle)


@router.post("/Remove")
async def remove(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        await call_op(manager, sandbox, "fs_remove", path=_path(message))
        return {}

    return await serve_unary(request, handle)


@router.post("/Move")
async def move(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        reply = await call_op(manager, sandbox, "fs_move", source=_path(message, "source"),
                              destination=_path(message, "destination"))
        return {"entry": reply["entry"]}

    return await serve_unary(request, handle)


@router.post("/{method}")
async def unimplemented(method: str, request: Request, sandbox: DataSandbox) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        raise ConnectError("unimplemented", f"filesystem.Filesystem/{method} is not supported "
                           "by selfbox")

    return await serve_unary(request, handle)
