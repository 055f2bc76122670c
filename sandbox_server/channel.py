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
import json
import logging
import re
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from .inbound import OVERLONG, ChannelLimits, LineSplitter, TokenBucket, parse_frame
from .runner.protocol import Msg, Op
from .tasks import BackgroundTasks

__all__ = ["EOF_MESSAGE", "ChannelClosed", "ChannelInterrupted", "RunnerChannel"]

logger = logging.getLogger("selfbox.channel")

EOF_MESSAGE: dict[str, Any] = {"type": Msg.EOF}
_HEADER = struct.Struct(">BxxxI")
BIG_LINE_BYTES = 64 * 1024  # larger lines are looked at (_wanted) before they are parsed
_HEAD = re.compile(rb'\{\s*"type"\s*:\s*"(\w{1,32})"\s*,\s*"(id|req)"\s*:\s*"([^"\\]{1,128})"')
LINE_COST_BYTES = 16 * 1024  # what one line costs at least, of a sandbox's read budget
YIELD_BYTES = 64 * 1024  # of that cost, read from the buffer between two yields at most
DROPPED_REPORT_EVERY_S = 10.0


def encode_op(message: dict[str, Any]) -> bytes:
    """One NDJSON line for the runner. orjson when its line reads back the same (it writes a
    non-finite float as null, so a line with a null in it is written again by the standard
    library, which also takes what orjson refuses: big integers, lone surrogates)."""
    try:
        data = orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        data = b"null"
    if b"null" in data:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    return data


class Inbox(asyncio.Queue[dict[str, Any]]):
    """A subscriber's queue. Its bound holds up the read loop (which waits for room); what
    must go in anyway (the end of the channel, messages the runner replays from its outbox,
    which are bounded by that outbox) goes in with :meth:`force_put`."""

    _forcing = False

    def full(self) -> bool:
        return not self._forcing and super().full()

    def force_put(self, item: dict[str, Any]) -> None:
        self._forcing = True
        try:
            self.put_nowait(item)
        finally:
            self._forcing = False


_Routed = tuple[Inbox, dict[str, Any]]


REATTACH_WINDOW_S = 60.0  # how long a dropped channel to a running container is retried
SEND_WAIT_S = 30.0  # how long a send waits for a channel that is being re-attached
DEFERRED_FLUSH_S = 1.0  # the longest an op sent with send_soon waits for the next write


class ChannelClosed(Exception):
    pass


class ChannelInterrupted(ChannelClosed):
    """The connection dropped while the container runs and is being attached again. A
    request in flight is lost; the sandbox is not."""


