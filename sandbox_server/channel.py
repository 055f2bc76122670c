"""The server's end of the persistent channel into a sandbox.

One attached socket per container (no published port, no network, no ``docker exec``): we
write NDJSON ops to the runner's stdin and read Docker's multiplexed stdout/stderr frames back.
Everything the runner sends is untrusted (user code shares its process): lines are size-capped,
must be JSON objects, and are routed only by the ids we chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from .inbound import OVERLONG, ChannelLimits, LineSplitter, TokenBucket, parse_frame
from .runner.protocol import Msg
from .tasks import BackgroundTasks

__all__ = ["EOF_MESSAGE", "ChannelClosed", "RunnerChannel"]

logger = logging.getLogger("selfbox.channel")

EOF_MESSAGE: dict[str, Any] = {"type": Msg.EOF}
_HEADER = struct.Struct(">BxxxI")
BIG_LINE_BYTES = 64 * 1024  # larger lines are looked at (_wanted) before they are parsed
_HEAD = re.compile(rb'\{\s*"type"\s*:\s*"(\w{1,32})"\s*,\s*"(id|req)"\s*:\s*"([^"\\]{1,128})"')
LINE_COST_BYTES = 16 * 1024  # what one line costs at least, of a sandbox's read budget
DROPPED_REPORT_EVERY_S = 10.0

_Routed = tuple[asyncio.Queue[dict[str, Any]], dict[str, Any]]


class ChannelClosed(Exception):
    pass


class RunnerChannel:
    def __init__(self, sock: socket.socket, name: str,
                 limits: ChannelLimits | None = None) -> None:
        self._sock = sock
        self.name = name
        self.limits = limits or ChannelLimits()
        self._lines = LineSplitter(self.limits.max_message_bytes)
        self._read_budget = TokenBucket(self.limits.read_bytes_per_s,
                                        2 * self.limits.max_message_bytes)
        self._log_budget = TokenBucket(self.limits.log_frames_per_s,
                                       self.limits.log_frames_burst)
        self.dropped_logs = 0
        self._dropped_reported_at = 0.0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscribers: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._wants: dict[str, Callable[[str], bool]] = {}
        self._requests: dict[str, asyncio.Future[dict[str, Any]]] = {}
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
        # Unguessable: code in the sandbox can write frames too, and must not answer for it.
        req = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[req] = future
        try:
            await self.send({"op": op, "req": req, **fields})
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._requests.pop(req, None)

    def subscribe(self, key: str, maxsize: int = 0,
                  wants: Callable[[str], bool] | None = None) -> asyncio.Queue[dict[str, Any]]:
        """A queue of the messages for ``key``. With ``maxsize``, a consumer that falls behind
        holds up this channel's reading (and so the sandbox's writes) instead of letting the
        queue grow: the memory a sandbox costs stays bounded. ``wants(type)`` tells whether a
        large frame of that type is still of use (not once a budget is spent)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        if self.closed.is_set():
            queue.put_nowait(EOF_MESSAGE)
        self._subscribers[key] = queue
        if wants is not None:
            self._wants[key] = wants
        return queue

    def unsubscribe(self, key: str) -> None:
        self._subscribers.pop(key, None)
        self._wants.pop(key, None)

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
        try:
            while True:
                header = await self._reader.readexactly(_HEADER.size)
                stream, size = _HEADER.unpack(header)
                # Docker's frames are small (its copy buffer), but read a large one in
                # pieces too: memory per sandbox stays bounded by the line limit.
                while size > 0:
                    payload = await self._reader.read(min(size, 1 << 16))
                    if not payload:
                        raise asyncio.IncompleteReadError(b"", size)
                    size -= len(payload)
                    lines_before = self._lines.lines
                    for queue, message in self._take(stream, payload):
                        await queue.put(message)
                    # A sandbox that sends faster than its budget waits here: Docker's
                    # buffers fill and its own writes block; other sandboxes do not notice.
                    # Each line costs at least LINE_COST_BYTES (parsing many small frames
                    # costs more than their bytes say). Always yield: buffered data never
                    # holds the event loop.
                    lines = self._lines.lines - lines_before
                    cost = len(payload) + lines * LINE_COST_BYTES
                    await asyncio.sleep(self._read_budget.debt_s(cost))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # never let a hostile runner crash the server
            logger.exception("channel %s failed", self.name)
        finally:
            self._mark_closed()

    def _take(self, stream: int, payload: bytes) -> list[_Routed]:
        """Handle what ``payload`` completes; return the messages for subscribers."""
        if stream == 2:  # the runner's own stderr: crashes, warnings
            self.stderr_tail = (self.stderr_tail + payload)[-4096:]
            return []
        routed: list[_Routed] = []
        for line in self._lines.feed(payload):
            if line is OVERLONG:
                self._log(f"dropped a line over {self.limits.max_message_bytes} bytes "
                          "(SELFBOX_RUNNER_MAX_MESSAGE_BYTES)")
                continue
            target = self._dispatch(line)
            if target is not None:
                routed.append(target)
        return routed

    def _log(self, text: str) -> None:
        """A line in the server's log on behalf of the sandbox, within its log budget."""
        if not self._log_budget.take():
            self.dropped_logs += 1
            return
        now = time.monotonic()
        if self.dropped_logs and now - self._dropped_reported_at >= DROPPED_REPORT_EVERY_S:
            logger.warning("runner %s: %d log lines dropped (SELFBOX_RUNNER_LOG_FRAMES_PER_S)",
                           self.name, self.dropped_logs)
            self.dropped_logs = 0
            self._dropped_reported_at = now
        logger.info("runner %s: %s", self.name, text[:500])

    def _wanted(self, line: bytes) -> bool:
        """For a large line: whether anyone would use it, judged from its head alone (the
        runner writes ``{"type":...,"id"|"req":...`` first). Parsing megabytes that a budget
        would drop anyway is what a flood costs the event loop; such lines are skipped."""
        head = _HEAD.match(line, 0, 256)
        if head is None:
            return False
        kind, key = head.group(1).decode(), head.group(3).decode()
        if head.group(2) == b"req":
            return kind == Msg.REPLY and key in self._requests
        if kind == Msg.LOG or key not in self._subscribers:
            return False
        wants = self._wants.get(key)
        return wants is None or wants(kind)

    def _dispatch(self, line: bytes) -> _Routed | None:
        if len(line) > BIG_LINE_BYTES and not self._wanted(line):
            return None
        message = parse_frame(line)
        if message is None:
            return None
        kind = message.get("type")
        if kind == Msg.READY:
            if not self.ready.is_set():  # the runner says it once; later ones are forged
                self.hello = message
                self.ready.set()
        elif kind == Msg.REPLY:
            future = self._requests.get(str(message.get("req")))
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == Msg.LOG:
            self._log(str(message.get("text")))
        else:
            queue = self._subscribers.get(str(message.get("id")))
            if queue is not None:
                return queue, message
        return None

    def _mark_closed(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for queue in self._subscribers.values():
            if queue.full():  # the end matters more than a message the consumer has not read
                queue.get_nowait()
            queue.put_nowait(EOF_MESSAGE)
        for future in self._requests.values():
            if not future.done():
                future.set_exception(ChannelClosed(f"channel to {self.name} closed"))
