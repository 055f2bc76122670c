"""Fused calls: ``f(x)`` and ``obj.method(x)`` written inline by ``exprgen``.

The steps are those of ``nodes_call`` (``call1``/``call_global1``, ``method_call_fast``) and of
the pure-builtin branch of ``Guards.call_native``: a sandbox function is called directly, a pure
builtin (``len``, ``str``...) directly when no argument is an iterator or a container whose text
must be measured, a method of a builtin str/list/dict with the size checks after the call; any
other callee goes through ``call_value`` (``call_native``) exactly as before.
"""

from __future__ import annotations

import ast
import keyword
import types
from typing import TYPE_CHECKING, Any

from .guards import (
    _CHECKED_METHODS,
    _GROWING,
    _NO_ITER_TYPES,
    _PURE_IDS,
    _SIZED_RESULT_TYPES,
    _TEXT_CONTAINERS,
    _TEXT_FUNCS,
)
from .host_effects import CallOnly
from .nodes_call import _called_here
from .nodes_expr import _METHOD_FAST_TYPES, _NO_ITER_ARGS
from .policy import WATCHED_PLAIN
from .rules import PLAIN_TYPES, USER_MARK_NAME

if TYPE_CHECKING:
    from .compiler import Compiler
    from .scope import Scope

__all__ = ["CALL_NAMES", "CallGen", "attr_text", "is_fusable_call"]

_FunctionType = types.FunctionType
_MethodType = types.MethodType

# Names the generated calls use (bound in every fused function's namespace).
CALL_NAMES: dict[str, Any] = {
    "PURE": _PURE_IDS,
    "NOITER": _NO_ITER_TYPES,
    "TEXTF": _TEXT_FUNCS,
    "TEXTC": _TEXT_CONTAINERS,
    "MFAST": _METHOD_FAST_TYPES,
    "GROWING": _GROWING,
    "SIZED": _SIZED_RESULT_TYPES,
    "len": len,
    "CallOnly": CallOnly,
    "NOITERARGS": _NO_ITER_ARGS,
    "MARKNAME": USER_MARK_NAME,
    "issubclass": issubclass,
    "called_here": _called_here,
    "MT": _MethodType,
}


def is_fusable_call(node: ast.Call) -> bool:
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id != "super" and len(node.args) <= 3
    if isinstance(func, ast.Attribute):
        name = func.attr
        # the shapes nodes_call sends to method_call_fast
        return (
            name[0] != "_"
            and "_" not in name[:5]
            and name not in ("format", "format_map")
            and len(node.args) <= 2
        )
    return False


def _method_policy(guard_slow: Any, hook: Any) -> Any:
    """The attribute policy of ``method_call_fast`` for a value that is not a sandbox method
    of an owner that is not a builtin value."""

    def policy(o: Any, m: Any, name: str) -> Any:
        try:
            tm = type(m)
            if tm not in PLAIN_TYPES:
                return guard_slow(m)
            if tm is _MethodType or tm in WATCHED_PLAIN:
                return hook(o, m, tm)
            return m
        except CallOnly as e:
            return _called_here(e, name)  # os.listdir(...): a host function, called now

    return policy


def attr_text(o: str, name: str, k: str) -> str:
    """``o.name`` (an attribute name the parser accepted is an identifier: safe as text, and
    CPython specialises the read), else ``getattr(o, k)``."""
    if name.isidentifier() and not keyword.iskeyword(name) and name.isascii():
        return f"{o}.{name}"
    return f"getattr({o}, {k})"


