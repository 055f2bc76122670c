"""A warm pool: sandboxes started ahead of demand with the default template and limits, so that
a create request that asks for nothing special gets one in milliseconds.

A pooled sandbox is a fresh, never-used container; claiming it only assigns an owner, a
lifetime and metadata. Requests with other limits, another template, or environment variables
(which must exist when the interpreter starts) get a new container as usual.

The pool is adaptive: at rest it keeps ``size`` sandboxes; when a burst of creates (creates
within ``BURST_WINDOW_S``) finds it empty, it keeps as many as that burst from then on, up to
``max_size``, refilling several at a time once the burst has been served; after ``idle_s``
without a create it shrinks back to ``size``, ending the extra sandboxes.

A claimed sandbox must bear its claimed name before anyone runs code in it (see records.py),
and an engine call right after an idle spell costs tens of milliseconds on a quiet host. So the
pool renames ``PRIMED_AHEAD`` ready sandbox to its claimed name ahead of demand (``rename``), at
once after each take, and a claim of it makes no engine call at all. A primed sandbox is never
adopted as a pooled one by a new server (its name says claimed): a graceful shutdown gives it its
pool name back; after a crash it is removed (the one sandbox a crash costs the pool).
"""

from __future__ import annotations

import asyncio
import collections
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
BURST_WINDOW_S = 10.0  # creates this close together count as one burst
PARALLEL_STARTS = 8  # containers started at once while refilling
REFILL_SETTLE_S = 0.5  # refill once creates have paused this long ...
MAX_SETTLE_S = 3.0  # ... or after this, whatever the demand
PRIMED_AHEAD = 1  # ready sandboxes renamed to their claimed names ahead of demand

# ``rename(sandbox, claimed)``: give a pooled sandbox its claimed name, or its pool name back.
Rename = Callable[[Sandbox, bool], Awaitable[None]]


