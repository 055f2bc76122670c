"""Direct ASGI routes for the hot calls: ``POST /v1/sandboxes/{id}/execute`` and E2B's
``POST /execute`` (an NDJSON stream).

FastAPI's routing, dependency solving and exception plumbing cost more CPU than the rest of a
trivial execution together. This handler sits inside the request-id/metrics and body-size
middleware (so those apply unchanged) and serves a request only when everything about it is
ordinary: a JSON body, a valid key, a body that :class:`~.schemas.ExecuteRequest` accepts, a
sandbox of the caller's, no query string. Anything else — a bad key, invalid JSON, an unknown
sandbox — is handed, body and all, to the FastAPI route, which answers it exactly as before;
errors of the run itself go through the server's one error table. The FastAPI route stays the
documented one (OpenAPI) and runs the same :func:`~.routers.executions.run_to_end`; the E2B
stream renders with the same :func:`~.e2b.interpreter.render_event` and, like the route,
interrupts the code when the client goes away mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from executors.exceptions import SandboxError

from .auth import owner_of
from .e2b.auth import sandbox_for
from .e2b.interpreter import END_OF_EXECUTION, ExecuteBody, render_event
from .errors import sandbox_error_response
from .jsonsafe import dumps_bytes
from .routers.executions import run_to_end
from .schemas import ExecuteRequest

__all__ = ["ExecuteFastPath"]

_PATH = re.compile(r"/v1/sandboxes/([^/]+)/execute")
_JSON = (b"application/json", b"application/json; charset=utf-8")
_JSON_TYPE = (b"content-type", b"application/json")
_STREAM_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                   (b"x-accel-buffering", b"no")]


class ExecuteFastPath:
    def __init__(self, app: ASGIApp, route: Any = None, e2b_route: Any = None) -> None:
        self.app = app
        self.route = route  # the FastAPI routes, for the metrics' route label
        self.e2b_route = e2b_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A query string, a root path: not the plain case (the route may grow parameters).
        if (scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path")
                or scope.get("query_string")):
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/execute":
            await self._e2b(scope, receive, send)
            return
        match = _PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        authorization = api_key = content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":
                api_key = value
            elif name == b"content-type":
                content_type = value.lower()
        body = await _read_body(receive)
        if body is None:  # the client went away: let the full stack see it
            await self.app(scope, _replay(b"", receive, {"type": "http.disconnect"}), send)
            return
        state = scope["app"].state
        try:
            if content_type not in _JSON:
                raise LookupError
            owner = owner_of(authorization, api_key, state.settings.api_keys)
            request = ExecuteRequest.model_validate_json(body)
            sandbox = state.manager.get(owner, match.group(1))
        except (SandboxError, ValidationError, LookupError, AttributeError):
            await self.app(scope, _replay(body, receive), send)
            return
        if self.route is not None:
            scope["route"] = self.route
        try:
            execution = await run_to_end(state.manager, sandbox, request)
        except SandboxError as exc:
            await sandbox_error_response(exc, scope["method"], scope["path"])(
                scope, receive, send)
            return
        # What SafeJSONResponse(execution) sends, without building one.
        body = dumps_bytes(execution)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % len(body)), _JSON_TYPE]})
        await send({"type": "http.response.body", "body": body})


    async def _e2b(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = next((v.lower() for k, v in scope["headers"] if k == b"content-type"),
                            None)
        body = await _read_body(receive)
        if body is None:
            await self.app(scope, _replay(b"", receive, {"type": "http.disconnect"}), send)
            return
        state = scope["app"].state
        try:
            if content_type not in _JSON:
                raise LookupError
            sandbox = sandbox_for(Request(scope))
            request = ExecuteBody.model_validate_json(body)
            # Only the plain case: the default context, no per-run environment variables.
            if (request.context_id is not None or request.language not in (None, "python")
                    or request.env_vars):
                raise LookupError
        except (SandboxError, ValidationError, LookupError, AttributeError):
            await self.app(scope, _replay(body, receive), send)
            return
        if self.e2b_route is not None:
            scope["route"] = self.e2b_route
        manager = state.manager
        # As the route: the SDK bounds the run itself (and disconnects); the server's maximum
        # is the backstop.
        events = manager.execute(sandbox, request.code, context="default",
                                 tools_answerable=False,
                                 timeout_s=manager.settings.max_execution_timeout_s)
        try:
            try:
                await anext(events)  # start now, so an error is an HTTP error
            except SandboxError as exc:
                await sandbox_error_response(exc, "POST", "/execute")(scope, receive, send)
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": _STREAM_HEADERS})
            streaming = asyncio.ensure_future(_stream(events, send))
            gone = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait({streaming, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
                if not streaming.done():  # the client went away: stop the code now
                    streaming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gone
                with contextlib.suppress(asyncio.CancelledError):
                    await streaming
        finally:
            await events.aclose()


async def _stream(events: Any, send: Send) -> None:
    last = b""  # the run's summary line goes out with the end line, in one write
    async for event in events:
        chunk = render_event(event)
        if event["type"] == "execution":
            last += chunk
        elif chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": last + END_OF_EXECUTION,
                "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (the size limit outside has bounded it), or None if the client
    went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    """A receive that gives the body read so far, then whatever the client sends next."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if first is not None:
        pending.append(first)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
