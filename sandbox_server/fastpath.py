"""A direct ASGI route for the one hot call, ``POST /v1/sandboxes/{id}/execute``.

FastAPI's routing, dependency solving and exception plumbing cost more CPU than the rest of a
trivial execution together. This handler sits inside the request-id/metrics and body-size
middleware (so those apply unchanged) and serves a request only when everything about it is
ordinary: a JSON body, a valid key, a body that :class:`~.schemas.ExecuteRequest` accepts, a
sandbox of the caller's. Anything else — a bad key, invalid JSON, an unknown sandbox — is
handed, body and all, to the FastAPI route, which answers it exactly as before; errors of the
run itself go through the server's one error table. The FastAPI route stays the documented one
(OpenAPI) and runs the same :func:`~.routers.executions.run_to_end`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from executors.exceptions import SandboxError

from .auth import owner_of
from .errors import sandbox_error_response
from .fastjson import FastJSONResponse
from .routers.executions import run_to_end
from .schemas import ExecuteRequest

__all__ = ["ExecuteFastPath"]

_PATH = re.compile(r"/v1/sandboxes/([^/]+)/execute")
_JSON = (b"application/json", b"application/json; charset=utf-8")


class ExecuteFastPath:
    def __init__(self, app: ASGIApp, route: Any = None) -> None:
        self.app = app
        self.route = route  # the FastAPI route, for the metrics' route label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (_PATH.fullmatch(scope["path"]) if scope["type"] == "http"
                 and scope["method"] == "POST" and not scope.get("root_path") else None)
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
        # Read the body (the size limit outside has already bounded it).
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # gone: let the full stack see it
                await self.app(scope, _replay(b"".join(chunks), receive, message), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
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
            response = sandbox_error_response(exc, scope["method"], scope["path"])
        else:
            response = FastJSONResponse(execution)
        await response(scope, receive, send)


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
