"""E2B's code-interpreter API: ``POST /execute`` (an NDJSON stream) and ``/contexts``.

Runs through the same ``SandboxManager.execute`` as ``/v1``; only the rendering differs.
Every line must be a JSON object with a ``type`` (the SDK ``json.loads`` each line, an empty
one included), so keepalives are ``{"type": "keepalive"}`` and nothing else is ever sent.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..exceptions import ContextNotFound, InvalidRequest, RunnerOpError, SandboxGone, ServerError
from ..jsonsafe import dumps_bytes
from ..manager import SandboxManager
from ..routers.deps import Manager
from ..runner.protocol import ErrorCode, Op
from ..sandbox import Sandbox
from .auth import DataSandbox, SandboxNotFound

__all__ = ["END_OF_EXECUTION", "render_event", "result_line", "router"]

router = APIRouter(tags=["e2b code interpreter"])

# A language's default context: python's is the runner's own; bash's is made on first use.
DEFAULT_CONTEXTS = {None: "default", "python": "default", "bash": "default-bash"}
DEFAULT_CONTEXT = "default"

# Jupyter MIME type -> the field of the SDK's Result; the rest goes to "extra".
_MIME_FIELDS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/chart": "chart",
    "e2b/data": "data",
}


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str
    context_id: str | None = Field(None, max_length=128)
    language: str | None = None
    env_vars: dict[str, str] | None = None


class ContextBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    language: str | None = None
    cwd: str | None = Field(None, max_length=4096)


def result_line(data: dict[str, Any], is_main_result: bool) -> dict[str, Any]:
    """A runner MIME bundle as the SDK's ``result`` line."""
    line: dict[str, Any] = {"type": "result", "is_main_result": is_main_result}
    extra: dict[str, Any] = {}
    for mime, value in data.items():
        field = _MIME_FIELDS.get(mime)
        if field is None:
            extra[mime] = value
        elif field == "json" and isinstance(value, str):
            try:
                line[field] = json.loads(value)
            except ValueError:
                extra[mime] = value
        elif field == "text" and isinstance(value, str) and len(value) >= 2 \
                and value[0] == value[-1] == "'":
            line[field] = value[1:-1]  # E2B's server strips a str repr's quotes: 'a' -> a
        else:
            line[field] = value
    if extra:
        line["extra"] = extra
    return line


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _line(message: dict[str, Any]) -> bytes:
    # Never fails mid-stream on text that is not UTF-8 encodable (a lone surrogate).
    return dumps_bytes(message) + b"\n"


END_OF_EXECUTION = b'{"type":"end_of_execution"}\n'


def render_event(event: dict[str, Any]) -> bytes:
    """A run's public event as the SDK's NDJSON lines (b"" for events it has no line for)."""
    kind = event["type"]
    if kind in ("stdout", "stderr"):
        # One line per message: the SDK hands each message to on_stdout as a line.
        stamp = _now()
        return b"".join(_line({"type": kind, "text": text, "timestamp": stamp})
                        for text in str(event["text"]).splitlines(keepends=True))
    if kind == "result":
        return _line(result_line(event.get("data") or {}, bool(event.get("is_main_result"))))
    if kind == "error":
        return _line({"type": "error", "name": event["name"], "value": event["value"],
                      "traceback": event["traceback"]})
    if kind == "keepalive":
        return _line({"type": "keepalive"})
    if kind == "execution":
        count = event["execution"].get("execution_count")
        if isinstance(count, int):
            return _line({"type": "number_of_executions", "execution_count": count})
    return b""


def _check_language(language: str | None) -> None:
    if language not in DEFAULT_CONTEXTS:
        raise InvalidRequest(f"language {language!r} is not supported; selfbox runs python "
                             "and bash")


async def _contexts(manager: SandboxManager, sandbox: Sandbox) -> dict[str, dict[str, str]]:
    reply = await _op(manager, sandbox, Op.CONTEXT_LIST)
    return {str(c["id"]): _context_json(str(c["id"]), str(c["cwd"]),
                                        str(c.get("language") or "python"))
            for c in reply.get("contexts", [])}


async def _op(manager: SandboxManager, sandbox: Sandbox, op: Op, **fields: Any) -> dict[str, Any]:
    try:
        return await manager.gateway.request(sandbox, op, **fields)
    except RunnerOpError as exc:
        if exc.code is ErrorCode.NOT_FOUND:
            raise ContextNotFound(exc.message) from exc
        if exc.code is ErrorCode.INVALID_ARGUMENT:
            raise InvalidRequest(exc.message) from exc
        raise
    except SandboxGone as exc:
        raise SandboxNotFound(f"sandbox {sandbox.id} was not found") from exc