class CallGen:
    """The call emitters of ``exprgen._Gen`` (a mixin: it emits through the generator)."""

    comp: Compiler
    sc: Scope
    indent: int

    if TYPE_CHECKING:

        def value(self, node: ast.expr, depth: int) -> str: ...
        def tmp(self) -> str: ...
        def emit(self, line: str) -> None: ...
        def param(self, obj: Any, prefix: str) -> str: ...

    def v_Call(self, node: ast.Call, depth: int) -> str:
        if isinstance(node.func, ast.Attribute):
            return self._method_call(node, node.func, depth)
        fn = self.value(node.func, depth)
        argv = [self.value(a, depth) for a in node.args]
        args = ", ".join(argv)
        t = self.tmp()
        native = self.param(self.comp.guards.call_native, "C")
        seen = self.param([None], "J")  # the sandbox function this call site last checked
        seen_pure = self.param([None], "J")  # the pure builtin it last called
        plain_args = [*(f"type({a}) in NOITER" for a in argv)]
        if argv:
            plain_args.append(f"({fn} not in TEXTF or type({argv[0]}) not in TEXTC)")
        checks = "".join(f" and {c}" for c in plain_args)
        self.emit(f"if {fn} is {seen}[0]:")
        self.emit(f"    {t} = {fn}({args})")
        self.emit(f"elif {fn} is {seen_pure}[0]{checks}:")
        self.emit(f"    {t} = {fn}({args})")
        self.emit(f"elif type({fn}) is FT and id({fn}.__code__) in codes:")
        self.emit(f"    {seen}[0] = {fn}")
        self.emit(f"    {t} = {fn}({args})")
        self.emit(f"elif id({fn}) in PURE{checks}:")
        self.emit(f"    {seen_pure}[0] = {fn}")
        self.emit(f"    {t} = {fn}({args})  # len(), str()...: call_native's pure branch")
        # a sandbox class with plain arguments: __init__ is interpreted (call_value's first case)
        plain = "".join(f" and type({a}) in NOITERARGS" for a in argv)
        self.emit(
            f"elif type({fn}) is type and MARKNAME in {fn}.__dict__ and "
            f"not issubclass({fn}, type){plain}:"
        )
        self.emit(f"    {t} = {fn}({args})")
        self.emit("else:")
        self.emit(f"    {t} = call_slow({fn}, [{args}], None, {native})")
        return t

    def _method_call(self, node: ast.Call, func: ast.Attribute, depth: int) -> str:
        comp = self.comp
        name = func.attr
        comp.attr_getter(func, name)  # the compile-time checks of method_call
        o = self.value(func.value, depth)
        k = self.param(name, "k")
        policy = self.param(_method_policy(comp.p.guard_slow, comp.p.plain_hook), "W")
        m, u, bo = self.tmp(), self.tmp(), self.tmp()
        self.emit(f"{bo} = type({o}) in MFAST")
        self.emit(f"{u} = None")
        self.emit(f"if {bo}:")
        self.emit(f"    {m} = {attr_text(o, name, k)}")
        self.emit("else:")
        self.indent += 1
        # the lookup of method_call_fast; a sandbox method (the usual case) written inline
        self.emit("try:")
        self.emit(f"    {m} = {attr_text(o, name, k)}")
        self.emit("except CallOnly as e:")
        self.emit(f"    {m} = called_here(e, {k})  # os.listdir(...): called now, never kept")
        seen = self.param([None], "J")  # the sandbox method this call site last checked
        self.emit("else:")
        self.emit(f"    if type({m}) is MT:")
        self.emit(f"        {u} = {m}.__func__")
        self.emit(f"        if {u} is not {seen}[0]:")
        self.emit(f"            if type({u}) is FT and id({u}.__code__) in codes:")
        self.emit(f"                {seen}[0] = {u}")
        self.emit("            else:")
        self.emit(f"                {u} = None")
        self.emit(f"                {m} = {policy}({o}, {m}, {k})")
        self.emit("    else:")
        self.emit(f"        {m} = {policy}({o}, {m}, {k})")
        self.indent -= 1
        argv = [self.value(a, depth) for a in node.args]
        args = ", ".join(argv)
        a_list = f"[{args}]"
        t = self.tmp()
        g = comp.guards
        call_method = self.param(g.call_method, "R")
        native = self.param(g.call_native, "C")
        self.emit(f"if {u} is not None:")
        self.emit(f"    {t} = {u}({m}.__self__, {args})")
        self.emit(f"elif {bo}:")
        self.indent += 1
        plain = [f"type({a}) in NOITER" for a in argv]
        if name not in _CHECKED_METHODS:
            # counts.get(k, 0), s.strip(), xs.append(x): call_method inlined
            self.emit(f"if {' and '.join(plain) or 'True'}:")
            self.emit(f"    {t} = {m}({args})")
            limit = self.param(g.max_size, "c")
            self.emit(f"    if type({o}) in GROWING and len({o}) > {limit}:")
            self.emit(f"        {self.param(_too_big(g), 'Z')}({o})")
            self.emit(f"    if type({t}) in SIZED and len({t}) > 100_000:")
            self.emit(
                f"        {self.param(g.check_size, 'V')}('result of a native call', len({t}))"
            )
            self.emit("else:")
            self.emit(f"    {t} = {call_method}({o}, {m}, {k}, {a_list})")
        else:
            self.emit(f"{t} = {call_method}({o}, {m}, {k}, {a_list})")
        self.indent -= 1
        self.emit("else:")
        self.emit(f"    {t} = call_slow({m}, {a_list}, None, {native})")
        return t


def _too_big(g: Any) -> Any:
    def too_big(o: Any) -> None:
        n = len(o)
        o.clear()
        raise g.too_big(type(o).__name__, n)

    return too_big
