"""Serving Connect RPCs from FastAPI routes: unary calls and server streams.

Handlers raise :class:`ConnectError`; this module renders it the Connect way (a JSON error with
its status for unary calls, an end-stream envelope for streams).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from ..jsonsafe import SafeJSONResponse
from .connect import STREAM_CONTENT_TYPE, ConnectError, decode_single, encode_envelope, end_stream

__all__ = ["read_stream_request", "serve_stream", "serve_unary", "timeout_s"]

MAX_REQUEST_BYTES = 1 << 20  # RPC requests are small JSON; files go through /files


async def _body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():  # streaming calls send chunked bodies
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise ConnectError("resource_exhausted",
                               f"RPC request larger than {MAX_REQUEST_BYTES} bytes")
    return body


def _error(error: ConnectError) -> SafeJSONResponse:
    return SafeJSONResponse(error.to_json(), error.http_status)


def timeout_s(request: Request) -> float | None:
    """The client's deadline for the call (``connect-timeout-ms``), if any."""
    raw = request.headers.get("connect-timeout-ms", "")
    return int(raw) / 1000.0 if raw.isdigit() and int(raw) > 0 else None


async def serve_unary(request: Request,
                      handler: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> Response:
    try:
        raw = await _body(request)
        try:
            message = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ConnectError("invalid_argument", f"the request is not JSON: {exc}") from exc
        if not isinstance(message, dict):
            raise ConnectError("invalid_argument", "the request must be a JSON object")
        return SafeJSONResponse(await handler(message))
    except ConnectError as exc:
        return _error(exc)


async def read_stream_request(request: Request) -> dict[str, Any]:
    return decode_single(await _body(request))


def serve_stream(messages: AsyncGenerator[dict[str, Any], None]) -> StreamingResponse:
    """A 200 stream of envelopes; an error ends it with an end-stream error, as Connect says."""

    async def frames() -> AsyncGenerator[bytes, None]:
        try:
            async for message in messages:
                yield encode_envelope(message)
        except ConnectError as exc:
            yield end_stream(exc)
            return
        finally:
            await messages.aclose()  # unsubscribe now when the client goes away
        yield end_stream()

    # The media type must be exactly this (no charset): the SDK compares the raw header.
    return StreamingResponse(frames(), media_type=STREAM_CONTENT_TYPE,
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
