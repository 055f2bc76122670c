"""ASGI middleware: a cap on request body size (before any parsing).

An answer sent before the request body has been read is easily lost: the server
closes a socket with unread bytes in it, the kernel resets the connection, and a
client still writing its upload sees "connection reset" instead of the 413. So
every early answer first drains what is left of the body (within a byte and time
budget, like nginx's lingering close); the connection then stays usable.
"""

from __future__ import annotations

import asyncio
import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body

__all__ = ["BodySizeLimit"]

# How much of an unwanted body is read and thrown away before answering; past
# either budget the answer goes out with "Connection: close".
DRAIN_MAX_BYTES = 256 * 1024 * 1024
DRAIN_TIMEOUT_S = 10.0


class _TooLarge(HTTPException):
    # An HTTPException, so that FastAPI's body parsing passes it on untouched (it turns
    # other errors into a 400) and the app's one error handler renders it.
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes "
                              "(SELFBOX_MAX_REQUEST_BODY_BYTES)")


def _framing(scope: Scope) -> tuple[bytes | None, bool, bytes | None]:
    """The first Content-Length, whether there is a Transfer-Encoding, and the first Expect
    (one pass over the headers)."""
    length = expect = None
    chunked = False
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            if length is None:
                length = bytes(value)
        elif key == b"transfer-encoding":
            chunked = True
        elif key == b"expect" and expect is None:
            expect = bytes(value)
    return length, chunked, expect


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, chunked, expect = _framing(scope)
        has_body = length.strip() not in (b"", b"0") if length is not None else chunked
        # A client waiting for "100 Continue" has sent nothing yet; reading would invite
        # the body, so an early answer goes out at once.
        body_done = not has_body or (expect or b"").lower() == b"100-continue"
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            else:  # the client went away
                body_done = True
            return message

        async def draining_send(message: Message) -> None:
            nonlocal started, body_done
            if message["type"] == "http.response.start":
                started = True
                if not body_done:
                    body_done = True
                    if not await _drain(receive):
                        message = {**message, "headers": [
                            *message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(draining_send)
            return
        try:
            await self.app(scope, limited_receive, draining_send)
        except _TooLarge:
            if not started:
                await self._reject(draining_send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(error_body(
            413, "payload_too_large", str(_TooLarge(self.max_bytes).detail))).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive) -> bool:
    """Read and discard the rest of the request body; False if a budget ran out first."""
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while drained <= DRAIN_MAX_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return True  # disconnected: nothing left to protect
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        pass
    return False
