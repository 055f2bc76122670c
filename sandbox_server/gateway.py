"""The one gateway from the server to a sandbox's runner.

Everything the server asks of a runner goes through here, and every failure comes out typed,
translated once:

* :meth:`RunnerGateway.request` -- an op the runner answers with one reply. A closed channel
  raises :class:`~.exceptions.SandboxGone`, no answer in time :class:`~.exceptions.RunnerTimeout`,
  a failed op :class:`~.exceptions.RunnerOpError` carrying the runner's
  :class:`~.runner.protocol.ErrorCode` (never its message text).
* :meth:`RunnerGateway.follow` -- a keyed op (an execution, a process stream, a directory
  watch): the runner's messages under one key, until a terminal message, the end of the
  channel, or a deadline.
* :meth:`RunnerGateway.send` -- a fire-and-forget op (interrupt, tool replies);
  :meth:`RunnerGateway.send_soon` one that may wait for the next write (an ack).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

from .channel import EOF_MESSAGE, ChannelClosed, ChannelInterrupted, RunnerChannel
from .exceptions import (
    Conflict,
    EngineUnavailable,
    RunnerOpError,
    RunnerTimeout,
    SandboxGone,
    SandboxStartError,
    SandboxUnresponsive,
    StreamOverflow,
)
from .runner.protocol import PROTOCOL_VERSION, ErrorCode, Msg, Op, major
from .sandbox import Sandbox

__all__ = ["DEADLINE", "IDLE", "Follow", "Message", "RunnerGateway", "check_hello"]

Message = dict[str, Any]

# Made by a Follow, never sent by a runner: nothing came for ``idle_s``; the deadline passed.
IDLE: Final[Message] = {"type": "idle"}
DEADLINE: Final[Message] = {"type": "deadline"}

# Keyed ops that the runner does not answer with a reply; their key travels as ``id``.
_UNREPLIED: Final = frozenset({Op.EXECUTE})


def check_hello(hello: dict[str, Any]) -> None:
    """Refuse a runner that speaks another major version of the protocol."""
    theirs = hello.get("protocol")
    if major(theirs) != major(PROTOCOL_VERSION):
        raise SandboxStartError(
            f"the sandbox runner speaks protocol {theirs or 'of an unknown version'}, this "
            f"server speaks {PROTOCOL_VERSION}: rebuild the runtime image with this server's "
            "version (`selfbox images build`)")


def is_eof(message: Message) -> bool:
    return message is EOF_MESSAGE or message.get("type") == Msg.EOF


class RunnerGateway:
    def __init__(self, reply_timeout_s: float = 30.0) -> None:
        self.reply_timeout_s = reply_timeout_s  # SELFBOX_RUNNER_REPLY_TIMEOUT_S

    def _channel(self, sandbox: Sandbox) -> RunnerChannel:
        if sandbox.state == "paused":
            raise Conflict(f"sandbox {sandbox.id} is paused")
        channel = sandbox.channel
        if channel is None or not sandbox.alive:
            raise SandboxGone(f"sandbox {sandbox.id} is gone: {sandbox.end_reason}",
                              sandbox_id=sandbox.id, state=sandbox.state)
        return channel

    async def request(self, sandbox: Sandbox, op: Op, *, timeout_s: float | None = None,
                      **fields: Any) -> Message:
        """Run one replied op; its reply on success, else a typed error."""
        if timeout_s is None:
            timeout_s = self.reply_timeout_s
        channel = self._channel(sandbox)
        try:
            reply = await channel.request(op, timeout_s=timeout_s, **fields)
        except ChannelInterrupted as exc:
            raise EngineUnavailable(f"the channel to sandbox {sandbox.id} dropped and is being "
                                    "attached again; retry") from exc
        except ChannelClosed as exc:
            raise SandboxGone(f"sandbox {sandbox.id} died: {sandbox.end_reason or exc}",
                              sandbox_id=sandbox.id) from exc
        except TimeoutError as exc:
            raise RunnerTimeout(
                f"the sandbox did not answer {str(op)!r} within {timeout_s:g} s: its code may "
                "hold every process slot (pids) or all its CPU; interrupt or kill it",
                op=str(op), sandbox_id=sandbox.id) from exc
        if reply.get("ok", True) is not True:
            error = _op_error(op, reply.get("error"))
            if error.code is ErrorCode.BUSY:
                raise SandboxUnresponsive(f"sandbox {sandbox.id} cannot handle {str(op)!r}: "
                                          f"{error.message}", op=str(op), sandbox_id=sandbox.id)
            raise error
        return reply

    async def send(self, sandbox: Sandbox, op: Op, **fields: Any) -> bool:
        """Send an op nobody answers; False if the channel is already closed."""
        channel = sandbox.channel
        if channel is None:
            return False
        try:
            await channel.send({"op": op, **fields})
        except ChannelClosed:
            return False
        return True

    def send_soon(self, sandbox: Sandbox, op: Op, **fields: Any) -> None:
        """Send an op nobody answers with the channel's next write (see
        :meth:`RunnerChannel.send_soon`); nothing if the channel is gone."""
        if sandbox.channel is not None:
            sandbox.channel.send_soon({"op": op, **fields})

    def follow(self, sandbox: Sandbox, op: Op, key: str, deadline: float | None, *,
               idle_s: float | None = None, terminal: Callable[[Message], bool] | None = None,
               max_pending: int | None = None, timeout_s: float | None = None,
               queue_size: int = 0, wants: Callable[[str], bool] | None = None,
               **fields: Any) -> Follow:
        """The messages of one keyed op; open it with ``async with`` (or :meth:`Follow.open`
        and :meth:`Follow.close`). ``deadline`` is in event-loop time. ``queue_size`` and
        ``wants``: see :meth:`RunnerChannel.subscribe`."""
        return Follow(self, sandbox, op, key, deadline, idle_s, terminal, max_pending,
                      timeout_s, fields, queue_size=queue_size, wants=wants)

    def rejoin(self, sandbox: Sandbox, op: Op, key: str, deadline: float | None, *,
               idle_s: float | None = None,
               terminal: Callable[[Message], bool] | None = None) -> Follow:
        """Follow a keyed op that is already running (started by an earlier server): the
        same stream, without sending the op again."""
        return Follow(self, sandbox, op, key, deadline, idle_s, terminal, None, 30.0, {},
                      send=False)


def _op_error(op: Op, raw: object) -> RunnerOpError:
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    try:
        code = ErrorCode(str(error.get("code")))
    except ValueError:
        code = ErrorCode.INTERNAL  # a runner that sends nonsense gets no special treatment
    value = str(error.get("value", "failed"))[:2000]
    return RunnerOpError(value, code=code, op=str(op), name=str(error.get("name", ""))[:100])


class Follow:
    """An async iterator over the runner's messages under one key.

    Yields runner messages, :data:`IDLE` after ``idle_s`` of silence, :data:`DEADLINE` once
    the deadline passes (the consumer may move :attr:`deadline` to go on; otherwise the
    iteration ends), and ends after a terminal message or the channel's EOF (yielded).
    """

    def __init__(self, gateway: RunnerGateway, sandbox: Sandbox, op: Op, key: str,
                 deadline: float | None, idle_s: float | None,
                 terminal: Callable[[Message], bool] | None, max_pending: int | None,
                 timeout_s: float | None, fields: dict[str, Any], send: bool = True,
                 queue_size: int = 0, wants: Callable[[str], bool] | None = None) -> None:
        self._gateway = gateway
        self._send = send
        self.sandbox = sandbox
        self.op = op
        self.key = key
        self.deadline = deadline
        self._idle_s = idle_s
        self._terminal = terminal
        self._max_pending = max_pending
        self._timeout_s = timeout_s
        self._fields = fields
        self._queue_size = queue_size
        self._wants = wants
        self._channel: RunnerChannel | None = None
        self._queue: asyncio.Queue[Message] | None = None
        self._expired: float | None = None
        self._ended = False
        self._held: Message | None = None  # taken from the queue, given at the next call
        self.reply: Message = {}

    async def open(self) -> Follow:
        channel = self._gateway._channel(self.sandbox)
        # Subscribe before the op goes out: no message can slip past.
        self._queue = channel.subscribe(self.key, self._queue_size, self._wants)
        self._channel = channel
        try:
            if not self._send:
                pass  # rejoined: the op is already running
            elif self.op in _UNREPLIED:
                # A closed channel is not an error here: the queue already holds its EOF.
                await self._gateway.send(self.sandbox, self.op, id=self.key, **self._fields)
            else:
                self.reply = await self._gateway.request(
                    self.sandbox, self.op, timeout_s=self._timeout_s, key=self.key,
                    **self._fields)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop routing this key's messages (idempotent, safe while a task is cancelled)."""
        if self._channel is not None:
            self._channel.unsubscribe(self.key)
            self._channel = None

    async def __aenter__(self) -> Follow:
        return await self.open()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    def __aiter__(self) -> Follow:
        return self

    async def __anext__(self) -> Message:
        queue = self._queue
        if queue is None:
            raise RuntimeError("open the Follow before iterating it")
        if self._ended or (self._expired is not None and self.deadline == self._expired):
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        message, self._held = self._held, None
        if message is None:
            if not queue.empty():
                message = queue.get_nowait()  # a message already queued is taken at once
            if message is not None and self._past_deadline(loop) and not self._ends(message):
                # A sandbox that writes without a pause keeps the queue full: its deadline
                # comes all the same (the message waits for the next call).
                self._held = message
                return self._expire()
        if message is None:
            waits = [] if self._idle_s is None else [self._idle_s]
            if self.deadline is not None:
                waits.append(max(self.deadline - loop.time(), 0.0))
            try:
                # Under a timeout scope: asyncio.wait_for would wrap the get in a task of its
                # own, per message.
                async with asyncio.timeout(min(waits) if waits else None):
                    message = await queue.get()
            except TimeoutError:
                return self._expire() if self._past_deadline(loop) else IDLE
        if self._max_pending is not None and queue.qsize() > self._max_pending:
            raise StreamOverflow(f"more than {self._max_pending} messages of {self.op!r} wait "
                                 "for a slow reader", limit="max_pending")
        if self._ends(message):
            self._ended = True
        return message

    def _expire(self) -> Message:
        self._expired = self.deadline
        return DEADLINE

    def _past_deadline(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self.deadline is not None and loop.time() >= self.deadline

    def _ends(self, message: Message) -> bool:
        return is_eof(message) or (self._terminal is not None and self._terminal(message))
