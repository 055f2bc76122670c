"""AST -> Python closures: the core (names, assignment targets, blocks, simple statements).

Each node compiles once into a closure ``fn(frame)``; policy checks and budget ticks are part of
the closures, so no evaluation path skips them. Statements return ``None`` or a control signal
(BREAK/CONTINUE/RETURN); expressions return their value.
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable
from itertools import islice
from typing import Any, cast

from .budget import Budget
from .compgen import COMPREHENSIONS, fuse_comprehension
from .compiler_support import annotate, store_slice
from .errors import UNCATCHABLE, SecurityError, UnsupportedSyntaxError
from .exprgen import fuse
from .frame import BREAK, CONTINUE, MISSING, RETURN, Frame
from .guards import Guards
from .nodes_call import CallMixin
from .nodes_comp import CompMixin
from .nodes_def import DefMixin
from .nodes_exc import ExcMixin
from .nodes_expr import ExprMixin
from .nodes_stmt import StmtMixin
from .policy import Policy
from .rules import CLASS_DUNDERS, USER_MARK, USER_MARK_NAME, is_dunder
from .scope import Scope
from .stmtgen import fuse_block

__all__ = ["Compiler", "Fn", "annotate"]

Fn = Callable[[Frame], Any]
Store = Callable[[Frame, Any], None]

FUSE_DEFAULT = True  # fused expressions (exprgen.py); False only to compare speed

READABLE_NAMES = frozenset({"__name__"})


_SIZED_VALUES = frozenset({list, tuple, str, bytes, bytearray, dict, set, frozenset, range})


class Compiler(ExprMixin, CallMixin, StmtMixin, ExcMixin, DefMixin, CompMixin):
    def __init__(
        self,
        *,
        budget: Budget,
        policy: Policy,
        guards: Guards,
        globals_: dict[str, Any],
        builtins_: dict[str, Any],
        protected: dict[str, Any],
        scopes: dict[int, Scope],
    ) -> None:
        self.b = budget
        self.p = policy
        self.guards = guards
        self.g = globals_
        self.builtins = builtins_
        self.protected = protected
        self.scopes = scopes

    @property
    def fusing(self) -> bool:
        """Generated code for expressions, blocks and functions (exprgen/stmtgen/fngen)."""
        return FUSE_DEFAULT

    # -- errors ----------------------------------------------------------------------------
    def unsupported(self, node: ast.AST, what: str | None = None) -> UnsupportedSyntaxError:
        what = what or type(node).__name__
        return UnsupportedSyntaxError(
            f"{what} is not supported by the local interpreter",
            lineno=getattr(node, "lineno", None),
            col=getattr(node, "col_offset", None),
        )

    def security(self, node: ast.AST, message: str) -> SecurityError:
        return SecurityError(
            message, lineno=getattr(node, "lineno", None), col=getattr(node, "col_offset", None)
        )

    def check_name(self, node: ast.AST, name: str, sc: Scope, store: bool) -> None:
        if is_dunder(name):
            if store and sc.kind == "class" and name in CLASS_DUNDERS:
                return
            if not store and name in READABLE_NAMES:
                return
            raise self.security(node, f"use of the dunder name {name!r} is not allowed")
        if store and name in self.protected:
            raise self.security(node, f"cannot assign to {name!r}: it is a protected tool")

    # -- names -----------------------------------------------------------------------------
    def name_missing(self, name: str) -> Any:
        v = self.protected.get(name, MISSING)
        if v is not MISSING:
            return v
        candidates = [
            n for n in (*self.g, *self.builtins, *self.protected) if not n.startswith("@")
        ]
        close = difflib.get_close_matches(name, candidates, n=1)
        hint = f". Did you mean: {close[0]!r}?" if close else ""
        raise NameError(f"name {name!r} is not defined{hint}", name=name)

    def load_name(self, node: ast.AST, name: str, sc: Scope) -> Fn:
        self.check_name(node, name, sc, store=False)
        if name in self.protected:
            protected = self.protected

            def load_protected(f: Frame) -> Any:
                return protected[name]

            return load_protected
        kind, depth = sc.resolve(name)
        g_get = self.g.get
        b_get = self.builtins.get
        missing = self.name_missing
        if kind == "global":

            def load_global(f: Frame) -> Any:
                v = g_get(name, MISSING)
                if v is MISSING:
                    v = b_get(name, MISSING)
                    if v is MISSING:
                        return missing(name)
                return v

            return load_global
        if kind == "local":

            def load_local(f: Frame) -> Any:
                try:
                    return f.l[name]
                except KeyError:
                    raise UnboundLocalError(
                        f"cannot access local variable {name!r} where it is not associated with a value"  # noqa: E501
                    ) from None

            return load_local
        if kind == "free":
            return self._load_free(name, depth)
        if kind == "class":

            def load_class(f: Frame) -> Any:
                v = f.l.get(name, MISSING)
                if v is MISSING:
                    v = g_get(name, MISSING)
                    if v is MISSING:
                        v = b_get(name, MISSING)
                        if v is MISSING:
                            return missing(name)
                return v

            return load_class
        free = self._load_free(name, depth)

        def load_classfree(f: Frame) -> Any:
            v = f.l.get(name, MISSING)
            return free(f) if v is MISSING else v

        return load_classfree

    def _load_free(self, name: str, depth: int) -> Fn:
        def unbound() -> NameError:
            return NameError(
                f"cannot access free variable {name!r} where it is not associated with a value "
                "in enclosing scope"
            )

        if depth == 1:

            def load_free1(f: Frame) -> Any:
                try:
                    return f.up.l[name]  # type: ignore[union-attr]
                except KeyError:
                    raise unbound() from None

            return load_free1

        def load_free(f: Frame) -> Any:
            fr: Any = f
            for _ in range(depth):
                fr = fr.up
            try:
                return fr.l[name]
            except KeyError:
                raise unbound() from None

        return load_free

    def _scope_dict(self, name: str, sc: Scope) -> Callable[[Frame], dict[str, Any]]:
        kind, depth = sc.resolve(name)
        g = self.g
        if kind == "global":
            return lambda f: g
        if kind in ("local", "class", "classfree"):
            return lambda f: f.l

        def up_dict(f: Frame) -> dict[str, Any]:
            fr: Any = f
            for _ in range(depth):
                fr = fr.up
            return cast("dict[str, Any]", fr.l)

        return up_dict

    def store_name(self, node: ast.AST, name: str, sc: Scope) -> Store:
        self.check_name(node, name, sc, store=True)
        kind, _ = sc.resolve(name)
        if kind == "global":
            g = self.g

            def store_global(f: Frame, v: Any) -> None:
                g[name] = v

            return store_global
        if kind in ("local", "class", "classfree"):

            def store_local(f: Frame, v: Any) -> None:
                f.l[name] = v

            return store_local
        get_dict = self._scope_dict(name, sc)

        def store_free(f: Frame, v: Any) -> None:
            get_dict(f)[name] = v

        return store_free

    def del_name(self, node: ast.AST, name: str, sc: Scope) -> Fn:
        self.check_name(node, name, sc, store=True)
        get_dict = self._scope_dict(name, sc)

        def delete(f: Frame) -> None:
            try:
                del get_dict(f)[name]
            except KeyError:
                raise NameError(f"name {name!r} is not defined") from None

        return delete

    # -- assignment targets ----------------------------------------------------------------
    def store(self, target: ast.expr, sc: Scope) -> Store:
        if isinstance(target, ast.Name):
            return self.store_name(target, target.id, sc)
        if isinstance(target, ast.Attribute):
            obj = self.expr(target.value, sc)
            attr = target.attr
            if is_dunder(attr):
                raise self.security(
                    target, f"assignment of dunder attribute {attr!r} is not allowed"
                )
            set_attr = self.p.set_attr

            def store_attr(f: Frame, v: Any) -> None:
                o = obj(f)
                if getattr(type(o), USER_MARK_NAME, None) is USER_MARK:
                    setattr(o, attr, v)  # the sandbox's own instance; the name was checked above
                else:
                    set_attr(o, attr, v)

            return store_attr
        if isinstance(target, ast.Subscript):
            obj = self.expr(target.value, sc)
            key = self.expr(target.slice, sc)

            iterate = self.b.iterate
            too_big = self.guards.too_big
            max_size = self.guards.max_size

            def store_item(f: Frame, v: Any) -> None:
                o = obj(f)
                k = key(f)
                if type(k) is slice:
                    store_slice(o, k, v, iterate, too_big, max_size)
                    return
                o[k] = v

            return store_item
        if isinstance(target, (ast.Tuple, ast.List)):
            return self._store_unpack(target, sc)
        if isinstance(target, ast.Starred):
            raise SyntaxError("starred assignment target must be in a list or tuple")
        raise self.unsupported(target, f"assignment to {type(target).__name__}")

    def _store_unpack(self, target: ast.Tuple | ast.List, sc: Scope) -> Store:
        elts = target.elts
        star = [i for i, e in enumerate(elts) if isinstance(e, ast.Starred)]
        if len(star) > 1:
            raise SyntaxError("multiple starred expressions in assignment")
        stores = [self.store(e.value if isinstance(e, ast.Starred) else e, sc) for e in elts]
        n = len(elts)
        budget = self.b
        if not star:

            def unpack(f: Frame, v: Any) -> None:
                vals = v if type(v) is tuple or type(v) is list else list(islice(iter(v), n + 1))
                if len(vals) != n:
                    if len(vals) > n:
                        raise ValueError(f"too many values to unpack (expected {n})")
                    raise ValueError(f"not enough values to unpack (expected {n}, got {len(vals)})")
                for s, x in zip(stores, vals, strict=False):
                    s(f, x)

            return unpack
        si = star[0]
        after = n - si - 1

        def unpack_star(f: Frame, v: Any) -> None:
            vals = list(budget.iterate(v)) if type(v) not in (list, tuple) else list(v)
            if len(vals) < n - 1:
                raise ValueError(
                    f"not enough values to unpack (expected at least {n - 1}, got {len(vals)})"
                )
            for i in range(si):
                stores[i](f, vals[i])
            stores[si](f, vals[si : len(vals) - after])
            for j in range(after):
                stores[si + 1 + j](f, vals[len(vals) - after + j])

        return unpack_star

    # -- blocks ----------------------------------------------------------------------------
    def block(self, stmts: list[ast.stmt], sc: Scope) -> Fn:
        if FUSE_DEFAULT:
            fused = fuse_block(self, stmts, sc, tick=True)
            if fused is not None:
                return fused
        fns = [self.stmt(s, sc) for s in stmts]
        return self.make_block(fns)

    def make_block(self, fns: list[Fn]) -> Fn:
        b = self.b
        n = len(fns)
        if n == 0:
            return lambda f: None
        if n == 1:
            s0 = fns[0]

            def block1(f: Frame) -> Any:
                b.left -= 1
                if b.left < 0:
                    b.refill()
                try:
                    return s0(f)
                except BaseException as e:
                    annotate(e, s0.sb_pos)  # type: ignore[attr-defined]
                    raise

            return block1
        seq = tuple(fns)

        def block(f: Frame) -> Any:
            b.left -= n
            if b.left < 0:
                b.refill()
            s = seq[0]
            try:
                for s in seq:
                    r = s(f)
                    if r is not None:
                        return r
            except BaseException as e:
                annotate(e, s.sb_pos)  # type: ignore[attr-defined]
                raise
            return None

        return block

    def stmt(self, node: ast.stmt, sc: Scope) -> Fn:
        return self.plain_stmt(node, sc, fusing=FUSE_DEFAULT)

    def plain_stmt(self, node: ast.stmt, sc: Scope, fusing: bool = False) -> Fn:
        """The closure of one statement (``fusing``: a loop or branch may be generated code)."""
        fn: Any = None
        if fusing and isinstance(node, (ast.For, ast.While, ast.If)):
            fn = fuse_block(self, [node], sc, tick=False)
        if fn is None:
            method = getattr(self, "s_" + type(node).__name__, None)
            if method is None:
                raise self.unsupported(node)
            fn = method(node, sc)
        if not hasattr(fn, "sb_pos") or getattr(fn, "sb_shared", False):
            fn = _own(fn)
        fn.sb_pos = (node.lineno, node.col_offset, sc.name)
        return cast(Fn, fn)

    def expr(self, node: ast.expr, sc: Scope) -> Fn:
        if FUSE_DEFAULT:
            if isinstance(node, COMPREHENSIONS):
                fused = fuse_comprehension(self, node, sc)
            else:
                fused = fuse(self, node, sc)
            if fused is not None:
                return fused
        method = getattr(self, "e_" + type(node).__name__, None)
        if method is None:
            raise self.unsupported(node)
        return cast(Fn, method(node, sc))


def _own(fn: Fn) -> Fn:
    """A distinct function object for a statement, so it can carry its own position."""
    if (
        getattr(fn, "__code__", None) is not None
        and not hasattr(fn, "sb_pos")
        and not getattr(fn, "sb_shared", False)
    ):
        return fn

    def stmt(f: Frame) -> Any:
        return fn(f)

    return stmt


_ = (operator, RETURN, BREAK, CONTINUE, UNCATCHABLE)
