"""Small helpers shared by the compiler modules (kept apart to avoid import cycles)."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

__all__ = ["CompilerBase", "annotate", "invoke", "is_user_function", "store_slice"]

_FunctionType = types.FunctionType
_MethodType = types.MethodType


def annotate(exc: BaseException, pos: tuple[int, int, str]) -> None:
    """Record the user-code position an exception passed through (innermost first)."""
    try:
        d = exc.__dict__
    except AttributeError:
        return
    tb = d.get("@sb_tb")
    if tb is None:
        d["@sb_tb"] = [pos]
        d["@sb_open"] = False
    elif d.get("@sb_open"):
        tb.append(pos)
        d["@sb_open"] = False


_SIZED_VALUES = frozenset({list, tuple, str, bytes, bytearray, dict, set, frozenset, range})


def store_slice(o: Any, k: slice, v: Any, iterate: Any, too_big: Any, max_size: int) -> None:
    """``o[a:b] = v``: an iterator is consumed natively (no budget), and x[n:] = x doubles."""
    if type(v) not in _SIZED_VALUES and hasattr(type(v), "__iter__"):
        v = list(iterate(v))
    o[k] = v
    if type(o) in _SIZED_VALUES and len(o) > max_size:
        n = len(o)
        o.clear()
        raise too_big(type(o).__name__, n)


def is_user_function(fn: Any) -> bool:
    from .rules import USER_CODE_IDS

    t = type(fn)
    if t is _FunctionType:
        return id(fn.__code__) in USER_CODE_IDS
    if t is _MethodType:
        return type(fn.__func__) is _FunctionType and id(fn.__func__.__code__) in USER_CODE_IDS
    return False


def invoke(fn: Any, args: list[Any], call_native: Callable[..., Any]) -> Any:
    """Call ``fn`` from compiled code: user functions directly, anything else as native."""
    if is_user_function(fn):
        return fn(*args)
    return call_native(fn, args, None)


if TYPE_CHECKING:
    from .budget import Budget
    from .guards import Guards
    from .policy import Policy
    from .scope import Scope

    class CompilerBase:
        """What the compiler mixins may use (for the type checker; the mixins share it)."""

        b: Budget
        p: Policy
        guards: Guards
        g: dict[str, Any]
        builtins: dict[str, Any]
        protected: dict[str, Any]
        scopes: dict[int, Scope]

        def __getattr__(self, name: str) -> Any: ...

else:

    class CompilerBase:
        __slots__ = ()
