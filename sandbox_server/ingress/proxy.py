"""HTTP/1.1 over a :class:`~.tunnel.PortTunnel`: one request, one tunnel, one response.

The response comes from code in the sandbox, so it is parsed by ``h11`` (a maintained HTTP/1.1
state machine, already a dependency of uvicorn) with a cap on the head's size; the body is
streamed to the client as it arrives, flow-controlled end to end (a client that reads slowly
slows the sandbox's server, it never fills this process's memory).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import h11
from starlette.responses import StreamingResponse

from .tunnel import PortTunnel, TunnelBroken

__all__ = ["HOP_BY_HOP", "MAX_HEAD_BYTES", "forward_http"]

MAX_HEAD_BYTES = 64 << 10
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "expect",
})


class BadUpstream(TunnelBroken):
    """The server in the sandbox answered something that is not HTTP/1.x."""

    error_code = "bad_upstream_response"


def _request_headers(headers: Iterable[tuple[str, str]], port: int, body: bytes,
                     forwarded: dict[str, str]) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
    # Dev servers (Vite, webpack, Django's ALLOWED_HOSTS) trust localhost; the public name
    # goes in X-Forwarded-Host.
    out.append(("host", f"localhost:{port}"))
    out.append(("content-length", str(len(body))))
    out.append(("connection", "close"))
    out.extend((k, v) for k, v in forwarded.items() if v)
    return out


async def _next_event(conn: h11.Connection, tunnel: PortTunnel, idle_timeout_s: float
                      ) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            await tunnel.close()
            raise BadUpstream(f"the server in the sandbox sent an invalid HTTP response: "
                              f"{exc}") from exc
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await tunnel.read(idle_timeout_s))


async def forward_http(tunnel: PortTunnel, *, method: str, target: str, port: int,
                       headers: Iterable[tuple[str, str]], body: bytes,
                       forwarded: dict[str, str], idle_timeout_s: float) -> StreamingResponse:
    """Send one request through ``tunnel``; the response streams its body, then closes it."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    try:
        request = h11.Request(method=method, target=target or "/",
                              headers=_request_headers(headers, port, body, forwarded))
        payload = conn.send(request) or b""
        payload += conn.send(h11.Data(data=body)) or b"" if body else b""
        payload += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError as exc:
        await tunnel.close()
        raise BadUpstream(f"cannot forward this request: {exc}") from exc
    try:
        await tunnel.write(payload)
        while True:
            event = await _next_event(conn, tunnel, idle_timeout_s)
            if isinstance(event, h11.Response):
                break
            if isinstance(event, h11.InformationalResponse):
                continue
            raise BadUpstream("the server in the sandbox closed the connection without an "
                              "HTTP response")
    except BaseException:
        await tunnel.close()
        raise

    response_headers = [(k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in event.headers if k.decode("latin-1") not in HOP_BY_HOP
                        or k == b"content-length"]

    async def body_stream() -> AsyncIterator[bytes]:
        try:
            while True:
                item = await _next_event(conn, tunnel, idle_timeout_s)
                if isinstance(item, h11.Data):
                    yield bytes(item.data)
                else:  # EndOfMessage, ConnectionClosed
                    return
        finally:
            await tunnel.close()

    response = StreamingResponse(body_stream(), status_code=event.status_code)
    response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1"))
                            for k, v in response_headers]
    return response
