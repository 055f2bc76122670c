"""Running code in a sandbox: one execution is one :meth:`RunnerGateway.follow` of the
``execute`` op, with the timeout ladder (interrupt, then kill after a grace period), host tool
calls, and the clean-up when a client walks away mid-run.

Held by :class:`~sandbox_server.manager.SandboxManager`; what it needs of the lifecycle (end a
sandbox, tell observers) comes in as :class:`Lifecycle`, explicitly.

A run outlives its server: the runner keeps the run's messages until the server acknowledges
it (``ack``), and a server that adopts the sandbox :meth:`Runs.recover` s a run it finds there:
it follows it to its end and keeps the result, ``status="interrupted"``, for its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .exceptions import Conflict, LimitExceeded, NotFound, SandboxGone
from .execution import ExecutionBuilder
from .gateway import DEADLINE, IDLE, Follow, RunnerGateway, is_eof
from .limits import resolve_execution_timeout
from .runner.protocol import Msg, Op
from .sandbox import Sandbox
from .settings import Settings
from .tasks import BackgroundTasks

__all__ = ["Lifecycle", "Runs"]

KEEPALIVE_S = 5.0
# Messages (each at most SELFBOX_RUNNER_MAX_MESSAGE_BYTES) waiting for an execution's reader;
# past that, reading the sandbox's channel waits for it.
EXECUTION_QUEUE_MESSAGES = 4
KEPT_RECOVERED = 4  # recovered runs kept per sandbox for their callers


def _is_done(message: dict[str, Any]) -> bool:
    # A run adopted from an earlier server: its token went with that server.
    return message.get("type") == Msg.DONE


class _Ladder:
    """How a run is stopped: interrupt, then a grace period, then the sandbox is killed.

    The grace is counted where the code runs, not only here: once it is over on this side, a
    ``fence`` op follows the interrupt down the same channel, and the runner answers it from
    its control thread behind everything it has already written. So a ``done`` still on its
    way (a loaded host, a lagging engine or server) arrives before the fence's answer, and code
    that did stop is not killed for the server's delay. The sandbox is killed when the answer
    comes without a ``done``, or when none comes within another grace (the runner is stuck:
    user code holding the GIL in C, say). A forged answer can only hasten the kill of the
    forger's own sandbox, and only after the first grace.
    """

    def __init__(self, gateway: RunnerGateway, sandbox: Sandbox, stream: Follow,
                 grace_s: float) -> None:
        self._gateway = gateway
        self._sandbox = sandbox
        self._stream = stream
        self._grace_s = grace_s
        self.interrupted = False
        self._fenced = False

    async def climb(self) -> bool:
        """The next step (interrupt, then fence), each with a grace period; True when none
        is left: the code will not stop."""
        if self._fenced:
            return True
        op = Op.FENCE if self.interrupted else Op.INTERRUPT
        self._fenced, self.interrupted = self.interrupted, True
        await self._gateway.send(self._sandbox, op, id=self._stream.key)
        self._stream.deadline = asyncio.get_running_loop().time() + self._grace_s
        return False

    def answered(self, message: dict[str, Any]) -> bool:
        """Whether ``message`` is the runner's answer to the fence: everything it sent before
        is in, and the run has not ended."""
        return self._fenced and message.get("type") == Msg.FENCE


@dataclass(frozen=True)
class Lifecycle:
    """What runs need of the sandbox lifecycle."""

    end: Callable[[Sandbox, str, str], Awaitable[None]]  # (sandbox, state, reason)
    notify: Callable[..., None]  # (event, **fields) to the observers
    # True while the server shuts down leaving its sandboxes to the next one.
    detaching: Callable[[], bool] = lambda: False


class Runs:
    def __init__(self, settings: Settings, gateway: RunnerGateway, tasks: BackgroundTasks,
                 lifecycle: Lifecycle) -> None:
        self.settings = settings
        self.gateway = gateway
        self.tasks = tasks
        self.lifecycle = lifecycle

    async def execute(
        self, sandbox: Sandbox, code: str, *, timeout_s: float | None = None,
        context: str = "default", tools_answerable: bool = True,
    ) -> AsyncIterator[dict[str, Any]]:
        """Run code; yield public events, ending with ``{"type": "execution", ...}``."""
        timeout = resolve_execution_timeout(self.settings, timeout_s)
        if len(code.encode("utf-8", "surrogatepass")) > self.settings.max_code_bytes:
            raise LimitExceeded(f"code is larger than SELFBOX_MAX_CODE_BYTES="
                                f"{self.settings.max_code_bytes}", limit="code")
        if sandbox.state == "paused":
            raise Conflict(f"sandbox {sandbox.id} is paused; resume it first")
        await sandbox.lock.acquire()
        released = False
        stream: Follow | None = None
        try:
            if not sandbox.alive or sandbox.channel is None:
                raise SandboxGone(f"sandbox {sandbox.id} is gone: {sandbox.end_reason}")
            loop = asyncio.get_running_loop()
            # Only a "done" with this token ends the run: any process in the sandbox can
            # write frames, but not read the runner's memory. A runner says in its (first,
            # unforgeable) hello whether it echoes the token; an older one does not.
            token = secrets.token_hex(16)
            builder = ExecutionBuilder(
                self.settings.output_limit_bytes, self.settings.result_limit_bytes,
                token if sandbox.channel.hello.get("done_token") else None)
            stream = await self.gateway.follow(
                sandbox, Op.EXECUTE, secrets.token_hex(8), loop.time() + timeout,
                idle_s=KEEPALIVE_S, terminal=builder.is_own_done,
                queue_size=EXECUTION_QUEUE_MESSAGES, wants=builder.wants, code=code,
                context=context, token=token,
                # A server that adopts the sandbox mid-run keeps the deadline.
                timeout_s=timeout,
                output_limit_bytes=self.settings.output_limit_bytes,
                result_limit_bytes=self.settings.result_limit_bytes,
                max_message_bytes=self.settings.runner_max_message_bytes).open()
            yield {"type": "start", "sandbox_id": sandbox.id, "execution_id": stream.key}
            async for event in self._drive(sandbox, stream, builder, timeout,
                                           tools_answerable):
                yield event
            execution = builder.build()
            if execution.execution_count is not None:
                sandbox.execution_count = execution.execution_count
            self.lifecycle.notify("executed", sandbox=sandbox, execution=execution)
            # Finished: free the sandbox before the last yield, so that a consumer that stops
            # reading after the final event does not look like one that walked away mid-run.
            stream.close()
            # Delivered: the runner's outbox need not keep it for a next server. With the next
            # op (the next execute replaces the outbox's run anyway) or within a second.
            self.gateway.send_soon(sandbox, Op.ACK, id=stream.key)
            sandbox.lock.release()
            released = True
            yield {"type": "execution", "execution": execution.to_dict()}
        finally:
            if not released and self.lifecycle.detaching():
                pass  # the server is going: the code runs on, the next server recovers it
            elif not released:
                # The client went away mid-run: stop the code before the next one may start.
                self.tasks.spawn(self._abandon(sandbox, stream), name=f"abandon-{sandbox.id}")

    async def _abandon(self, sandbox: Sandbox, stream: Follow | None) -> None:
        """The client went away mid-run: interrupt the code, and only then let the next
        execution in (killing the sandbox if the code will not stop)."""
        try:
            if stream is not None and sandbox.alive:
                ladder = _Ladder(self.gateway, sandbox, stream, self.settings.interrupt_grace_s)
                await ladder.climb()  # the interrupt
                async for message in stream:
                    if message is DEADLINE and not await ladder.climb():
                        continue
                    if message is DEADLINE or ladder.answered(message):
                        await self.lifecycle.end(
                            sandbox, "dead",
                            "it was killed: abandoned code did not stop after interrupt")
                        break
        finally:
            if stream is not None:
                stream.close()
            sandbox.lock.release()

    async def _drive(
        self, sandbox: Sandbox, stream: Follow, builder: ExecutionBuilder, timeout_s: float,
        tools_answerable: bool,
    ) -> AsyncIterator[dict[str, Any]]:
        grace = self.settings.interrupt_grace_s
        ladder = _Ladder(self.gateway, sandbox, stream, grace)
        async for message in stream:
            if message is IDLE:
                yield {"type": "keepalive"}
                continue
            if message is DEADLINE and not await ladder.climb():
                continue  # past the timeout: interrupted, or fenced; the code has its grace
            if message is DEADLINE or ladder.answered(message):
                yield builder.fail(
                    "timeout", "TimeoutError",
                    f"execution exceeded timeout_s={timeout_s:g} and did not stop within "
                    f"{grace:g} s of the interrupt (SELFBOX_INTERRUPT_GRACE_S); the sandbox "
                    "was killed and its state is lost")
                await self.lifecycle.end(sandbox, "dead",
                                         "it was killed after an execution timeout")
                return
            if is_eof(message):
                yield await self._died(sandbox, builder)
                return
            if message.get("type") == Msg.TOOL_CALL and not tools_answerable:
                await self._refuse_tool(sandbox, message)
            event = builder.feed(message)
            if message.get("type") == Msg.TOOL_CALL:
                sandbox.tool_calls.add(str(message.get("call_id")))
            if builder.done and ladder.interrupted:
                # Interrupted by us: report the timeout instead of the KeyboardInterrupt.
                builder.status = "timeout"
                builder.error = None
                yield builder.fail(
                    "timeout", "TimeoutError",
                    f"execution exceeded timeout_s={timeout_s:g} and was interrupted; the "
                    "sandbox and its state are kept")
                return
            if event is not None and not (ladder.interrupted and event["type"] == "error"):
                yield event
            if builder.done:
                return

    async def _died(self, sandbox: Sandbox, builder: ExecutionBuilder) -> dict[str, Any]:
        # Give the death watcher a moment to learn why (OOM or not).
        for _ in range(100):
            if not sandbox.alive:
                break
            await asyncio.sleep(0.05)
        if sandbox.extra.get("oom"):
            return builder.fail("oom_killed", "MemoryError",
                                f"the sandbox ran out of memory (memory_mb="
                                f"{sandbox.limits.memory_mb}) and was killed; its state is lost")
        return builder.fail("sandbox_died", "SandboxDied",
                            f"the sandbox died during the execution: "
                            f"{sandbox.end_reason or 'its container exited'}")

    # -- runs an earlier server left --------------------------------------------------------
    async def recover(self, sandbox: Sandbox, execution: dict[str, Any]) -> None:
        """Take over a run found at adoption (the runner's ``resync``): hold the sandbox as a
        run does, follow the run to its end under the rest of its timeout, keep the result."""
        execution_id = str(execution["id"])[:64]
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        recovered = sandbox.extra.setdefault("recovered", {})
        recovered[execution_id] = future
        while len(recovered) > KEPT_RECOVERED:
            recovered.pop(next(iter(recovered)))
        await sandbox.lock.acquire()  # the next execution waits for this one
        loop = asyncio.get_running_loop()
        timeout_s, started = execution.get("timeout_s"), execution.get("started_at")
        if isinstance(timeout_s, (int, float)) and isinstance(started, (int, float)):
            timeout = min(float(timeout_s), self.settings.max_execution_timeout_s)
            remaining = timeout - (time.time() - float(started))
        else:
            timeout = remaining = self.settings.default_execution_timeout_s
        try:
            stream = await self.gateway.rejoin(sandbox, Op.EXECUTE, execution_id,
                                               loop.time() + max(remaining, 0.0),
                                               idle_s=KEEPALIVE_S, terminal=_is_done).open()
        except BaseException:
            sandbox.lock.release()
            future.cancel()
            raise
        channel = sandbox.channel
        assert channel is not None
        for message in execution.get("messages") or []:
            if isinstance(message, dict):
                channel.inject(message)
        self.tasks.spawn(self._follow_recovered(sandbox, stream, bool(execution.get("finished")),
                                                timeout, future),
                         name=f"recover-{sandbox.id}")

    async def _follow_recovered(self, sandbox: Sandbox, stream: Follow, finished: bool,
                                timeout_s: float, future: asyncio.Future[dict[str, Any]],
                                ) -> None:
        builder = ExecutionBuilder(self.settings.output_limit_bytes)
        try:
            if not finished and sandbox.channel is not None:
                # What the runner sent between its resync and our subscription: ask again.
                with contextlib.suppress(Exception):
                    again = await self.gateway.request(
                        sandbox, Op.RESYNC, since={stream.key: sandbox.channel.seen(stream.key)})
                    for message in (again.get("execution") or {}).get("messages") or []:
                        if isinstance(message, dict):
                            sandbox.channel.inject(message)
            async for _event in self._drive(sandbox, stream, builder, timeout_s, False):
                pass
            result = builder.build()
            if result.status in ("ok", "error", "output_truncated"):
                result.status = "interrupted"  # the stream was cut; the result is whole
            if result.execution_count is not None:
                sandbox.execution_count = result.execution_count
            self.lifecycle.notify("executed", sandbox=sandbox, execution=result)
            future.set_result(result.to_dict())
            await self.gateway.send(sandbox, Op.ACK, id=stream.key)
        finally:
            if not future.done():
                future.cancel()
            stream.close()
            sandbox.lock.release()

    async def recovered_execution(self, sandbox: Sandbox, execution_id: str,
                                  wait_s: float) -> dict[str, Any]:
        """The result of a run whose caller's stream a server restart cut, once the new
        server has followed it to its end."""
        future = (sandbox.extra.get("recovered") or {}).get(execution_id)
        if future is None:
            raise NotFound(f"no interrupted execution {execution_id!r} in sandbox {sandbox.id} "
                           "(only executions cut off by a server restart are kept)")
        try:
            result: dict[str, Any] = await asyncio.wait_for(asyncio.shield(future), wait_s)
        except TimeoutError:
            raise Conflict(f"execution {execution_id} is still running; ask again") from None
        except asyncio.CancelledError:
            raise SandboxGone(f"sandbox {sandbox.id} ended before execution {execution_id} "
                              f"did: {sandbox.end_reason}") from None
        return result

    async def _refuse_tool(self, sandbox: Sandbox, message: dict[str, Any]) -> None:
        await self.gateway.send(sandbox, Op.TOOL_REPLY, call_id=message.get("call_id"),
                                ok=False, error={"name": "ToolError",
                                                 "value": "tool calls need the streaming "
                                                          "execute endpoint"})

    async def tool_reply(self, sandbox: Sandbox, call_id: str, ok: bool, value: Any,
                         error: dict[str, str] | None) -> None:
        if call_id not in sandbox.tool_calls:
            raise NotFound(f"no pending tool call {call_id!r}")
        sandbox.tool_calls.discard(call_id)
        if sandbox.channel is None:
            raise SandboxGone(f"sandbox {sandbox.id} is gone")
        if not await self.gateway.send(sandbox, Op.TOOL_REPLY, call_id=call_id, ok=ok,
                                       value=value, error=error):
            raise SandboxGone(f"sandbox {sandbox.id} is gone")

