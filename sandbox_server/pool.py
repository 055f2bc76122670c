"""A warm pool: sandboxes started ahead of demand with the default template and limits, so that
a create request that asks for nothing special gets one in milliseconds.

A pooled sandbox is a fresh, never-used container; claiming it only assigns an owner, a
lifetime and metadata. Requests with other limits, another template, or environment variables
(which must exist when the interpreter starts) get a new container as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from .channel import RunnerChannel
from .sandbox import Limits, Sandbox
from .tasks import BackgroundTasks

__all__ = ["POOL_OWNER", "WarmPool"]

logger = logging.getLogger("selfbox.pool")

POOL_OWNER = "pool"
POOL_IDLE_S = 3600.0  # a pooled container's own deadline; refreshed when claimed
RETRY_AFTER_FAILURE_S = 5.0


class WarmPool:
    def __init__(
        self, size: int, template: str, limits: Limits,
        start: Callable[[Sandbox], Awaitable[None]],
        end: Callable[[Sandbox, str, str], Awaitable[None]],
        tasks: BackgroundTasks,
    ) -> None:
        self.size = size
        self.template = template
        self.limits = limits
        self._start = start
        self._end = end
        self._tasks = tasks
        self._ready: list[Sandbox] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def matches(self, template: str, limits: Limits, env: dict[str, str]) -> bool:
        return self.size > 0 and template == self.template and limits == self.limits and not env

    def container_ids(self) -> set[str]:
        return {sb.container_id for sb in self._ready if sb.container_id}

    def channels(self) -> list[RunnerChannel]:
        return [sb.channel for sb in self._ready if sb.channel is not None]

    def seed(self, adopted: list[Sandbox]) -> None:
        """Take pooled sandboxes a previous server left; surplus and mismatches go."""
        for sandbox in adopted:
            if len(self._ready) < self.size and sandbox.template == self.template \
                    and sandbox.limits == self.limits:
                self._ready.append(sandbox)
            else:
                self._tasks.spawn(self._drop(sandbox), name=f"pool-surplus-{sandbox.id}")

    async def _drop(self, sandbox: Sandbox) -> None:
        await self._end(sandbox, "dead", "not needed in the pool")

    def take(self) -> Sandbox | None:
        """A ready sandbox, or None; the pool refills in the background."""
        while self._ready:
            sandbox = self._ready.pop(0)
            self._wake.set()
            channel = sandbox.channel
            if sandbox.alive and channel is not None and not channel.closed.is_set():
                return sandbox
        self._wake.set()
        return None

    def start(self) -> None:
        if self.size > 0:
            self._task = self._tasks.spawn(self._fill_forever(), name="warm-pool")

    async def close(self, keep: bool = False) -> None:
        """Stop filling; end the ready sandboxes, or (``keep``) only detach from them."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if keep:
            for sandbox in self._ready:
                if sandbox.channel is not None:
                    await sandbox.channel.close()
            return
        ready, self._ready = self._ready, []
        await asyncio.gather(*(self._end(sb, "dead", "server shut down") for sb in ready),
                             return_exceptions=True)

    async def _fill_forever(self) -> None:
        while True:
            while len(self._ready) < self.size:
                sandbox = Sandbox(
                    id=secrets.token_hex(10), owner=POOL_OWNER, template=self.template,
                    limits=self.limits, metadata={}, env={}, created_at=time.time(),
                    expires_at=time.time() + POOL_IDLE_S,
                )
                try:
                    await self._start(sandbox)
                except asyncio.CancelledError:
                    await self._end(sandbox, "dead", "pool closed")
                    raise
                except Exception as exc:
                    logger.warning("warm pool could not start a sandbox: %s", exc)
                    await self._end(sandbox, "dead", "start failed")
                    await asyncio.sleep(RETRY_AFTER_FAILURE_S)
                    continue
                sandbox.state = "running"
                self._ready.append(sandbox)
            self._wake.clear()
            await self._wake.wait()
