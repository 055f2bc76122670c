"""One TCP connection to ``127.0.0.1:<port>`` inside a sandbox, carried over its runner channel
(the runner side is :mod:`sandbox_server.runner.portforward`).

The runner is untrusted (user code shares its process), so this end enforces the protocol:
every data message must fit the credit this end granted and decode to at most one chunk; a
runner that sends more, or floods the channel, loses the tunnel. The window bounds what is
buffered here per tunnel; the read deadline bounds how long a silent server holds a tunnel.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from typing import Any

from ..exceptions import (
    Conflict,
    InvalidRequest,
    RunnerOpError,
    SandboxGone,
    ServerError,
    TooManySandboxes,
)
from ..gateway import RunnerGateway, is_eof
from ..runner.portforward import CHUNK_BYTES
from ..runner.protocol import ErrorCode, Msg, Op
from ..sandbox import Sandbox

__all__ = ["PortTunnel", "PortUnreachable", "TunnelBroken"]

WINDOW_BYTES = 256 << 10
MAX_QUEUED_MESSAGES = 4096  # more pending messages than an honest runner could send
OPEN_KEY = "ingress_open"


class PortUnreachable(ServerError):
    """Nothing listens on that port in the sandbox (or it refused the connection)."""

    error_code = "port_unreachable"
    server_fault = False  # the sandbox's business, not the server's


class TunnelBroken(ServerError):
    """The sandbox broke the tunnel's protocol, closed it, or went silent."""

    error_code = "tunnel_broken"
    server_fault = False


class PortTunnel:
    def __init__(self, gateway: RunnerGateway, sandbox: Sandbox, key: str,
                 queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._gateway = gateway
        self._sandbox = sandbox
        self.key = key
        self._queue = queue
        self._outstanding = 0  # bytes received, not yet acknowledged
        self._consumed = 0  # bytes handed to the reader since the last ack
        self._eof = False
        self._closed = False
        self._write_lock = asyncio.Lock()  # chunks of one write never interleave with another's

    @classmethod
    async def open(cls, gateway: RunnerGateway, sandbox: Sandbox, port: int,
                   max_per_sandbox: int) -> PortTunnel:
        if not 0 < port < 65536:
            # The client's mistake, not the sandbox's: a 422 naming the range, never a 502.
            raise InvalidRequest(f"port must be 1..65535, got {port}", limit="port")
        channel = sandbox.channel
        if channel is None or not sandbox.alive:
            raise SandboxGone(f"sandbox {sandbox.id} is gone: {sandbox.end_reason}")
        open_now = int(sandbox.extra.get(OPEN_KEY, 0))
        if open_now >= max_per_sandbox:
            raise TooManySandboxes(
                f"sandbox {sandbox.id} already has {open_now} open ingress connections "
                f"(SELFBOX_MAX_INGRESS_CONNECTIONS_PER_SANDBOX={max_per_sandbox})",
                cap="max_ingress_connections_per_sandbox")
        key = "pf-" + secrets.token_hex(8)
        queue = channel.subscribe(key)  # before the op: no data can slip past
        sandbox.extra[OPEN_KEY] = open_now + 1
        tunnel = cls(gateway, sandbox, key, queue)
        try:
            await gateway.request(sandbox, Op.PF_OPEN, timeout_s=10.0, key=key, port=port,
                                  window=WINDOW_BYTES)
        except RunnerOpError as exc:
            await tunnel._release()
            if exc.code == ErrorCode.LIMIT_REACHED:
                raise TooManySandboxes(f"sandbox {sandbox.id} has too many forwarded "
                                       "connections", cap="runner") from exc
            raise PortUnreachable(
                f"nothing answers on port {port} in sandbox {sandbox.id} "
                f"({exc.details.get('name') or exc.code}); start a server listening on "
                f"127.0.0.1:{port} or 0.0.0.0:{port} inside it", port=port) from exc
        except BaseException:
            await tunnel._release()
            raise
        return tunnel

    async def write(self, data: bytes) -> None:
        """Send bytes to the server in the sandbox; returns once they are in its socket."""
        async with self._write_lock:
            for start in range(0, len(data), CHUNK_BYTES):
                chunk = data[start:start + CHUNK_BYTES]
                await self._op(Op.PF_WRITE, data=base64.b64encode(chunk).decode("ascii"))

    async def half_close(self) -> None:
        await self._op(Op.PF_WRITE, data="", half_close=True)

    async def _op(self, op: Op, **fields: Any) -> None:
        try:
            await self._gateway.request(self._sandbox, op, timeout_s=30.0, key=self.key,
                                        **fields)
        except (SandboxGone, Conflict) as exc:
            raise TunnelBroken(str(exc)) from exc
        except RunnerOpError as exc:
            raise TunnelBroken(f"the connection in the sandbox failed: "
                               f"{exc.message[:300]}") from exc
        except ServerError as exc:
            raise TunnelBroken(f"the sandbox did not take the data: {exc}") from exc

    async def read(self, timeout_s: float) -> bytes:
        """The next bytes from the server in the sandbox; ``b""`` once it closed."""
        if self._eof:
            return b""
        if self._queue.qsize() > MAX_QUEUED_MESSAGES:
            await self._violation("flooded the channel")
        await self._grant()
        try:
            message = await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError as exc:
            raise TunnelBroken(f"the server in the sandbox sent nothing for {timeout_s} s "
                               "(SELFBOX_INGRESS_IDLE_TIMEOUT_S)") from exc
        if is_eof(message):
            self._eof = True
            raise TunnelBroken(f"sandbox {self._sandbox.id} ended")
        if message.get("type") != Msg.PF:
            await self._violation("sent a message of another kind")
        event = message.get("event")
        if event == "eof":
            self._eof = True
            return b""
        if event != "data":
            await self._violation("sent an unknown event")
        raw = message.get("data")
        # base64 of one chunk, checked before decoding.
        if not isinstance(raw, str) or len(raw) > (CHUNK_BYTES // 3 + 1) * 4:
            await self._violation("sent an over-long chunk")
        try:
            data = base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError):
            await self._violation("sent undecodable data")
        self._outstanding += len(data)
        if self._outstanding > WINDOW_BYTES:
            await self._violation("ignored flow control")
        self._consumed += len(data)
        return data

    async def _grant(self) -> None:
        # Credit back what the reader took, in batches (half a window), not per chunk.
        if self._consumed >= WINDOW_BYTES // 2:
            granted, self._consumed = self._consumed, 0
            self._outstanding -= granted
            await self._gateway.send(self._sandbox, Op.PF_ACK, key=self.key, bytes=granted)

    async def _violation(self, what: str) -> None:
        await self.close()
        raise TunnelBroken(f"sandbox {self._sandbox.id} {what} on an ingress connection; "
                           "connection dropped")

    async def close(self) -> None:
        if self._closed:
            return
        await self._release()
        if self._sandbox.alive:
            await self._gateway.send(self._sandbox, Op.PF_CLOSE, key=self.key)

    async def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sandbox.channel is not None:
            self._sandbox.channel.unsubscribe(self.key)
        self._sandbox.extra[OPEN_KEY] = max(int(self._sandbox.extra.get(OPEN_KEY, 1)) - 1, 0)
