"""The server's end of an ingress tunnel against a hostile runner (in-process fakes of the
channel; the real runner is exercised in test_ingress.py): it grants credit as its reader
consumes, and drops the tunnel when the runner ignores the window or sends garbage."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from sandbox_server.ingress.tunnel import WINDOW_BYTES, PortTunnel, TunnelBroken
from sandbox_server.runner.portforward import CHUNK_BYTES
from sandbox_server.runner.protocol import Op


class FakeChannel:
    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.sent: list[dict[str, Any]] = []

    def subscribe(self, key: str) -> asyncio.Queue[dict[str, Any]]:
        self.queues[key] = asyncio.Queue()
        return self.queues[key]

    def unsubscribe(self, key: str) -> None:
        self.queues.pop(key, None)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


class FakeSandbox:
    id = "sb1"
    alive = True
    end_reason = ""

    def __init__(self) -> None:
        self.channel = FakeChannel()
        self.extra: dict[str, Any] = {}


class FakeGateway:
    """The RunnerGateway's surface a tunnel uses: replied ops and fire-and-forget ones."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def request(self, sandbox: Any, op: str, *, timeout_s: float = 30.0,
                      **fields: Any) -> dict[str, Any]:
        self.requests.append((op, fields))
        return {"ok": True}

    async def send(self, sandbox: Any, op: str, **fields: Any) -> bool:
        await sandbox.channel.send({"op": op, **fields})
        return True


def data(payload: bytes, key: str) -> dict[str, Any]:
    return {"type": "pf", "id": key, "event": "data",
            "data": base64.b64encode(payload).decode()}


async def opened() -> tuple[PortTunnel, FakeSandbox, FakeGateway]:
    sandbox, gateway = FakeSandbox(), FakeGateway()
    tunnel = await PortTunnel.open(gateway, sandbox, 8000, max_per_sandbox=4)  # type: ignore[arg-type]
    assert gateway.requests[0][0] == Op.PF_OPEN
    assert sandbox.extra["ingress_open"] == 1
    return tunnel, sandbox, gateway


def test_credit_is_granted_as_the_reader_consumes() -> None:
    async def scenario() -> None:
        tunnel, sandbox, _ = await opened()
        queue = sandbox.channel.queues[tunnel.key]
        chunk = b"x" * CHUNK_BYTES
        total = 0
        for _ in range(3 * WINDOW_BYTES // CHUNK_BYTES):
            queue.put_nowait(data(chunk, tunnel.key))
            total += len(await tunnel.read(1.0))
        acks = [m for m in sandbox.channel.sent if m.get("op") == Op.PF_ACK]
        assert acks and sum(m["bytes"] for m in acks) >= total - WINDOW_BYTES
        queue.put_nowait({"type": "pf", "id": tunnel.key, "event": "eof"})
        assert await tunnel.read(1.0) == b""
        await tunnel.close()
        assert any(m.get("op") == Op.PF_CLOSE for m in sandbox.channel.sent)
        assert sandbox.extra["ingress_open"] == 0
        assert tunnel.key not in sandbox.channel.queues

    asyncio.run(scenario())


@pytest.mark.parametrize(("message", "what"), [
    ({"type": "pf", "event": "data", "data": "!!!not base64!!!"}, "undecodable"),
    ({"type": "pf", "event": "data", "data": "A" * (CHUNK_BYTES * 2)}, "over-long"),
    ({"type": "proc", "event": "data", "data": ""}, "another kind"),
    ({"type": "pf", "event": "surprise"}, "unknown event"),
])
def test_garbage_from_the_runner_drops_the_tunnel(message: dict[str, Any], what: str) -> None:
    async def scenario() -> None:
        tunnel, sandbox, _ = await opened()
        sandbox.channel.queues[tunnel.key].put_nowait({**message, "id": tunnel.key})
        with pytest.raises(TunnelBroken, match=what):
            await tunnel.read(1.0)
        assert sandbox.extra["ingress_open"] == 0  # its slot is given back

    asyncio.run(scenario())


def test_a_runner_that_ignores_the_window_loses_the_tunnel() -> None:
    async def scenario() -> None:
        tunnel, sandbox, _ = await opened()
        queue = sandbox.channel.queues[tunnel.key]
        for _ in range(WINDOW_BYTES // CHUNK_BYTES + 1):  # one chunk past the window
            queue.put_nowait(data(b"y" * CHUNK_BYTES, tunnel.key))
        with pytest.raises(TunnelBroken, match="ignored flow control"):
            # The reader has not consumed anything yet, so no credit was granted back.
            for _ in range(WINDOW_BYTES // CHUNK_BYTES + 1):
                tunnel._consumed = 0  # a reader that does not consume: no grants
                await tunnel.read(1.0)

    asyncio.run(scenario())


def test_a_silent_server_times_out_and_the_cap_is_enforced() -> None:
    async def scenario() -> None:
        tunnel, sandbox, gateway = await opened()
        with pytest.raises(TunnelBroken, match="sent nothing"):
            await tunnel.read(0.05)
        sandbox.extra["ingress_open"] = 4
        from sandbox_server.exceptions import TooManySandboxes

        with pytest.raises(TooManySandboxes, match="MAX_INGRESS_CONNECTIONS_PER_SANDBOX"):
            await PortTunnel.open(gateway, sandbox, 8000, max_per_sandbox=4)  # type: ignore[arg-type]

    asyncio.run(scenario())
