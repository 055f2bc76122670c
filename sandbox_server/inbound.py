"""What a runner sends, bounded before it is parsed: lines, frames, rates.

Everything a sandbox writes is hostile (any process in it can write to the channel through
``/proc/1/fd/1``). These pieces keep the server's cost per sandbox linear in the bytes it
sends and bounded in memory, whatever it sends:

* :class:`LineSplitter` splits the byte stream into lines in time linear in the bytes (each
  byte is scanned once) and enforces the maximum line size as data arrives: an over-long
  line is dropped on the fly, never buffered whole.
* :class:`TokenBucket` rate-limits per sandbox (log frames, bytes read).
* :func:`parse_frame` turns one line into a JSON object, or None; strings in it are made
  UTF-8 encodable (:mod:`.jsonsafe`) and NaN/Infinity refused, so nothing parsed here can
  later fail to render.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .jsonsafe import may_hold_surrogates, scrub
from .settings import Settings

__all__ = ["OVERLONG", "ChannelLimits", "LineSplitter", "TokenBucket", "parse_frame"]


class _Overlong(bytes):
    """Marks a line that was dropped for being longer than the limit."""


OVERLONG = _Overlong(b"")


class LineSplitter:
    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._pending = bytearray()
        self._discarding = False  # inside an over-long line: drop up to its newline
        self.dropped_lines = 0
        self.lines = 0  # complete lines seen (over-long ones included)

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The complete lines ``data`` finishes (without their newline); an over-long line
        yields :data:`OVERLONG` once, when it passes the limit."""
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            if self._discarding:
                if end == -1:
                    return
                self._discarding = False
                start = end + 1
                continue
            piece_end = len(data) if end == -1 else end
            if len(self._pending) + piece_end - start > self.max_line_bytes:
                self._pending.clear()
                self.dropped_lines += 1
                self.lines += 1
                yield OVERLONG
                if end == -1:
                    self._discarding = True
                    return
                start = end + 1
                continue
            if end == -1:
                self._pending += data[start:]
                return
            if self._pending:
                self._pending += data[start:end]
                line = bytes(self._pending)
                self._pending.clear()
            else:
                line = data[start:end]
            start = end + 1
            self.lines += 1
            yield line


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, amount: float = 1.0) -> bool:
        """Spend ``amount`` if there is that much; False (nothing spent) otherwise."""
        self._refill()
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False

    def debt_s(self, amount: float) -> float:
        """Spend ``amount`` even into debt; how long to wait until the debt is paid."""
        self._refill()
        self._tokens -= amount
        return max(-self._tokens / self.rate, 0.0) if self.rate > 0 else 0.0


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# A run of 19 digits may be an integer beyond 64 bits, which orjson would read as a float.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def parse_frame(line: bytes) -> dict[str, Any] | None:
    """One runner line as a JSON object, or None if it is not one.

    The standard library decides: orjson reads a line only when it cannot differ from it (no
    surrogate, no integer beyond 64 bits), and anything orjson refuses (NaN, a number out of
    range, bad UTF-8, deep nesting) is read again by the standard library."""
    if not line or line[:1] != b"{":
        return None
    surrogates = may_hold_surrogates(line)
    try:
        parsed: object = None
        if not surrogates and _LONG_DIGITS.search(line) is None:
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(line)
        if parsed is None:  # a line that starts with "{" never reads as null
            parsed = json.loads(line, parse_constant=_no_constant)
            if surrogates and isinstance(parsed, dict):
                parsed = scrub(parsed)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    message: dict[str, Any] = parsed
    return message


@dataclass(frozen=True)
class ChannelLimits:
    """A sandbox's budget on its channel (see the settings of the same names)."""

    max_message_bytes: int = 8 << 20
    read_bytes_per_s: float = 16 << 20
    log_frames_per_s: float = 10.0
    log_frames_burst: int = 100

    @classmethod
    def of(cls, settings: Settings) -> ChannelLimits:
        return cls(max_message_bytes=settings.runner_max_message_bytes,
                   read_bytes_per_s=settings.runner_read_bytes_per_s,
                   log_frames_per_s=settings.runner_log_frames_per_s)
