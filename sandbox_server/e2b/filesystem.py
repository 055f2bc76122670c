"""envd's ``filesystem.Filesystem`` RPCs (JSON codec): ListDir, Stat, MakeDir, Remove, Move,
and directory watching (CreateWatcher / GetWatcherEvents / RemoveWatcher, polled by the sync
SDK; the WatchDir stream, used by the async one). Each is a runner op, done inside the sandbox
as the sandbox user."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Request, Response

from ..gateway import DEADLINE, IDLE, is_eof
from ..manager import SandboxManager
from ..routers.deps import Manager
from ..runner.protocol import Op
from ..sandbox import Sandbox
from .auth import DataSandbox
from .connect import ConnectError
from .rpc import read_stream_request, serve_stream, serve_unary, timeout_s
from .runner_ops import call_op, connect_errors

__all__ = ["router"]

router = APIRouter(prefix="/filesystem.Filesystem", tags=["e2b envd filesystem"])

KEEPALIVE_S = 10.0


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
        reply = await call_op(manager, sandbox, Op.FS_LIST, path=_path(message), depth=depth)
        return {"entries": reply["entries"]}

    return await serve_unary(request, handle)


@router.post("/Stat")
async def stat(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        reply = await call_op(manager, sandbox, Op.FS_STAT, path=_path(message))
        return {"entry": reply["entry"]}

    return await serve_unary(request, handle)


@router.post("/MakeDir")
async def make_dir(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        reply = await call_op(manager, sandbox, Op.FS_MKDIR, path=_path(message))
        return {"entry": reply["entry"]}

    return await serve_unary(request, handle)


@router.post("/Remove")
async def remove(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        await call_op(manager, sandbox, Op.FS_REMOVE, path=_path(message))
        return {}

    return await serve_unary(request, handle)


@router.post("/Move")
async def move(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        reply = await call_op(manager, sandbox, Op.FS_MOVE, source=_path(message, "source"),
                              destination=_path(message, "destination"))
        return {"entry": reply["entry"]}

    return await serve_unary(request, handle)


@router.post("/CreateWatcher")
async def create_watcher(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        reply = await call_op(manager, sandbox, Op.WATCH_CREATE, path=_path(message),
                              recursive=bool(message.get("recursive")))
        return {"watcherId": reply["watcherId"]}

    return await serve_unary(request, handle)


@router.post("/GetWatcherEvents")
async def get_watcher_events(request: Request, sandbox: DataSandbox,
                             manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        reply = await call_op(manager, sandbox, Op.WATCH_EVENTS,
                              watcherId=_path(message, "watcherId"))
        return {"events": reply["events"]}

    return await serve_unary(request, handle)


@router.post("/RemoveWatcher")
async def remove_watcher(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        await call_op(manager, sandbox, Op.WATCH_REMOVE, watcherId=_path(message, "watcherId"))
        return {}

    return await serve_unary(request, handle)


async def _watch(manager: SandboxManager, sandbox: Sandbox, path: str, recursive: bool,
                 deadline_s: float | None) -> AsyncGenerator[dict[str, Any], None]:
    """The WatchDir stream: start, then filesystem events (and keepalives) until the client
    goes away or its deadline passes."""
    deadline = asyncio.get_running_loop().time() + deadline_s if deadline_s else None
    stream = manager.gateway.follow(sandbox, Op.WATCH_CREATE, secrets.token_hex(8), deadline,
                                    idle_s=KEEPALIVE_S, path=path, recursive=recursive)
    try:
        with connect_errors(sandbox):
            await stream.open()
        # WatchDirResponse's oneof is named "event", and a oneof's name is not in its JSON.
        yield {"start": {}}
        async for message in stream:
            if message is IDLE:
                yield {"keepalive": {}}
            elif message is DEADLINE:
                return  # the client's own deadline: a normal end of the watch
            elif is_eof(message):
                raise ConnectError("unavailable", f"sandbox {sandbox.id} was not found")
            elif isinstance(message.get("event"), dict):
                yield {"filesystem": message["event"]}
    finally:
        stream.close()
        watcher_id = stream.reply.get("watcherId")
        if watcher_id is not None and sandbox.alive:
            # From a finally that may be unwinding a cancelled stream: not awaited here.
            manager.tasks.quietly(manager.gateway.request(
                sandbox, Op.WATCH_REMOVE, timeout_s=5.0, watcherId=str(watcher_id)))


@router.post("/WatchDir")
async def watch_dir(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    try:
        message = await read_stream_request(request)
        path = _path(message)
    except ConnectError as exc:
        return serve_stream(_failing(exc))
    return serve_stream(_watch(manager, sandbox, path, bool(message.get("recursive")),
                               timeout_s(request)))


async def _failing(error: ConnectError) -> AsyncGenerator[dict[str, Any], None]:
    raise error
    yield {}  # pragma: no cover  (makes this an async generator)


@router.post("/{method}")
async def unimplemented(method: str, request: Request, sandbox: DataSandbox) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        raise ConnectError("unimplemented", f"filesystem.Filesystem/{method} is not supported "
                           "by selfbox")

    return await serve_unary(request, handle)
