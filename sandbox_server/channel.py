"""The server's end of the persistent channel into a sandbox.

One attached socket per container (no published port, no network, no ``docker exec``): we
write NDJSON ops to the runner's stdin and read Docker's multiplexed stdout/stderr frames back.
Everything the runner sends is untrusted (user code shares its process): lines are size-capped,
must be JSON objects, and are routed only by the ids we chose.

The connection may drop while the container runs (a restart of the Docker socket proxy): with
a :attr:`RunnerChannel.reconnect` set, the channel attaches again and asks the runner to replay
what its subscriptions missed (numbered messages, duplicates dropped) instead of closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .runner.protocol import Msg, Op
from .tasks import BackgroundTasks

__all__ = ["EOF_MESSAGE", "ChannelClosed", "ChannelInterrupted", "RunnerChannel"]

logger = logging.getLogger("selfbox.channel")

MAX_LINE_BYTES = 32 * 1024 * 1024
EOF_MESSAGE: dict[str, Any] = {"type": Msg.EOF}
_HEADER = struct.Struct(">BxxxI")


REATTACH_WINDOW_S = 60.0  # how long a dropped channel to a running container is retried
SEND_WAIT_S = 30.0  # how long a send waits for a channel that is being re-attached


class ChannelClosed(Exception):
    pass


class ChannelInterrupted(ChannelClosed):
    """The connection dropped while the container runs and is being attached again. A
    request in flight is lost; the sandbox is not."""


Reconnect = Callable[[], Awaitable[socket.socket | None]]


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
        # Attach again when the connection drops but the container runs (None: never).
        self.reconnect: Reconnect | None = None
        self.connected = asyncio.Event()
        self.reattached = 0
        self._seq: dict[str, int] = {}  # the last numbered message delivered per key
        self._tasks: BackgroundTasks | None = None

    async def start(self, tasks: BackgroundTasks) -> None:
        self._reader, self._writer = await asyncio.open_connection(sock=self._sock)
        self.connected.set()
        self._tasks = tasks
        self._task = tasks.spawn(self._read_loop(), name=f"channel-{self.name}")

    async def send(self, message: dict[str, Any]) -> None:
        if not self.connected.is_set() and not self.closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connected.wait(), SEND_WAIT_S)
            if not self.connected.is_set() and not self.closed.is_set():
                raise ChannelInterrupted(f"channel to {self.name} is being attached again")
        if self._writer is None or self.closed.is_set():
            raise ChannelClosed(f"channel to {self.name} is closed")
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        async with self._write_lock:
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                raise ChannelClosed(f"channel to {self.name} broke: {exc}") from exc

    async def request(self, op: str, timeout_s: float | None = 30.0,
                      **fields: Any) -> dict[str, Any]:
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
        self._seq.pop(key, None)

    def seen(self, key: str) -> int:
        """The number of the last message of ``key`` delivered (0: none numbered)."""
        return self._seq.get(key, 0)

    def inject(self, message: dict[str, Any]) -> None:
        """Deliver a message the runner replayed from its outbox (duplicates are dropped)."""
        self._route(message)

    async def close(self) -> None:
        self.reconnect = None  # a close on purpose is not a drop
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
        try:
            while await self._read_until_dropped() and await self._reattach():
                pass
        except asyncio.CancelledError:
            raise
        except Exception:  # never let a hostile runner crash the server
            logger.exception("channel %s failed", self.name)
        finally:
            self._mark_closed()

    async def _read_until_dropped(self) -> bool:
        """Read until the connection ends (then True)."""
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
            return True

    async def _reattach(self) -> bool:
        """The connection dropped: attach again while the container runs, then have the
        runner replay what the subscriptions missed. False: the container is gone."""
        if self.reconnect is None:
            return False
        self.connected.clear()
        for future in self._requests.values():
            if not future.done():
                future.set_exception(ChannelInterrupted(f"channel to {self.name} dropped"))
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        deadline, delay = time.monotonic() + REATTACH_WINDOW_S, 0.1
        while time.monotonic() < deadline and self.reconnect is not None:
            try:
                sock = await self.reconnect()
            except Exception as exc:
                logger.info("channel %s: attaching again failed (%s); retrying", self.name, exc)
            else:
                if sock is None:
                    return False  # the container stopped: a real death
                self._reader, self._writer = await asyncio.open_connection(sock=sock)
                self.reattached += 1
                self.connected.set()
                if self._subscribers and self._tasks is not None:
                    self._tasks.quietly(self._replay_missed(), name=f"replay-{self.name}")
                logger.warning("channel %s attached again", self.name)
                return True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return False

    async def _replay_missed(self) -> None:
        since = {key: self._seq.get(key, 0) for key in self._subscribers}
        reply = await self.request(Op.RESYNC, timeout_s=None, since=since)
        execution = reply.get("execution")
        if isinstance(execution, dict):
            for message in execution.get("messages") or []:
                if isinstance(message, dict):
                    self._route(message)

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
            self._route(message)

    def _route(self, message: dict[str, Any]) -> None:
        key = str(message.get("id"))
        queue = self._subscribers.get(key)
        if queue is None:
            return
        seq = message.get("seq")
        if isinstance(seq, int):  # numbered by the runner's outbox: replays may repeat
            if seq <= self._seq.get(key, 0):
                return
            self._seq[key] = seq
        queue.put_nowait(message)

    def _mark_closed(self) -> None:
        if self.closed.is_set():
            return
        self.connected.clear()
        self.closed.set()
        for queue in self._subscribers.values():
            queue.put_nowait(EOF_MESSAGE)
        for future in self._requests.values():
            if not future.done():
                future.set_exception(ChannelClosed(f"channel to {self.name} closed"))
