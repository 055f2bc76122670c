"""Exceptions and context managers: try/except/else/finally, raise, with."""

from __future__ import annotations

import ast
import contextlib
from typing import TYPE_CHECKING, Any

from .compiler_support import CompilerBase
from .errors import UNCATCHABLE
from .frame import Frame
from .rules import is_user_owned

if TYPE_CHECKING:
    from .compiler import Fn
    from .scope import Scope


__all__ = ["ExcMixin"]


class ExcMixin(CompilerBase):
    def handlers(self, node: ast.Try, sc: Scope) -> list[tuple[Fn | None, Any, Fn]]:
        out = []
        for h in node.handlers:
            typ = self.expr(h.type, sc) if h.type is not None else None
            store = self.store_name(h, h.name, sc) if h.name else None
            unbind = self.del_name(h, h.name, sc) if h.name else None
            out.append((typ, (store, unbind), self.block(h.body, sc)))
        return out

    def s_Try(self, node: ast.Try, sc: Scope) -> Fn:
        body = self.block(node.body, sc)
        handlers = self.handlers(node, sc)
        orelse = self.block(node.orelse, sc) if node.orelse else None
        final = self.block(node.finalbody, sc) if node.finalbody else None

        def run_handlers(f: Frame, e: BaseException) -> tuple[bool, Any]:
            for typ, (store, unbind), hbody in handlers:
                if typ is not None:
                    t = typ(f)
                    if not _valid_except_type(t):
                        raise TypeError(
                            "catching classes that do not inherit from BaseException is not allowed"
                        )
                    if not isinstance(e, t):
                        continue
                if store is None:
                    return True, hbody(f)
                store(f, e)
                try:
                    return True, hbody(f)
                finally:
                    with contextlib.suppress(NameError):
                        unbind(f)
            return False, None

        def try_(f: Frame) -> Any:
            try:
                try:
                    r = body(f)
                except UNCATCHABLE:
                    raise
                except BaseException as e:
                    if not handlers:
                        raise
                    handled, r = run_handlers(f, e)
                    if not handled:
                        raise
                else:
                    if orelse is not None:
                        r = orelse(f)
            except UNCATCHABLE:
                raise
            except BaseException:
                if final is not None:
                    fr = final(f)
                    if fr is not None:
                        return fr
                raise
            if final is not None:
                fr = final(f)
                if fr is not None:
                    return fr
            return r

        return try_

    def s_TryStar(self, node: ast.AST, sc: Scope) -> Fn:
        raise self.unsupported(node, "try/except* (exception groups)")

    def s_Raise(self, node: ast.Raise, sc: Scope) -> Fn:
        if node.exc is None:

            def reraise(f: Frame) -> None:
                raise

            return reraise
        exc = self.expr(node.exc, sc)
        cause = self.expr(node.cause, sc) if node.cause is not None else None

        def raise_(f: Frame) -> None:
            e = exc(f)
            if isinstance(e, type) and issubclass(e, BaseException):
                e = e()
            if not isinstance(e, BaseException):
                raise TypeError("exceptions must derive from BaseException")
            if cause is not None:
                c = cause(f)
                if isinstance(c, type) and issubclass(c, BaseException):
                    c = c()
                if c is not None and not isinstance(c, BaseException):
                    raise TypeError("exception causes must derive from BaseException")
                raise e from c
            raise e

        return raise_

    def s_With(self, node: ast.With, sc: Scope) -> Fn:
        body: Fn = self.block(node.body, sc)
        for item in reversed(node.items):
            body = self._with_item(item, body, sc)
        return body

    def _with_item(self, item: ast.withitem, body: Fn, sc: Scope) -> Fn:
        ctx = self.expr(item.context_expr, sc)
        store = self.store(item.optional_vars, sc) if item.optional_vars is not None else None

        def with_(f: Frame) -> Any:
            mgr = ctx(f)
            t = type(mgr)
            try:
                enter = t.__enter__
                exit_ = t.__exit__
            except AttributeError:
                raise TypeError(
                    f"{t.__name__!r} object does not support the context manager protocol"
                ) from None
            v = enter(mgr)
            if store is not None:
                store(f, v)
            try:
                r = body(f)
            except UNCATCHABLE:
                if not is_user_owned(mgr):
                    exit_(mgr, None, None, None)  # restore native state (e.g. decimal contexts)
                raise
            except BaseException as e:
                if not exit_(mgr, type(e), e, None):
                    raise
                return None
            exit_(mgr, None, None, None)
            return r

        return with_


def _valid_except_type(t: Any) -> bool:
    if isinstance(t, tuple):
        return all(_valid_except_type(x) for x in t)
    return isinstance(t, type) and issubclass(t, BaseException)