def _restore_env(manager: SandboxManager, sandbox: Sandbox, previous: dict[str, Any]) -> None:
    # Runs from a finally that may be unwinding a cancelled request: do it in a task.
    manager.tasks.quietly(manager.gateway.request(sandbox, Op.ENV_APPLY, env=previous))


@router.post("/execute", summary="Run code, streaming NDJSON (E2B code interpreter)",
             response_class=StreamingResponse)
async def execute(body: ExecuteBody, sandbox: DataSandbox, manager: Manager) -> StreamingResponse:
    if body.language and body.context_id:
        raise InvalidRequest("give context_id or language, not both")
    _check_language(body.language)
    context = body.context_id or DEFAULT_CONTEXTS[body.language]
    if context != DEFAULT_CONTEXT and context not in await _contexts(manager, sandbox):
        if body.context_id:
            raise ContextNotFound(f"context {context!r} not found")
        await _op(manager, sandbox, Op.CONTEXT_CREATE, context=context, cwd="/home/user",
                  language=body.language)
    previous: dict[str, Any] | None = None
    if body.env_vars:
        previous = (await _op(manager, sandbox, Op.ENV_APPLY, env=body.env_vars))["previous"]
    # The SDK bounds the run with its own `timeout` (it does not send it) and disconnects;
    # a disconnect interrupts the code. The server's maximum is the backstop.
    events = manager.execute(sandbox, body.code, context=context, tools_answerable=False,
                             timeout_s=manager.settings.max_execution_timeout_s)
    try:
        await anext(events)  # start now, so an error (gone, busy, limits) is an HTTP error
    except BaseException:
        if previous is not None:
            _restore_env(manager, sandbox, previous)
        raise

    async def lines() -> AsyncIterator[bytes]:
        pending = previous  # env vars still to restore if the client goes away
        try:
            async for event in events:
                chunk = render_event(event)
                if chunk:
                    yield chunk
            if pending is not None:
                # Restore before the end line, so the next run cannot see these env vars.
                restore, pending = pending, None
                with contextlib.suppress(ServerError):
                    await manager.gateway.request(sandbox, Op.ENV_APPLY, env=restore)
            yield END_OF_EXECUTION
        finally:
            # Close the run now, not at garbage collection: a client gone mid-run has its
            # code interrupted right away.
            close = getattr(events, "aclose", None)  # an async generator, typed as iterator
            if close is not None:
                await close()
            if pending is not None:
                _restore_env(manager, sandbox, pending)

    return StreamingResponse(lines(), media_type="application/json",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


execute_route = router.routes[-1]  # for sandbox_server.fastpath's metrics label


def _context_json(context_id: str, cwd: str, language: str = "python") -> dict[str, str]:
    return {"id": context_id, "language": language, "cwd": cwd}


@router.post("/contexts", summary="Create a code context (a separate namespace)")
async def create_context(body: ContextBody, sandbox: DataSandbox,
                         manager: Manager) -> dict[str, str]:
    _check_language(body.language)
    context_id = secrets.token_hex(8)
    reply = await _op(manager, sandbox, Op.CONTEXT_CREATE, context=context_id,
                      cwd=body.cwd or "/home/user", language=body.language or "python")
    return _context_json(context_id, str(reply.get("cwd")), str(reply.get("language")))


@router.get("/contexts", summary="List code contexts")
async def list_contexts(sandbox: DataSandbox, manager: Manager) -> list[dict[str, str]]:
    return list((await _contexts(manager, sandbox)).values())


@router.post("/contexts/{context_id}/restart", status_code=204,
             summary="Restart a code context (fresh namespace)")
async def restart_context(context_id: str, sandbox: DataSandbox, manager: Manager) -> Response:
    await _op(manager, sandbox, Op.CONTEXT_RESTART, context=context_id)
    return Response(status_code=204)


@router.delete("/contexts/{context_id}", status_code=204, summary="Remove a code context")
async def remove_context(context_id: str, sandbox: DataSandbox, manager: Manager) -> Response:
    if context_id == DEFAULT_CONTEXT:
        raise InvalidRequest("the default context cannot be removed")
    await _op(manager, sandbox, Op.CONTEXT_REMOVE, context=context_id)
    return Response(status_code=204)
