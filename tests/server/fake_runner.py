"""A runner played by the test over a real :class:`RunnerChannel` (a socket pair)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from typing import Any

from sandbox_server.channel import RunnerChannel
from sandbox_server.sandbox import Limits, Sandbox
from sandbox_server.tasks import BackgroundTasks


def _frame(message: dict[str, Any]) -> bytes:
    payload = json.dumps(message).encode() + b"\n"
    return struct.pack(">BxxxI", 1, len(payload)) + payload


class FakeRunner:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    async def op(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        while b"\n" not in self.buffer:
            chunk = await loop.sock_recv(self.sock, 65536)
            assert chunk, "the server closed the channel"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    async def send(self, message: dict[str, Any]) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, _frame(message))


async def setup_channel(tasks: BackgroundTasks) -> tuple[Sandbox, FakeRunner, RunnerChannel]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    channel = RunnerChannel(ours, "test")
    await channel.start(tasks)
    sandbox = Sandbox(id="sb", owner="o", template="t",
                      limits=Limits(cpu=1, memory_mb=64, pids=64, disk_mb=64, network="none"),
                      metadata={}, env={}, created_at=time.time(),
                      expires_at=time.time() + 60, state="running", channel=channel)
    return sandbox, FakeRunner(theirs), channel
