"""The interpreter's own exceptions.

Everything here derives from ``BaseException`` (not ``Exception``) and the interpreter's
``try/except`` never matches these classes, not even for ``except BaseException`` or a bare
``except``: user code can neither probe the policy for free nor swallow a budget or a final answer.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceeded",
    "FinalAnswerSignal",
    "InterpreterError",
    "InterpreterNotRunning",
    "IterationLimitExceeded",
    "MemoryLimitExceeded",
    "OperationLimitExceeded",
    "OutputLimitExceeded",
    "RecursionLimitExceeded",
    "SecurityError",
    "SizeLimitExceeded",
    "SourceLimitExceeded",
    "TimeoutExceeded",
    "UnsupportedSyntaxError",
]


class InterpreterError(BaseException):
    """Base of the errors the interpreter raises on its own behalf (never catchable by user code)."""  # noqa: E501

    def __init__(self, message: str = "", *, lineno: int | None = None, col: int | None = None):
        super().__init__(message)
        self.message = message
        self.lineno = lineno
        self.col = col

    def __str__(self) -> str:
        return self.message


class SecurityError(InterpreterError):
    """The code tried something the policy forbids (an import, a dunder, an introspection hop)."""


class UnsupportedSyntaxError(InterpreterError):
    """A construct the interpreter does not implement; it fails rather than mis-executes."""


class InterpreterNotRunning(InterpreterError):
    """User code was invoked by the host outside :meth:`run` (e.g. a generator closed by the GC)."""


class BudgetExceeded(InterpreterError):
    """A resource budget ran out. ``budget`` names the setting that bounds it."""

    budget = ""


class OperationLimitExceeded(BudgetExceeded):
    budget = "max_operations"


class IterationLimitExceeded(BudgetExceeded):
    budget = "max_iterations"


class TimeoutExceeded(BudgetExceeded):
    budget = "timeout_s"


class OutputLimitExceeded(BudgetExceeded):
    budget = "max_output_bytes"


class RecursionLimitExceeded(BudgetExceeded):
    budget = "max_recursion_depth"


class MemoryLimitExceeded(BudgetExceeded):
    budget = "max_memory_mb"


class SizeLimitExceeded(BudgetExceeded):
    budget = "max_collection_size"


class SourceLimitExceeded(BudgetExceeded):
    budget = "max_source_bytes/max_nesting_depth"


class FinalAnswerSignal(BaseException):
    """Raised by ``final_answer(x)``; carries ``x`` out of the interpreted code."""

    def __init__(self, value: Any):
        super().__init__("final answer")
        self.value = value


# What the interpreter's except clauses, finally blocks and with-exits must let through untouched.
UNCATCHABLE: tuple[type[BaseException], ...] = (InterpreterError, FinalAnswerSignal)
