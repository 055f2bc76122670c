"""Turning sandbox values into plain data for the host: reprs, JSON-able answers, tracebacks.

These run while the budgets are still active, so a user ``__repr__`` that loops forever is
stopped like any other code; what leaves is only ``str``/JSON data.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import UNCATCHABLE, InterpreterError

__all__ = ["format_traceback", "safe_repr", "safe_str", "to_plain"]

MAX_REPR = 100_000
_JSON_SCALARS = (str, int, float, bool, type(None))


def _clip(text: str, limit: int) -> str:
    if len(text) > limit:
        return text[:limit] + f"... [truncated {len(text) - limit} characters]"
    return text


def safe_repr(value: Any, limit: int = MAX_REPR) -> str:
    try:
        text = repr(value)
        if type(text) is not str:
            text = str.__str__(text)
    except UNCATCHABLE:
        raise
    except BaseException as exc:  # a user __repr__ failing is data, not a host error
        return f"<unrepresentable {type(value).__name__} object: {type(exc).__name__}>"
    return _clip(text, limit)


def safe_str(exc: BaseException, limit: int = MAX_REPR) -> str:
    if isinstance(exc, InterpreterError):
        return exc.message
    try:
        text = str(exc)
        if type(text) is not str:
            text = str.__str__(text)
    except UNCATCHABLE:
        return f"<{type(exc).__name__} message unavailable: budget exhausted>"
    except BaseException:
        return f"<unprintable {type(exc).__name__}>"
    return _clip(text, limit)


def to_plain(value: Any, *, max_items: int = 100_000) -> Any:
    """JSON-able copy of ``value``; anything else becomes its repr (computed in budget)."""
    budget = [max_items]

    def conv(v: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or depth > 50:
            raise OverflowError
        t = type(v)
        if t is int:
            if v.bit_length() > 10_000:
                return f"<int with {v.bit_length()} bits>"
            return v
        if t is float:
            return v if math.isfinite(v) else repr(v)
        if t is str or t is bool or v is None:
            return v
        if t is list or t is tuple:
            return [conv(x, depth + 1) for x in v]
        if t is dict and all(type(k) is str for k in v):
            return {k: conv(x, depth + 1) for k, x in v.items()}
        raise TypeError

    try:
        return conv(value, 0)
    except (TypeError, OverflowError, RecursionError):
        return safe_repr(value)


def format_traceback(exc: BaseException, source: str) -> str:
    lines = source.splitlines()
    out = ["Traceback (most recent call last):"]
    positions = list(reversed(exc.__dict__.get("@sb_tb", []))) if hasattr(exc, "__dict__") else []
    if not positions:
        lineno = getattr(exc, "lineno", None)
        col = getattr(exc, "col", None)
        if col is None:
            col = getattr(exc, "offset", None)
            col = col - 1 if isinstance(col, int) and col > 0 else 0
        if isinstance(lineno, int):
            positions = [(lineno, col or 0, "<module>")]
    for lineno, col, where in positions:
        out.append(f'  File "<code>", line {lineno}, col {col + 1}, in {where}')
        if 0 < lineno <= len(lines):
            out.append("    " + lines[lineno - 1].strip())
    out.append(f"{type(exc).__name__}: {safe_str(exc)}")
    return "\n".join(out)
