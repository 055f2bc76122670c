"""The Idempotency-Key store, in-process (the API tests drive it through both APIs)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from sandbox_server.exceptions import InvalidRequest, TooManySandboxes
from sandbox_server.idempotency import IdempotencyStore, fingerprint


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counter() -> tuple[list[int], Callable[[], Awaitable[dict[str, int]]]]:
    made: list[int] = []

    async def create() -> dict[str, int]:
        made.append(1)
        await asyncio.sleep(0.01)
        return {"n": len(made)}

    return made, create


def test_same_key_and_body_create_once_even_concurrently() -> None:
    async def main() -> None:
        store = IdempotencyStore(600)
        made, create = counter()
        fp = fingerprint("v1", {"memory_mb": 256})
        answers = await asyncio.gather(*(store.run("alice", "k1", fp, create)
                                         for _ in range(5)))
        assert answers == [{"n": 1}] * 5 and len(made) == 1
        # Another key, or another API key with the same header, is another request.
        assert await store.run("alice", "k2", fp, create) == {"n": 2}
        assert await store.run("bob", "k1", fp, create) == {"n": 3}
        assert await store.run("alice", None, fp, create) == {"n": 4}
        assert await store.run("alice", None, fp, create) == {"n": 5}

    asyncio.run(main())


def test_a_different_body_under_the_same_key_is_refused() -> None:
    async def main() -> None:
        store = IdempotencyStore(600)
        made, create = counter()
        await store.run("alice", "k", fingerprint("v1", {"a": 1}), create)
        with pytest.raises(InvalidRequest, match="different create request"):
            await store.run("alice", "k", fingerprint("v1", {"a": 2}), create)
        with pytest.raises(InvalidRequest):
            await store.run("alice", "k", fingerprint("e2b", {"a": 1}), create)
        assert len(made) == 1

    asyncio.run(main())


def test_failures_are_not_remembered_and_the_window_ends() -> None:
    async def main() -> None:
        clock = Clock()
        store = IdempotencyStore(60, clock=clock)
        fp = fingerprint("v1", {})
        attempts: list[int] = []

        async def capped() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise TooManySandboxes("cap", retry_after_s=1)
            return f"sandbox-{len(attempts)}"

        with pytest.raises(TooManySandboxes):
            await store.run("alice", "k", fp, capped)
        assert await store.run("alice", "k", fp, capped) == "sandbox-2"  # the retry creates
        assert await store.run("alice", "k", fp, capped) == "sandbox-2"
        clock.now += 61
        assert await store.run("alice", "k", fp, capped) == "sandbox-3"  # a new window

    asyncio.run(main())


def test_bounded_and_checks_the_header() -> None:
    async def main() -> None:
        store = IdempotencyStore(600, max_entries=3)
        _, create = counter()
        for i in range(10):
            await store.run("alice", f"k{i}", "fp", create)
        assert len(store._entries) <= 3
        for bad in ("", "x" * 256, "caf\u00e9", "a\nb"):
            with pytest.raises(InvalidRequest, match="Idempotency-Key"):
                await store.run("alice", bad, "fp", create)

    asyncio.run(main())
