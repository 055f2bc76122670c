"""Specialised closures for the most frequent expression shapes.

A closure-compiled interpreter pays one Python call per node; for comparisons and arithmetic
with a constant operand, or a global function call, one call can be saved by generating the
closure for the exact operator. The templates below are fixed host code (no user input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

__all__ = ["binop_closure", "compare_closure"]

Fn = Callable[[Any], Any]

_COMPARE_OPS = {
    "Eq": "==", "NotEq": "!=", "Lt": "<", "LtE": "<=", "Gt": ">", "GtE": ">=",
    "Is": "is", "IsNot": "is not", "In": "in", "NotIn": "not in",
}  # fmt: skip
# Operators that can never allocate more than their operands (no size check needed).
_PLAIN_BINOPS = {"RShift": ">>", "BitOr": "|", "BitXor": "^", "BitAnd": "&"}
# Operators whose result may still be big: fractions' denominators multiply under - and /, and
# dividing big integers is slow. Plain numbers pass straight through; the rest goes to ``post``.
_POST_BINOPS = {"Sub": "-", "Div": "/", "FloorDiv": "//"}

_TEMPLATE = """
def make(left, right):
    def node(f):
        return left(f) {op} right(f)
    return node

def make_const(left, c):
    def node(f):
        return left(f) {op} c
    return node
"""


_POST_TEMPLATE = """
def make(left, right, post):
    def node(f):
        r = left(f) {op} right(f)
        if type(r) is float or (type(r) is int and NBIG < r < BIG):
            return r
        return post(r)
    return node

def make_const(left, c, post):
    def node(f):
        r = left(f) {op} c
        if type(r) is float or (type(r) is int and NBIG < r < BIG):
            return r
        return post(r)
    return node
"""


def _build(ops: dict[str, str], template: str = _TEMPLATE) -> dict[str, tuple[Any, Any]]:
    out = {}
    for name, op in ops.items():
        ns: dict[str, Any] = {"BIG": 1 << 50_000, "NBIG": -(1 << 50_000)}  # -BIG: not per call
        exec(template.format(op=op), ns)  # fixed templates: an operator from the table above
        out[name] = (ns["make"], ns["make_const"])
    return out


_COMPARE = _build(_COMPARE_OPS)
_NUMERIC_CONST = _build({"Add": "+", "Mult": "*"})
_BINOPS = _build(_PLAIN_BINOPS)
_POST = _build(_POST_BINOPS, _POST_TEMPLATE)
_MISSING = object()


def compare_closure(op: str, left: Fn, right: Fn | None, const: Any = _MISSING) -> Fn:
    make, make_const = _COMPARE[op]
    if right is None:
        return cast(Fn, make_const(left, const))
    return cast(Fn, make(left, right))


def binop_closure(
    op: str, left: Fn, right: Fn | None, const: Any = _MISSING, post: Any = None
) -> Fn | None:
    """A closure for an operator that needs no size guard (or only ``post``), or None."""
    if op in _POST and post is not None:
        pmake, pmake_const = _POST[op]
        return cast(
            Fn, pmake_const(left, const, post) if right is None else pmake(left, right, post)
        )
    pair = _BINOPS.get(op)
    if pair is None and right is None and type(const) is float and op in _NUMERIC_CONST:
        pair = _NUMERIC_CONST[op]  # x + 1.5, x * 0.5: no sequence can grow
    elif pair is None and right is None and type(const) is int and op == "Add":
        pair = _NUMERIC_CONST[op]  # x + 1: a sequence + int is a TypeError anyway
    if pair is None:
        return None
    make, make_const = pair
    if right is None:
        return cast(Fn, make_const(left, const))
    return cast(Fn, make(left, right))
