"""Idempotent create: a request that carries an ``Idempotency-Key`` header is done at most once
per API key within a window, whichever API it came through (``/v1`` or E2B's).

E2B's SDK sends the header on create (``Sandbox.create(idempotency_key=...)``) and retries
429/502/503/504 with it, so a retry after a lost answer must get the sandbox made the first
time, not a second one. A repeat with the same body gets the first answer again (waiting for
it while the first request is still running); a repeat with another body is refused (422), as
the key then names two different requests. Failed attempts are not remembered: a retry after a
429 tries again. Bounded: answers live ``window_s`` and at most ``max_entries`` are kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .exceptions import InvalidRequest

__all__ = ["HEADER", "MAX_KEY_LENGTH", "IdempotencyStore", "fingerprint"]

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255  # what E2B's SDK allows


def fingerprint(api: str, body: dict[str, Any]) -> str:
    """The request's identity: which API, and its body as canonical JSON."""
    raw = json.dumps([api, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class _Entry:
    fingerprint: str
    created: float
    answer: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop()
                                        .create_future())


class IdempotencyStore:
    def __init__(self, window_s: float, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def _prune(self, now: float) -> None:
        # Entries are in creation order, so the expired ones are at the front.
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.created < self.window_s and len(self._entries) < self.max_entries:
                break
            if not entry.answer.done():
                break  # still running: its request is bounded by its own timeouts
            del self._entries[key]

    async def run(self, owner: str, key: str | None, request_fingerprint: str,
                  create: Callable[[], Awaitable[Any]]) -> Any:
        """``create()``'s answer, or the answer it gave to the same key and body before."""
        if key is None:
            return await create()
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
            raise InvalidRequest(f"the {HEADER} header must be 1-{MAX_KEY_LENGTH} printable "
                                 f"ASCII characters", limit=HEADER)
        now = self._clock()
        self._prune(now)
        slot = (owner, key)
        entry = self._entries.get(slot)
        if entry is not None:
            if entry.fingerprint != request_fingerprint:
                raise InvalidRequest(
                    f"this {HEADER} was used for a different create request within the last "
                    f"{self.window_s:g} s; use a new key for a new request", limit=HEADER)
            # The first request's answer; if it failed meanwhile, this one tries again.
            try:
                return await asyncio.shield(entry.answer)
            except Exception:
                if self._entries.get(slot) is entry:
                    del self._entries[slot]
                return await self.run(owner, key, request_fingerprint, create)
        entry = _Entry(request_fingerprint, now)
        self._entries[slot] = entry
        try:
            answer = await create()
        except BaseException as exc:
            if self._entries.get(slot) is entry:
                del self._entries[slot]
            if isinstance(exc, Exception):
                entry.answer.set_exception(exc)
                entry.answer.exception()  # retrieved: waiters re-raise it, nobody else must
            else:
                entry.answer.cancel()
            raise
        entry.answer.set_result(answer)
        return answer
