"""WebSocket over a :class:`~.tunnel.PortTunnel`: the client's WebSocket is accepted here and
relayed message by message to a WebSocket server inside the sandbox.

The sandbox side is spoken with ``wsproto`` (a maintained sans-I/O WebSocket implementation):
the handshake, framing, fragments, pings and close are parsed, never trusted. A message from
the sandbox is capped at :data:`MAX_MESSAGE_BYTES`; the tunnel's flow control bounds the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from starlette.websockets import WebSocket, WebSocketDisconnect
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .tunnel import PortTunnel, TunnelBroken

__all__ = ["MAX_MESSAGE_BYTES", "relay_websocket"]

MAX_MESSAGE_BYTES = 16 << 20
POLICY_VIOLATION = 1008
GOING_AWAY = 1001


async def _handshake(tunnel: PortTunnel, ws: WSConnection, target: str, port: int,
                     subprotocols: list[str], headers: Iterable[tuple[str, str]],
                     idle_timeout_s: float) -> AcceptConnection:
    await tunnel.write(ws.send(Request(host=f"localhost:{port}", target=target,
                                       subprotocols=subprotocols,
                                       extra_headers=[(k.encode(), v.encode())
                                                      for k, v in headers])))
    while True:
        data = await tunnel.read(idle_timeout_s)
        if not data:
            raise TunnelBroken("the server in the sandbox closed the connection during the "
                               "WebSocket handshake")
        try:
            ws.receive_data(data)
        except RemoteProtocolError as exc:
            raise TunnelBroken(f"the server in the sandbox refused the WebSocket: {exc}") from exc
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return event
            if isinstance(event, RejectConnection | RejectData):
                status = getattr(event, "status_code", 0)
                raise TunnelBroken(f"the server in the sandbox refused the WebSocket "
                                   f"(HTTP {status})")


async def relay_websocket(client: WebSocket, tunnel: PortTunnel, *, target: str, port: int,
                          headers: Iterable[tuple[str, str]], idle_timeout_s: float) -> None:
    """Handshake with the sandbox's server, accept the client, relay until either closes."""
    ws = WSConnection(ConnectionType.CLIENT)
    try:
        accepted = await _handshake(tunnel, ws, target, port, list(client.scope.get(
            "subprotocols") or []), headers, idle_timeout_s)
    except BaseException:
        await tunnel.close()
        raise
    await client.accept(subprotocol=accepted.subprotocol)

    async def to_sandbox() -> None:
        while True:
            try:
                message = await client.receive()
            except WebSocketDisconnect:
                message = {"type": "websocket.disconnect", "code": GOING_AWAY}
            if message["type"] == "websocket.disconnect":
                with contextlib.suppress(LocalProtocolError, TunnelBroken):
                    await tunnel.write(ws.send(CloseConnection(code=message.get("code")
                                                               or GOING_AWAY)))
                return
            if message.get("text") is not None:
                await tunnel.write(ws.send(Message(data=str(message["text"]))))
            elif message.get("bytes") is not None:
                await tunnel.write(ws.send(Message(data=bytes(message["bytes"]))))

    async def to_client() -> None:
        texts: list[str] = []
        blobs: list[bytes] = []
        size = 0
        while True:
            # Events first: the handshake's last read may already hold the first messages.
            for event in ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    if isinstance(event, TextMessage):
                        texts.append(event.data)
                    else:
                        blobs.append(bytes(event.data))
                    size += len(event.data)
                    if size > MAX_MESSAGE_BYTES:
                        await client.close(POLICY_VIOLATION, "message too large")
                        return
                    if event.message_finished:
                        if isinstance(event, TextMessage):
                            await client.send_text("".join(texts))
                        else:
                            await client.send_bytes(b"".join(blobs))
                        texts, blobs, size = [], [], 0
                elif isinstance(event, Ping):
                    await tunnel.write(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    with contextlib.suppress(LocalProtocolError, TunnelBroken):
                        await tunnel.write(ws.send(event.response()))
                    await client.close(event.code)
                    return
            data = await tunnel.read(idle_timeout_s)
            if not data:
                await client.close(GOING_AWAY)
                return
            try:
                ws.receive_data(data)
            except RemoteProtocolError:
                await client.close(POLICY_VIOLATION)
                return

    tasks = [asyncio.create_task(to_sandbox()), asyncio.create_task(to_client())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            with contextlib.suppress(TunnelBroken, WebSocketDisconnect, RuntimeError):
                task.result()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await tunnel.close()
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await client.close(GOING_AWAY)
