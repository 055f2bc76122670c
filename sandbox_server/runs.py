"""Running code in a sandbox: one execution is one :meth:`RunnerGateway.follow` of the
``execute`` op, with the timeout ladder (interrupt, then kill after a grace period), host tool
calls, and the clean-up when a client walks away mid-run.

Held by :class:`~sandbox_server.manager.SandboxManager`; what it needs of the lifecycle (end a
sandbox, tell observers) comes in as :class:`Lifecycle`, explicitly.
"""

from __future__ import annotations

import asyncio
import secrets
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


@dataclass(frozen=True)
class Lifecycle:
    """What runs need of the sandbox lifecycle."""

    end: Callable[[Sandbox, str, str], Awaitable[None]]  # (sandbox, state, reason)
    notify: Callable[..., None]  # (event, **fields) to the observers


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
                output_limit_bytes=self.settings.output_limit_bytes,
                result_limit_bytes=self.settings.result_limit_bytes,
                max_message_bytes=self.settings.runner_max_message_bytes).open()
            yield {"type": "start", "sandbox_id": sandbox.id}
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
            sandbox.lock.release()
            released = True
            yield {"type": "execution", "execution": execution.to_dict()}
        finally:
            if not released:
                # The client went away mid-run: stop the code before the next one may start.
                self.tasks.spawn(self._abandon(sandbox, stream), name=f"abandon-{sandbox.id}")

    async def _abandon(self, sandbox: Sandbox, stream: Follow | None) -> None:
        """The client went away mid-run: interrupt the code, and only then let the next
        execution in (killing the sandbox if the code will not stop)."""
        try:
            if stream is not None and sandbox.alive:
                await self.gateway.send(sandbox, Op.INTERRUPT, id=stream.key)
                stream.deadline = asyncio.get_running_loop().time() + \
                    self.settings.interrupt_grace_s
                async for message in stream:
                    if message is DEADLINE:
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
        interrupted = False
        async for message in stream:
            if message is IDLE:
                yield {"type": "keepalive"}
                continue
            if message is DEADLINE:
                if not interrupted:
                    # Past the timeout: interrupt, and give the code a grace period to stop.
                    interrupted = True
                    await self.gateway.send(sandbox, Op.INTERRUPT, id=stream.key)
                    stream.deadline = asyncio.get_running_loop().time() + grace
                    continue
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
            if builder.done and interrupted:
                # Interrupted by us: report the timeout instead of the KeyboardInterrupt.
                builder.status = "timeout"
                builder.error = None
                yield builder.fail(
                    "timeout", "TimeoutError",
                    f"execution exceeded timeout_s={timeout_s:g} and was interrupted; the "
                    "sandbox and its state are kept")
                return
            if event is not None and not (interrupted and event["type"] == "error"):
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

