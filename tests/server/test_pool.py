"""The adaptive warm pool, with start/end doubles (its sandboxes are real elsewhere:
tests/server/test_api.py claims pooled sandboxes from a live server)."""

from __future__ import annotations

import asyncio

from sandbox_server.pool import WarmPool
from sandbox_server.sandbox import Limits, Sandbox
from sandbox_server.tasks import BackgroundTasks


class _Channel:
    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def close(self) -> None:
        self.closed.set()


class _Engine:
    def __init__(self, start_s: float = 0.05) -> None:
        self.start_s = start_s
        self.running = 0
        self.most_at_once = 0
        self.ended: list[str] = []

    async def start(self, sandbox: Sandbox) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.start_s)
        finally:
            self.running -= 1
        sandbox.channel = _Channel()  # type: ignore[assignment]
        sandbox.container_id = sandbox.id

    async def end(self, sandbox: Sandbox, state: str, reason: str) -> None:
        sandbox.state = state  # type: ignore[assignment]
        self.ended.append(reason)


LIMITS = Limits(cpu=1.0, memory_mb=512, pids=256, disk_mb=256, network="none")


async def _settle(pool: WarmPool, ready: int, bound_s: float = 5.0) -> None:
    async with asyncio.timeout(bound_s):
        while len(pool.container_ids()) != ready:
            await asyncio.sleep(0.01)


def test_pool_grows_with_a_burst_refills_in_parallel_and_shrinks_when_idle() -> None:
    async def scenario() -> None:
        engine = _Engine()
        pool = WarmPool(2, "img", LIMITS, engine.start, engine.end, BackgroundTasks(),
                        max_size=12, idle_s=1.5,
                        parallel=4)
        pool.start()
        try:
            await _settle(pool, 2)
            taken = [pool.take() for _ in range(10)]  # a burst: 2 warm, 8 misses
            assert sum(sb is not None for sb in taken) == 2
            assert pool.target == 10
            await asyncio.sleep(0.2)
            assert engine.running == 0  # no start beside the burst's own claims ...
            await _settle(pool, 10)  # ... then it learned: ten ready for the next burst
            assert engine.most_at_once == 4  # refilled four at a time, never more
            assert sum(pool.take() is not None for _ in range(10)) == 10
            await asyncio.sleep(1.6)  # idle longer than idle_s: back to the resting size
            assert pool.target == 2
            pool._wake.set()
            await _settle(pool, 2)
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_trickle_the_pool_keeps_up_with_does_not_grow_it() -> None:
    async def scenario() -> None:
        engine = _Engine(start_s=0.01)
        pool = WarmPool(2, "img", LIMITS, engine.start, engine.end, BackgroundTasks(),
                        max_size=20, idle_s=30)
        pool.start()
        try:
            for _ in range(6):
                await _settle(pool, 2)
                assert pool.take() is not None
                await asyncio.sleep(0.6)
            assert pool.target == 2
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_pool_never_exceeds_its_cap_and_shrinks_extras() -> None:
    async def scenario() -> None:
        engine = _Engine(start_s=0.01)
        pool = WarmPool(1, "img", LIMITS, engine.start, engine.end, BackgroundTasks(),
                        max_size=3, idle_s=1.0)
        pool.start()
        try:
            await _settle(pool, 1)
            for _ in range(20):
                pool.take()
            assert pool.target == 3
            await _settle(pool, 3)
            await asyncio.sleep(1.1)
            pool._wake.set()
            await _settle(pool, 1)
            assert engine.ended.count("warm pool shrank") == 2
        finally:
            await pool.close()
        assert "server shut down" in engine.ended

    asyncio.run(scenario())


class _Names:
    """The engine's container names, as the pool's ``rename`` sets them."""

    def __init__(self, fail: bool = False) -> None:
        self.claimed: set[str] = set()
        self.calls = 0
        self.fail = fail

    async def rename(self, sandbox: Sandbox, claimed: bool) -> None:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise RuntimeError("engine said no")
        (self.claimed.add if claimed else self.claimed.discard)(sandbox.id)


def test_the_next_claim_is_renamed_ahead_and_claimed_first() -> None:
    async def scenario() -> None:
        engine, names = _Engine(start_s=0.01), _Names()
        pool = WarmPool(3, "img", LIMITS, engine.start, engine.end, BackgroundTasks(),
                        idle_s=30, rename=names.rename)
        pool.start()
        try:
            await _settle(pool, 3)
            async with asyncio.timeout(5):
                while not names.claimed:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            assert len(names.claimed) == 1  # PRIMED_AHEAD; the rest keep their pool names
            first, second = pool.take(), pool.take()
            assert first is not None and second is not None
            assert names.claimed == {first.id}  # the renamed one is claimed first
            assert await pool.named(first)
            assert not await pool.named(second)  # the claim renames it
            # At once after a take (not after the refill's settle), the next one is renamed.
            async with asyncio.timeout(0.3):
                while len(names.claimed) < 2:
                    await asyncio.sleep(0.01)
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_claim_waits_for_a_rename_in_flight_and_a_failed_one_is_left_to_the_claim() -> None:
    async def scenario() -> None:
        engine, names = _Engine(start_s=0.01), _Names()
        pool = WarmPool(2, "img", LIMITS, engine.start, engine.end, BackgroundTasks(),
                        idle_s=30, rename=names.rename)
        pool.start()
        try:
            await _settle(pool, 2)
            async with asyncio.timeout(5):
                while not pool._priming:
                    await asyncio.sleep(0.001)
            pool._ready.reverse()  # not the oldest (a pool seeded by adoption, say)
            taken = pool.take()  # the rename of it is still in flight
            assert taken is not None and taken.id in pool._priming
            assert await pool.named(taken) and taken.id in names.claimed
        finally:
            await pool.close()
        failing = _Names(fail=True)
        pool = WarmPool(2, "img", LIMITS, engine.start, engine.end, BackgroundTasks(),
                        idle_s=30, rename=failing.rename)
        pool.start()
        try:
            await _settle(pool, 2)
            async with asyncio.timeout(5):
                while failing.calls == 0 or pool._priming:
                    await asyncio.sleep(0.01)
            taken = pool.take()
            assert taken is not None and not await pool.named(taken)
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_shutdown_that_keeps_the_pool_gives_the_renamed_one_its_pool_name_back() -> None:
    async def scenario() -> None:
        engine, names = _Engine(start_s=0.01), _Names()
        pool = WarmPool(4, "img", LIMITS, engine.start, engine.end, BackgroundTasks(),
                        idle_s=30, rename=names.rename)
        pool.start()
        await _settle(pool, 4)
        async with asyncio.timeout(5):
            while not names.claimed:
                await asyncio.sleep(0.01)
        await pool.close(keep=True)
        assert names.claimed == set() and engine.ended == []

    asyncio.run(scenario())
