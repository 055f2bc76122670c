"""The server's end of the persistent channel into a sandbox.

One attached socket per container (no published port, no network, no ``docker exec``): we
write NDJSON ops to the runner's stdin and read Docker's multiplexed stdout/stderr frames back.
Everything the runner sends is untrusted (user code shares its process): lines are size-capped,
must be JSON objects, and are routed only by the ids we chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
import struct
from typing import Any

from .runner.protocol import Msg
from .tasks import BackgroundTasks

__all__ = ["EOF_MESSAGE", "ChannelClosed", "RunnerChannel"]

logger = logging.getLogger("selfbox.channel")

MAX_LINE_BYTES = 32 * 1024 * 1024
EOF_MESSAGE: dict[str, Any] = {"type": Msg.EOF}
_HEADER = struct.Struct(">BxxxI")


class ChannelClosed(Exception):
    pass


class RunnerChannel:
    def __init__(self, sock: socket.socket, name: str) -> None:
        self._sock = sock
        self.name = name
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscribers: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._requests: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._request_ids = itertools.count(1)
        self._write_lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self.closed = asyncio.Event()
        self.hello: dict[str, Any] = {}
        self.stderr_tail = b""

    async def start(self, tasks: BackgroundTasks) -> None:
        self._reader, self._writer = await asyncio.open_connection(sock=self._sock)
        self._task = tasks.spawn(self._read_loop(), name=f"channel-{self.name}")

    async def send(self, message: dict[str, Any]) -> None:
        if self._writer is None or self.closed.is_set():
            raise ChannelClosed(f"channel to {self.name} is closed")
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        async with self._write_lock:
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                raise ChannelClosed(f"channel to {self.name} broke: {exc}") from exc

    async def request(self, op: str, timeout_s: float = 30.0, **fields: Any) -> dict[str, Any]:
        """Send an op that the runner answers with a ``reply``; return that reply. Raw: the
        server calls this through :class:`~sandbox_server.gateway.RunnerGateway`, which types
        the failures."""
        req = str(next(self._request_ids))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[req] = future
        try:
            await self.send({"op": op, "req": req, **fields})
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._requests.pop(req, None)

    def subscribe(self, key: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        if self.closed.is_set():
            queue.put_nowait(EOF_MESSAGE)
        self._subscribers[key] = queue
        return queue

    def unsubscribe(self, key: str) -> None:
        self._subscribers.pop(key, None)

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self._mark_closed()

    # -- reading --------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        assert self._reader is not None
        buffer = b""
        try:
            while True:
                header = await self._reader.readexactly(_HEADER.size)
                stream, size = _HEADER.unpack(header)
                payload = await self._reader.readexactly(size)
                if stream == 2:  # the runner's own stderr: crashes, warnings
                    self.stderr_tail = (self.stderr_tail + payload)[-4096:]
                    continue
                buffer += payload
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._dispatch(line)
                if len(buffer) > MAX_LINE_BYTES:
                    logger.warning("dropping an over-long line from %s", self.name)
                    buffer = b""
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # never let a hostile runner crash the server
            logger.exception("channel %s failed", self.name)
        finally:
            self._mark_closed()

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == Msg.READY:
            self.hello = message
            self.ready.set()
        elif kind == Msg.REPLY:
            future = self._requests.get(str(message.get("req")))
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == Msg.LOG:
            logger.info("runner %s: %s", self.name, str(message.get("text"))[:500])
        else:
            queue = self._subscribers.get(str(message.get("id")))
            if queue is not None:
                queue.put_nowait(message)

    def _mark_closed(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for queue in self._subscribers.values():
            queue.put_nowait(EOF_MESSAGE)
        for future in self._requests.values():
            if not future.done():
                future.set_exception(ChannelClosed(f"channel to {self.name} closed"))
