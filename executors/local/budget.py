"""Budgets: operations, loop iterations, wall clock, output bytes, recursion depth, memory.

The hot path is a countdown (``budget.left -= n; if budget.left < 0: budget.refill()``) inlined
into the compiled closures; everything costly (clock, memory, totals) happens in :meth:`refill`,
once per chunk of operations. Once a budget trips it stays tripped for the rest of the run, so
``finally`` blocks or handlers cannot keep working past it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import (
    BudgetExceeded,
    InterpreterNotRunning,
    IterationLimitExceeded,
    MemoryLimitExceeded,
    OperationLimitExceeded,
    OutputLimitExceeded,
    TimeoutExceeded,
)

__all__ = ["NO_TIMEOUT_S", "Budget", "Limits"]

_CHUNK = 1000  # operations between two clock checks
_MEM_EVERY = 32  # chunks between two memory checks
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


# timeout_s=None: no wall-clock budget (a finite stand-in keeps deadlines, waits and the JSON
# of the child process plain numbers).
NO_TIMEOUT_S = 10.0**9


class Limits:
    """The configured bounds of one interpreter (plain numbers, JSON-able)."""

    __slots__ = (
        "max_collection_size",
        "max_format_width",
        "max_int_bits",
        "max_iterations",
        "max_memory_mb",
        "max_nesting_depth",
        "max_operations",
        "max_output_bytes",
        "max_recursion_depth",
        "max_source_bytes",
        "timeout_s",
    )

    def __init__(
        self,
        *,
        timeout_s: float = 30.0,
        max_operations: int = 50_000_000,
        max_iterations: int = 10_000_000,
        max_output_bytes: int = 1_000_000,
        max_recursion_depth: int = 1000,
        max_memory_mb: int = 1024,
        max_source_bytes: int = 500_000,
        max_nesting_depth: int = 100,
        max_collection_size: int = 10_000_000,
        max_int_bits: int = 1_000_000,
        max_format_width: int = 100_000,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_operations = max_operations
        self.max_iterations = max_iterations
        self.max_output_bytes = max_output_bytes
        self.max_recursion_depth = max_recursion_depth
        self.max_memory_mb = max_memory_mb
        self.max_source_bytes = max_source_bytes
        self.max_nesting_depth = max_nesting_depth
        self.max_collection_size = max_collection_size
        self.max_int_bits = max_int_bits
        self.max_format_width = max_format_width

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class Budget:
    """The mutable counters of one run. Compiled code touches ``left``, ``iters`` and ``depth``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.left = -1  # inactive: the first tick goes to refill(), which refuses to run
        self.iters = -1
        self.depth = 0
        self.max_depth = limits.max_recursion_depth
        self.active = False
        self.tripped: BudgetExceeded | None = None
        self._pool = 0
        self._deadline = 0.0
        self._chunks = 0
        self._rss_limit: int | None = None
        self._out: list[str] = []
        self._out_bytes = 0
        self.output_truncated = False
        self.on_output: Any = None  # optional callback(str) used to stream output (process mode)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout_s: float | None) -> None:
        lim = self.limits
        timeout = lim.timeout_s if timeout_s is None else timeout_s
        self._deadline = time.monotonic() + timeout
        self._timeout = timeout
        self._pool = lim.max_operations
        self.left = 0
        self.iters = lim.max_iterations
        self.depth = 0
        self.tripped = None
        self.active = True
        self._chunks = 0
        self._out = []
        self._out_bytes = 0
        self.output_truncated = False
        base = _rss_bytes()
        self._rss_limit = None if base is None else base + lim.max_memory_mb * 2**20
        self.refill()

    def abort(self) -> None:
        """Stop the running code at its next step (called from another thread)."""
        self._trip(TimeoutExceeded("execution was interrupted by the host"))

    def stop(self) -> None:
        self.active = False
        self.left = -(2**62)
        self.iters = -(2**62)

    @property
    def operations_used(self) -> int:
        return self.limits.max_operations - self._pool - max(self.left, 0)

    # -- the slow path of the countdowns ----------------------------------------------------
    def _trip(self, exc: BudgetExceeded) -> BudgetExceeded:
        self.tripped = exc
        self.left = -(2**62)
        self.iters = -(2**62)
        return exc

    def refill(self) -> None:
        if not self.active:
            raise InterpreterNotRunning("sandboxed code cannot run outside an execution")
        if self.tripped is not None:
            raise type(self.tripped)(self.tripped.message)
        if time.monotonic() > self._deadline:
            raise self._trip(
                TimeoutExceeded(f"execution exceeded the time budget (timeout_s={self._timeout:g})")
            )
        self._chunks += 1
        if self._rss_limit is not None and self._chunks % _MEM_EVERY == 0:
            self.check_memory()
        while self.left < 0 or self.left == 0:
            if self._pool <= 0:
                raise self._trip(
                    OperationLimitExceeded(
                        f"execution exceeded the operation budget "
                        f"(max_operations={self.limits.max_operations})"
                    )
                )
            take = min(_CHUNK, self._pool)
            self._pool -= take
            self.left += take
        if self.on_output is not None and self._out:
            self.flush_output()

    def iterations_exceeded(self) -> None:
        if not self.active:
            raise InterpreterNotRunning("sandboxed code cannot run outside an execution")
        if self.tripped is not None:
            raise type(self.tripped)(self.tripped.message)
        raise self._trip(
            IterationLimitExceeded(
                f"execution exceeded the loop-iteration budget "
                f"(max_iterations={self.limits.max_iterations})"
            )
        )

    def check_memory(self) -> None:
        rss = _rss_bytes()
        if rss is not None and self._rss_limit is not None and rss > self._rss_limit:
            raise self._trip(
                MemoryLimitExceeded(
                    f"execution exceeded the memory budget (max_memory_mb={self.limits.max_memory_mb})"  # noqa: E501
                )
            )

    def check_clock(self) -> None:
        """Before/after one expensive native operation: the deadline, right now."""
        if self.tripped is not None:
            raise type(self.tripped)(self.tripped.message)
        if self.active and time.monotonic() > self._deadline:
            raise self.timeout_now()

    def remaining_time(self) -> float:
        return self._deadline - time.monotonic()

    def timeout_now(self) -> BudgetExceeded:
        return self._trip(
            TimeoutExceeded(f"execution exceeded the time budget (timeout_s={self._timeout:g})")
        )

    # -- native iteration ------------------------------------------------------------------
    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Feed an iterator to native code one budgeted item at a time."""
        for n, item in enumerate(iterable, 1):
            self.left -= 1
            if self.left < 0:
                self.refill()
            if not n & 63 and time.monotonic() > self._deadline:
                # native consumers may do much more than one operation per item (quadratic
                # concatenation in reduce()...): look at the clock more often here.
                self.refill()
            self.iters -= 1
            if self.iters < 0:
                self.iterations_exceeded()
            yield item

    # -- output ----------------------------------------------------------------------------
    def write(self, text: str) -> None:
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        cap = self.limits.max_output_bytes
        if self._out_bytes + size > cap:
            room = cap - self._out_bytes
            if room > 0:
                self._out.append(
                    text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
                )
            self._out_bytes = cap
            self.output_truncated = True
            raise self._trip(
                OutputLimitExceeded(f"output exceeded max_output_bytes={cap}; execution stopped")
            )
        self._out_bytes += size
        self._out.append(text)

    def flush_output(self) -> None:
        text = "".join(self._out)
        self._out = []
        if text and self.on_output is not None:
            self.on_output(text)

    def take_output(self) -> str:
        text = "".join(self._out)
        self._out = []
        return text
