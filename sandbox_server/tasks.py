"""The one registry of the server's background tasks: every task the server starts beside a
request (the reaper, pool refills, channel read loops, clean-ups after a client walked away)
is spawned here, so that shutdown can cancel them all."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["BackgroundTasks"]

logger = logging.getLogger("selfbox.tasks")


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, held until it ends (asyncio keeps weak refs)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def quietly(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> None:
        """Spawn a best-effort clean-up whose failure is not worth a log line (e.g. telling
        a sandbox that may have ended meanwhile to forget a subscription)."""

        async def run() -> None:
            with contextlib.suppress(Exception):
                await coro

        self.spawn(run(), name)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel_all(self, timeout_s: float = 5.0) -> None:
        """Cancel every task and wait (bounded) for them to unwind."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
