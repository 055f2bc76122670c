"""envd's ``process.Process`` RPCs: Start and Connect (server streams), StreamInput (a client
stream), List, SendSignal, SendInput, CloseStdin, Update (unary), PTY sessions included.
Commands run inside the sandbox, as the sandbox user, under the sandbox's limits; they outlive
the stream that started them (background commands), and any number of streams may follow one
process (Connect).

Output arrives from the runner as ``{"type": "proc", "id": <key>, ...}`` messages, routed by
the channel to the queue subscribed under a key chosen here, per stream.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Request, Response

from ..exceptions import StreamOverflow
from ..gateway import DEADLINE, IDLE, is_eof
from ..manager import SandboxManager
from ..routers.deps import Manager
from ..runner.protocol import Op
from ..sandbox import Sandbox
from .auth import DataSandbox
from .connect import END_STREAM, ConnectError, EnvelopeDecoder
from .rpc import read_stream_request, serve_stream, serve_unary, timeout_s
from .runner_ops import call_op, connect_errors

__all__ = ["router"]

router = APIRouter(prefix="/process.Process", tags=["e2b envd process"])

KEEPALIVE_S = 10.0  # well under the SDK's keepalive-ping-interval (50 s)
# Output waiting for a slow client is held in server memory: past this many runner messages
# (64 KiB each at most) the stream is dropped, not the server. The process keeps running.
MAX_PENDING_MESSAGES = 512
SIGNALS: dict[object, int] = {"SIGNAL_SIGKILL": 9, "SIGNAL_SIGTERM": 15, 9: 9, 15: 15}


def _selector(message: dict[str, Any]) -> dict[str, Any]:
    selector = message.get("process")
    if isinstance(selector, dict):
        if isinstance(selector.get("pid"), int):
            return {"pid": selector["pid"]}
        if isinstance(selector.get("tag"), str):
            return {"tag": selector["tag"]}
    raise ConnectError("invalid_argument", "process.pid or process.tag is required")


def _size(pty: dict[str, Any]) -> dict[str, int]:
    raw = pty.get("size")
    size: dict[str, Any] = raw if isinstance(raw, dict) else {}
    rows, cols = size.get("rows", 24), size.get("cols", 80)
    if not (isinstance(rows, int) and isinstance(cols, int) and 0 < rows < 10_000
            and 0 < cols < 10_000):
        raise ConnectError("invalid_argument", "pty.size needs rows and cols (1..9999)")
    return {"rows": rows, "cols": cols}


def _is_end(message: dict[str, Any]) -> bool:
    return message.get("event") == "end"


async def _follow(manager: SandboxManager, sandbox: Sandbox, op: Op, fields: dict[str, Any],
                  deadline_s: float | None) -> AsyncGenerator[dict[str, Any], None]:
    """The ProcessEvent stream of one process: start, data..., end."""
    key = secrets.token_hex(8)
    deadline = asyncio.get_running_loop().time() + deadline_s if deadline_s else None
    stream = manager.gateway.follow(sandbox, op, key, deadline, idle_s=KEEPALIVE_S,
                                    terminal=_is_end, max_pending=MAX_PENDING_MESSAGES,
                                    **fields)
    try:
        with connect_errors(sandbox):
            await stream.open()
        yield {"event": {"start": {"pid": stream.reply["pid"]}}}
        async for message in stream:
            if message is IDLE:
                yield {"event": {"keepalive": {}}}
            elif message is DEADLINE:
                raise ConnectError("deadline_exceeded", "the command's timeout was reached")
            elif is_eof(message):
                raise ConnectError("unavailable", f"sandbox {sandbox.id} was not found "
                                   "(it ended while the command ran)")
            elif message.get("event") == "data" and message.get("stream") in (
                    "stdout", "stderr", "pty"):
                yield {"event": {"data": {message["stream"]: str(message.get("data", ""))}}}
            elif _is_end(message):
                end = {"exitCode": int(message.get("exitCode", -1)),
                       "exited": bool(message.get("exited")),
                       "status": str(message.get("status", ""))}
                yield {"event": {"end": end}}
                return
    except StreamOverflow as exc:
        raise ConnectError("resource_exhausted", "the client reads the command's output "
                           "slower than it is produced; stream dropped (the command goes on; "
                           "reconnect to follow it)") from exc
    finally:
        stream.close()
        if sandbox.alive:
            # From a finally that may be unwinding a cancelled stream: not awaited here.
            manager.tasks.quietly(manager.gateway.request(
                sandbox, Op.PROC_UNSUBSCRIBE, timeout_s=5.0, key=key))


async def _failing(error: ConnectError) -> AsyncGenerator[dict[str, Any], None]:
    raise error
    yield {}  # pragma: no cover  (makes this an async generator)


@router.post("/Start")
async def start(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    try:
        message = await read_stream_request(request)
        config = message.get("process")
        if not isinstance(config, dict) or not isinstance(config.get("cmd"), str):
            raise ConnectError("invalid_argument", "process.cmd is required")
        pty = message.get("pty")
        fields = {
            "cmd": config["cmd"],
            "args": [str(a) for a in config.get("args") or []],
            "envs": {str(k): str(v) for k, v in (config.get("envs") or {}).items()},
            "cwd": config.get("cwd") or None,
            "tag": message.get("tag") or None,
            "stdin": bool(message.get("stdin")),
            "pty": _size(pty) if isinstance(pty, dict) else None,
        }
    except ConnectError as exc:
        return serve_stream(_failing(exc))
    return serve_stream(_follow(manager, sandbox, Op.PROC_START, fields, timeout_s(request)))


@router.post("/Connect")
async def connect(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    try:
        selector = _selector(await read_stream_request(request))
    except ConnectError as exc:
        return serve_stream(_failing(exc))
    return serve_stream(_follow(manager, sandbox, Op.PROC_SUBSCRIBE, selector,
                                timeout_s(request)))


@router.post("/List")
async def list_processes(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        reply = await call_op(manager, sandbox, Op.PROC_LIST)
        return {"processes": reply["processes"]}

    return await serve_unary(request, handle)


@router.post("/SendSignal")
async def send_signal(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        number = SIGNALS.get(message.get("signal"))
        if number is None:
            raise ConnectError("invalid_argument", "signal must be SIGNAL_SIGKILL or "
                               "SIGNAL_SIGTERM")
        await call_op(manager, sandbox, Op.PROC_SIGNAL, signal=number, **_selector(message))
        return {}

    return await serve_unary(request, handle)


@router.post("/SendInput")
async def send_input(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        raw = message.get("input")
        given: dict[str, Any] = raw if isinstance(raw, dict) else {}
        pty = "pty" in given
        await call_op(manager, sandbox, Op.PROC_INPUT, pty=pty,
                      data=str(given.get("pty" if pty else "stdin") or ""), **_selector(message))
        return {}

    return await serve_unary(request, handle)


@router.post("/Update")
async def update(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        pty = message.get("pty")
        if not isinstance(pty, dict):
            raise ConnectError("invalid_argument", "pty.size is required")
        await call_op(manager, sandbox, Op.PROC_RESIZE, size=_size(pty), **_selector(message))
        return {}

    return await serve_unary(request, handle)


@router.post("/CloseStdin")
async def close_stdin(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        await call_op(manager, sandbox, Op.PROC_CLOSE_STDIN, **_selector(message))
        return {}

    return await serve_unary(request, handle)


async def _one(message: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    yield message


@router.post("/StreamInput")
async def stream_input(request: Request, sandbox: DataSandbox, manager: Manager) -> Response:
    """A client stream: a start envelope naming the process, then input envelopes, each
    written to the process as it arrives (not buffered to the end)."""
    decoder = EnvelopeDecoder()
    selector: dict[str, Any] | None = None
    try:
        async for chunk in request.stream():
            for flags, message in decoder.feed(chunk):
                if flags & END_STREAM or not isinstance(message, dict):
                    continue
                if isinstance(message.get("start"), dict):
                    selector = _selector(message["start"])
                    continue
                data = message.get("data")
                given = data.get("input") if isinstance(data, dict) else None
                if not isinstance(given, dict):
                    continue  # a keepalive
                if selector is None:
                    raise ConnectError("invalid_argument", "the first message must be start")
                pty = "pty" in given
                await call_op(manager, sandbox, Op.PROC_INPUT, pty=pty,
                              data=str(given.get("pty" if pty else "stdin") or ""), **selector)
        if decoder.pending:
            raise ConnectError("invalid_argument", "the input stream ended mid-envelope")
    except ConnectError as exc:
        return serve_stream(_failing(exc))
    return serve_stream(_one({}))


@router.post("/{method}")
async def unimplemented(method: str, request: Request, sandbox: DataSandbox) -> Response:
    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        raise ConnectError("unimplemented", f"process.Process/{method} is not supported by "
                           "selfbox")

    return await serve_unary(request, handle)
