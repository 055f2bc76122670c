"""User functions with a fixed number of positional parameters, generated per shape.

``def user_function(a0=NA, a1=NA, *args, **kwargs)`` is called by CPython's specialised
``CALL`` without packing a tuple (and without recursing on the C stack), which makes calls of
simple sandboxed functions about twice as fast as a ``*args`` wrapper. Any other call shape
(keywords, missing or extra arguments) falls back to the general binder. The template is fixed
host code instantiated per (parameters, defaults) count; user names never enter it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .rules import add_user_code

__all__ = ["MAX_ARITY", "arity_factory"]

MAX_ARITY = 4

_TEMPLATE = """
def factory(params, binder, body, defaults, kwdefaults, up, cls, b, expr_body,
            Frame, RETURN, NA, too_deep, mark_open, cost):
    {unpack_params}
    {unpack_defaults}
    new_frame = object.__new__

    def user_function({sig}*args, **kwargs):
        b.left -= cost
        if b.left < 0:
            b.refill()
        if {required_given}not args and not kwargs:
            {fill}
            fr = new_frame(Frame)  # Frame's fields set here: no __init__ call per call
            fr.l = {{{pairs}}}
            fr.up = up
            fr.cls = cls
            fr.ret = None
        else:
            given = tuple(a for a in ({names}) if a is not NA)
            fr = Frame(binder((*given, *args), kwargs, defaults, kwdefaults), up, cls)
        b.depth += 1
        if b.depth > b.max_depth:
            b.depth -= 1
            raise too_deep(b)
        try:
            r = body(fr)
        except BaseException as e:
            mark_open(e)
            raise
        finally:
            b.depth -= 1
        if expr_body:
            return r
        if r is RETURN:
            return fr.ret
        return None

    return user_function
"""

_CACHE: dict[tuple[int, int], Callable[..., Any]] = {}


def _make(n: int, nd: int) -> Callable[..., Any]:
    fd = n - nd  # first parameter with a default
    names = [f"a{i}" for i in range(n)]
    source = _TEMPLATE.format(
        unpack_params=f"({', '.join(f'p{i}' for i in range(n))},) = params" if n else "pass",
        unpack_defaults=f"({', '.join(f'd{i}' for i in range(fd, n))},) = defaults"
        if nd
        else "pass",
        sig="".join(f"{a}=NA, " for a in names),
        required_given=f"a{fd - 1} is not NA and " if fd else "",
        fill="\n            ".join(
            f"if a{i} is NA:\n                a{i} = d{i}" for i in range(fd, n)
        )
        or "pass",
        pairs=", ".join(f"p{i}: a{i}" for i in range(n)),
        names=", ".join(names) + ("," if n == 1 else ""),
    )
    ns: dict[str, Any] = {}
    exec(source, ns)  # a fixed template, instantiated for small arities only
    factory: Callable[..., Any] = ns["factory"]
    for const in factory.__code__.co_consts:
        if getattr(const, "co_name", None) == "user_function":
            add_user_code(const)
    return factory


def arity_factory(n: int, nd: int) -> Callable[..., Any]:
    factory = _CACHE.get((n, nd))
    if factory is None:
        factory = _CACHE[(n, nd)] = _make(n, nd)
    return factory