class WarmPool:
    def __init__(
        self, size: int, template: str, limits: Limits,
        start: Callable[[Sandbox], Awaitable[None]],
        end: Callable[[Sandbox, str, str], Awaitable[None]],
        tasks: BackgroundTasks,
        *, max_size: int | None = None, idle_s: float = 300.0,
        parallel: int = PARALLEL_STARTS, rename: Rename | None = None,
    ) -> None:
        self.size = size
        self.max_size = max(size, max_size if max_size is not None else size)
        self.idle_s = idle_s
        self.parallel = max(1, parallel)
        self.template = template
        self.limits = limits
        self._start = start
        self._end = end
        self._tasks = tasks
        self._ready: list[Sandbox] = []
        self._starting = 0
        self._takes: collections.deque[float] = collections.deque()
        self._peak = 0  # the largest burst seen since the pool was last idle
        self._last_take = time.monotonic()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._starts: set[asyncio.Task[None]] = set()
        self._rename = rename
        self._primed: set[str] = set()  # ids of ready sandboxes that bear their claimed name
        self._priming: dict[str, asyncio.Task[None]] = {}

    def matches(self, template: str, limits: Limits, env: dict[str, str]) -> bool:
        return self.size > 0 and template == self.template and limits == self.limits and not env

    def container_ids(self) -> set[str]:
        return {sb.container_id for sb in self._ready if sb.container_id}

    @property
    def target(self) -> int:
        """How many sandboxes the pool wants ready now."""
        if time.monotonic() - self._last_take > self.idle_s:
            self._peak = 0
        return min(self.max_size, max(self.size, self._peak))

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    @property
    def starting_count(self) -> int:
        return self._starting

    def channels(self) -> list[RunnerChannel]:
        return [sb.channel for sb in self._ready if sb.channel is not None]

    def seed(self, adopted: list[Sandbox]) -> None:
        """Take pooled sandboxes a previous server left; surplus and mismatches go."""
        for sandbox in adopted:
            if len(self._ready) < self.max_size and sandbox.template == self.template \
                    and sandbox.limits == self.limits:
                self._ready.append(sandbox)
            else:
                self._tasks.spawn(self._drop(sandbox), name=f"pool-surplus-{sandbox.id}")
        # The previous server had grown the pool for its bursts: keep that size until the
        # pool has been idle for idle_s, as if the bursts had been seen here.
        self._peak = max(self._peak, len(self._ready))
        self._last_take = time.monotonic()

    async def _drop(self, sandbox: Sandbox) -> None:
        await self._end(sandbox, "dead", "not needed in the pool")

    def take(self) -> Sandbox | None:
        """A ready sandbox, or None; the pool refills in the background."""
        now = time.monotonic()
        self._last_take = now
        self._takes.append(now)
        while self._takes and now - self._takes[0] > BURST_WINDOW_S:
            self._takes.popleft()
        self._wake.set()
        # Dead ones go; a primed one first, then one being renamed (the claim waits for that
        # rename, already on its way, rather than making another), else the oldest.
        self._ready = [sb for sb in self._ready if self._usable(sb)]
        if self._ready:
            ranks = [0 if sb.id in self._primed else 1 if sb.id in self._priming else 2
                     for sb in self._ready]
            return self._ready.pop(ranks.index(min(ranks)))
        # A miss: the pool was too small for this burst. Keep as many as the burst so far
        # (a steady trickle that the pool keeps up with never grows it).
        self._peak = max(self._peak, len(self._takes))
        return None

    def _usable(self, sandbox: Sandbox) -> bool:
        channel = sandbox.channel
        if sandbox.alive and channel is not None and not channel.closed.is_set():
            return True
        self._primed.discard(sandbox.id)
        return False

    async def named(self, sandbox: Sandbox) -> bool:
        """Whether a sandbox just taken already bears its claimed name (waits for a rename in
        flight); if not, the claim renames it."""
        task = self._priming.get(sandbox.id)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        if sandbox.id in self._primed:
            self._primed.discard(sandbox.id)
            return True
        return False

    def _prime_ahead(self) -> None:
        if self._rename is None:
            return
        primed = sum(1 for sb in self._ready if sb.id in self._primed or sb.id in self._priming)
        for sandbox in self._ready:
            if primed >= PRIMED_AHEAD:
                return
            if sandbox.id not in self._primed and sandbox.id not in self._priming:
                primed += 1
                self._priming[sandbox.id] = self._tasks.spawn(
                    self._prime_one(sandbox), name=f"warm-pool-prime-{sandbox.id}")

    async def _prime_one(self, sandbox: Sandbox) -> None:
        assert self._rename is not None
        try:
            await self._rename(sandbox, True)
            self._primed.add(sandbox.id)
        except Exception as exc:  # the claim renames it instead
            logger.warning("warm pool could not rename sandbox %s ahead of a claim: %s",
                           sandbox.id, exc)
        finally:
            self._priming.pop(sandbox.id, None)

    async def _unprime_all(self) -> None:
        """Give the primed sandboxes their pool names back, so that the next server pools
        them (a failure only costs the next server a refill)."""
        if self._priming:
            await asyncio.gather(*self._priming.values(), return_exceptions=True)
        primed = [sb for sb in self._ready if sb.id in self._primed]
        if primed and self._rename is not None:
            await asyncio.gather(*(self._rename(sb, False) for sb in primed),
                                 return_exceptions=True)
        self._primed.clear()

    def start(self) -> None:
        if self.size > 0:
            self._task = self._tasks.spawn(self._fill_forever(), name="warm-pool")

    async def close(self, keep: bool = False) -> None:
        """Stop filling; end the ready sandboxes, or (``keep``) only detach from them."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for task in list(self._starts):
            task.cancel()
        if self._starts:
            await asyncio.gather(*self._starts, return_exceptions=True)
        if keep:
            await self._unprime_all()
            for sandbox in self._ready:
                if sandbox.channel is not None:
                    await sandbox.channel.close()
            return
        for task in list(self._priming.values()):
            task.cancel()
        ready, self._ready = self._ready, []
        self._primed.clear()
        await asyncio.gather(*(self._end(sb, "dead", "server shut down") for sb in ready),
                             return_exceptions=True)

    async def _fill_forever(self) -> None:
        deferred_since: float | None = None
        while True:
            # Before the settle below: a rename does not compete with claims for the CPUs.
            self._prime_ahead()
            target = self.target
            now = time.monotonic()
            # Let a burst of claims finish before starting containers beside it (they compete
            # for the same CPUs), but not for long under continuous demand.
            if now - self._last_take < REFILL_SETTLE_S and len(self._ready) < target:
                deferred_since = deferred_since or now
                if now - deferred_since < MAX_SETTLE_S:
                    await asyncio.sleep(REFILL_SETTLE_S - (now - self._last_take))
                    continue
            deferred_since = None
            while len(self._ready) + self._starting < target and self._starting < self.parallel:
                self._starting += 1
                self._track(self._tasks.spawn(self._start_one(), name="warm-pool-start"))
            while len(self._ready) > target:  # demand is gone: shrink, oldest first
                extra = self._ready.pop(0)
                self._primed.discard(extra.id)
                self._track(self._tasks.spawn(self._shrink(extra), name="warm-pool-shrink"))
            self._wake.clear()
            # Wake on a take or a finished start; otherwise look again when idle may have
            # passed (to shrink).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.idle_s, 30.0)):
                    await self._wake.wait()

    async def _shrink(self, sandbox: Sandbox) -> None:
        await self._end(sandbox, "dead", "warm pool shrank")

    def _track(self, task: asyncio.Task[None]) -> None:
        self._starts.add(task)
        task.add_done_callback(self._starts.discard)

    async def _start_one(self) -> None:
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
        else:
            sandbox.state = "running"
            self._ready.append(sandbox)
        finally:
            self._starting -= 1
            self._wake.set()
