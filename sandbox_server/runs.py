"""Running code in a sandbox: the execution protocol over the sandbox's channel, with the
timeout ladder (interrupt, then kill after a grace period), host tool calls, and the clean-up
when a client walks away mid-run. Mixed into :class:`~sandbox_server.manager.SandboxManager`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from .channel import EOF_MESSAGE, ChannelClosed, RunnerChannel
from .exceptions import Conflict, LimitExceeded, NotFound, SandboxGone
from .execution import ExecutionBuilder
from .limits import resolve_execution_timeout
from .sandbox import Sandbox
from .settings import Settings

__all__ = ["Executions"]

KEEPALIVE_S = 5.0
# Messages (each at most SELFBOX_RUNNER_MAX_MESSAGE_BYTES) waiting for an execution's reader;
# past that, reading the sandbox's channel waits for it.
EXECUTION_QUEUE_MESSAGES = 4


class Executions:
    """The execution half of the manager; the lifecycle half provides what is declared here."""

    settings: Settings

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        raise NotImplementedError

    def _notify(self, event: str, **fields: Any) -> None:
        raise NotImplementedError

    async def _end(self, sandbox: Sandbox, state: str, reason: str) -> None:
        raise NotImplementedError

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
        execution_id: str | None = None
        token = ""
        queue: asyncio.Queue[dict[str, Any]] | None = None
        try:
            if not sandbox.alive or sandbox.channel is None:
                raise SandboxGone(f"sandbox {sandbox.id} is gone: {sandbox.end_reason}")
            channel = sandbox.channel
            execution_id = secrets.token_hex(8)
            token = secrets.token_hex(16)
            # A runner says in its hello whether it echoes the token (one from an older image
            # does not); the first hello is the runner's own, before any user code runs.
            builder = ExecutionBuilder(self.settings.output_limit_bytes,
                                       self.settings.result_limit_bytes,
                                       token if channel.hello.get("done_token") else None)
            queue = channel.subscribe(execution_id, maxsize=EXECUTION_QUEUE_MESSAGES,
                                      wants=builder.wants)
            try:
                await channel.send({"op": "execute", "id": execution_id, "code": code,
                                    "context": context, "token": token,
                                    "output_limit_bytes": self.settings.output_limit_bytes,
                                    "result_limit_bytes": self.settings.result_limit_bytes,
                                    "max_message_bytes":
                                        self.settings.runner_max_message_bytes})
            except ChannelClosed:
                queue.put_nowait(EOF_MESSAGE)
            yield {"type": "start", "sandbox_id": sandbox.id}
            async for event in self._drive(sandbox, channel, execution_id, queue, builder,
                                           timeout, tools_answerable):
                yield event
            execution = builder.build()
            if execution.execution_count is not None:
                sandbox.execution_count = execution.execution_count
            self._notify("executed", sandbox=sandbox, execution=execution)
            # Finished: free the sandbox before the last yield, so that a consumer that stops
            # reading after the final event does not look like one that walked away mid-run.
            channel.unsubscribe(execution_id)
            sandbox.lock.release()
            released = True
            yield {"type": "execution", "execution": execution.to_dict()}
        finally:
            if not released:
                # The client went away mid-run: stop the code before the next one may start.
                self._spawn(self._abandon(sandbox, execution_id, queue, token))

    async def _abandon(self, sandbox: Sandbox, execution_id: str | None,
                       queue: asyncio.Queue[dict[str, Any]] | None, token: str = "") -> None:
        """The client went away mid-run: interrupt the code, and only then let the next
        execution in (killing the sandbox if the code will not stop)."""
        channel = sandbox.channel
        try:
            if execution_id and queue is not None and channel is not None and sandbox.alive:
                with contextlib.suppress(ChannelClosed):
                    await channel.send({"op": "interrupt", "id": execution_id})
                try:
                    async with asyncio.timeout(self.settings.interrupt_grace_s):
                        while True:
                            message = await queue.get()
                            if message is EOF_MESSAGE or message.get("type") == "eof":
                                break
                            if message.get("type") == "done" and (
                                    message.get("token") == token
                                    or not channel.hello.get("done_token")):
                                break
                except TimeoutError:
                    await self._end(sandbox, "dead",
                                    "it was killed: abandoned code did not stop after interrupt")
        finally:
            if channel is not None and execution_id:
                channel.unsubscribe(execution_id)
            sandbox.lock.release()

    async def _drive(
        self, sandbox: Sandbox, channel: RunnerChannel, execution_id: str,
        queue: asyncio.Queue[dict[str, Any]], builder: ExecutionBuilder, timeout_s: float,
        tools_answerable: bool,
    ) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        kill_at: float | None = None
        grace = self.settings.interrupt_grace_s
        while not builder.done:
            limit = kill_at if kill_at is not None else deadline
            wait = min(max(limit - loop.time(), 0.0), KEEPALIVE_S)
            try:
                message = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                now = loop.time()
                if kill_at is None and now >= deadline:
                    kill_at = now + grace
                    with contextlib.suppress(ChannelClosed):
                        await channel.send({"op": "interrupt", "id": execution_id})
                elif kill_at is not None and now >= kill_at:
                    yield builder.fail(
                        "timeout", "TimeoutError",
                        f"execution exceeded timeout_s={timeout_s:g} and did not stop within "
                        f"{grace:g} s of the interrupt (SELFBOX_INTERRUPT_GRACE_S); the sandbox "
                        "was killed and its state is lost")
                    await self._end(sandbox, "dead", "it was killed after an execution timeout")
                    return
                else:
                    yield {"type": "keepalive"}
                continue
            if message is EOF_MESSAGE or message.get("type") == "eof":
                yield await self._died(sandbox, builder)
                return
            if message.get("type") == "tool_call" and not tools_answerable:
                await self._refuse_tool(channel, message)
            event = builder.feed(message)
            if message.get("type") == "tool_call":
                sandbox.tool_calls.add(str(message.get("call_id")))
            if builder.done and kill_at is not None:
                # Interrupted by us: report the timeout instead of the KeyboardInterrupt.
                builder.status = "timeout"
                builder.error = None
                yield builder.fail(
                    "timeout", "TimeoutError",
                    f"execution exceeded timeout_s={timeout_s:g} and was interrupted; the "
                    "sandbox and its state are kept")
                return
            if event is not None and not (kill_at is not None and event["type"] == "error"):
                yield event

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

    @staticmethod
    async def _refuse_tool(channel: RunnerChannel, message: dict[str, Any]) -> None:
        with contextlib.suppress(ChannelClosed):
            await channel.send({
                "op": "tool_reply", "call_id": message.get("call_id"), "ok": False,
                "error": {"name": "ToolError",
                          "value": "tool calls need the streaming execute endpoint"}})

    async def tool_reply(self, sandbox: Sandbox, call_id: str, ok: bool, value: Any,
                         error: dict[str, str] | None) -> None:
        if call_id not in sandbox.tool_calls:
            raise NotFound(f"no pending tool call {call_id!r}")
        sandbox.tool_calls.discard(call_id)
        if sandbox.channel is None:
            raise SandboxGone(f"sandbox {sandbox.id} is gone")
        await sandbox.channel.send({"op": "tool_reply", "call_id": call_id, "ok": ok,
                                    "value": value, "error": error})