Reconnect = Callable[[], Awaitable[socket.socket | None]]


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
        self._subscribers: dict[str, Inbox] = {}
        self._wants: dict[str, Callable[[str], bool]] = {}
        self._requests: dict[str, asyncio.Future[dict[str, Any]]] = {}
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
        self._deferred = b""  # ops from send_soon, written before the next op
        self._soon_count = 0  # ops given to send_soon so far ...
        self._soon_confirmed = 0  # ... and how many of them a later reply shows were read
        self._flush_timer: asyncio.TimerHandle | None = None

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
        data = encode_op(message)
        async with self._write_lock:
            if self._deferred:
                data, self._deferred = self._deferred + data, b""
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                raise ChannelClosed(f"channel to {self.name} broke: {exc}") from exc

    def send_soon(self, message: dict[str, Any]) -> None:
        """Send an op that nothing waits for (an execution's ack) with the next op written,
        or within DEFERRED_FLUSH_S: back-to-back executions save a write, and the runner a
        wake-up, each. Lost, like any op, if the connection drops first."""
        if self.closed.is_set():
            return
        self._deferred += encode_op(message)
        self._soon_count += 1
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                DEFERRED_FLUSH_S, self._flush_deferred)

    def _flush_deferred(self) -> None:
        self._flush_timer = None
        data, self._deferred = self._deferred, b""
        if data and self._writer is not None and self.connected.is_set() \
                and not self.closed.is_set():
            # Whole lines only: a send holding the write lock has written all of its own.
            with contextlib.suppress(Exception):
                self._writer.write(data)

    async def request(self, op: str, timeout_s: float | None = 30.0,
                      **fields: Any) -> dict[str, Any]:
        """Send an op that the runner answers with a ``reply``; return that reply. Raw: the
        server calls this through :class:`~sandbox_server.gateway.RunnerGateway`, which types
        the failures."""
        # Unguessable: code in the sandbox can write frames too, and must not answer for it.
        req = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[req] = future
        try:
            await self.send({"op": op, "req": req, **fields})
            # The runner reads ops in order: a reply means what went before was read too.
            sent_after = self._soon_count
            reply = await asyncio.wait_for(future, timeout_s)
            self._soon_confirmed = max(self._soon_confirmed, sent_after)
            return reply
        finally:
            self._requests.pop(req, None)

    @property
    def unconfirmed(self) -> bool:
        """Whether an op given to :meth:`send_soon` may not have been read by the runner."""
        return self._soon_count > self._soon_confirmed

    def subscribe(self, key: str, maxsize: int = 0,
                  wants: Callable[[str], bool] | None = None) -> asyncio.Queue[dict[str, Any]]:
        """A queue of the messages for ``key``. With ``maxsize``, a consumer that falls behind
        holds up this channel's reading (and so the sandbox's writes) instead of letting the
        queue grow: the memory a sandbox costs stays bounded. ``wants(type)`` tells whether a
        large frame of that type is still of use (not once a budget is spent)."""
        queue = Inbox(maxsize)
        if self.closed.is_set():
            queue.put_nowait(EOF_MESSAGE)
        self._subscribers[key] = queue
        if wants is not None:
            self._wants[key] = wants
        return queue

    def unsubscribe(self, key: str) -> None:
        self._subscribers.pop(key, None)
        self._wants.pop(key, None)
        self._seq.pop(key, None)

    def seen(self, key: str) -> int:
        """The number of the last message of ``key`` delivered (0: none numbered)."""
        return self._seq.get(key, 0)

    def inject(self, message: dict[str, Any]) -> None:
        """Deliver a message the runner replayed from its outbox (duplicates are dropped)."""
        target = self._route(message)
        if target is not None:
            target[0].force_put(target[1])

    async def close(self) -> None:
        self.reconnect = None  # a close on purpose is not a drop
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._flush_deferred()  # a detaching server's last acks still go
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
        # A line cut by a dropped connection is not continued by the next one.
        self._lines = LineSplitter(self.limits.max_message_bytes)
        unyielded = 0
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
                    # costs more than their bytes say). Yield at least every YIELD_BYTES of
                    # that cost: buffered data never holds the event loop, and the frames of
                    # one short burst (a result and its "done") reach their reader together.
                    lines = self._lines.lines - lines_before
                    cost = len(payload) + lines * LINE_COST_BYTES
                    debt_s = self._read_budget.debt_s(cost)
                    unyielded += cost
                    if debt_s > 0 or unyielded >= YIELD_BYTES:
                        unyielded = 0
                        await asyncio.sleep(debt_s)
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
                    target = self._route(message)
                    if target is not None:
                        target[0].force_put(target[1])

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
            return self._route(message)
        return None

    def _route(self, message: dict[str, Any]) -> _Routed | None:
        """Where a keyed message goes (None: nowhere); the caller puts it there."""
        key = str(message.get("id"))
        queue = self._subscribers.get(key)
        if queue is None:
            return None
        seq = message.get("seq")
        if isinstance(seq, int):  # numbered by the runner's outbox: replays may repeat
            if seq <= self._seq.get(key, 0):
                return None
            self._seq[key] = seq
        return queue, message

    def _mark_closed(self) -> None:
        if self.closed.is_set():
            return
        self.connected.clear()
        self.closed.set()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        for queue in self._subscribers.values():
            queue.force_put(EOF_MESSAGE)
        for future in self._requests.values():
            if not future.done():
                future.set_exception(ChannelClosed(f"channel to {self.name} closed"))
