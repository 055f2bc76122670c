"""Generator function bodies: statements that contain ``yield`` compile to host generators.

Only statements that contain a ``yield`` take this slower path; ``yield``/``yield from`` are
supported as statements (``yield x``), as assigned values (``v = yield x``) and inside
if/for/while/try/with. Any other placement fails with a clear error.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from .compiler_support import CompilerBase, annotate
from .errors import UNCATCHABLE
from .frame import BREAK, CONTINUE, Frame
from .rules import is_user_owned

if TYPE_CHECKING:
    from .compiler import Fn
    from .scope import Scope

__all__ = ["GenMixin"]


def _has_yield(node: ast.AST) -> bool:
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.Yield, ast.YieldFrom)):
            return True
        if (
            isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))
            and n is not node
        ):
            continue
        todo.extend(ast.iter_child_nodes(n))
    return False


class GenMixin(CompilerBase):
    def gen_block(self, stmts: list[ast.stmt], sc: Scope) -> Fn:
        items = [self.gstmt(s, sc) for s in stmts]
        n = len(items)
        b = self.b

        def gen_block(fr: Frame) -> Any:
            b.left -= n
            if b.left < 0:
                b.refill()
            s: Any = None
            try:
                for is_gen, s in items:
                    r = (yield from s(fr)) if is_gen else s(fr)
                    if r is not None:
                        return r
            except BaseException as e:
                if s is not None:
                    annotate(e, s.sb_pos)
                raise
            return None

        return gen_block

    def gstmt(self, node: ast.stmt, sc: Scope) -> tuple[bool, Fn]:
        if not _has_yield(node):
            return False, self.stmt(node, sc)
        fn = self._gstmt(node, sc)
        fn.sb_pos = (node.lineno, node.col_offset, sc.name)  # type: ignore[attr-defined]
        return True, fn

    def _yield_value(self, node: ast.expr, sc: Scope) -> Fn:
        if isinstance(node, ast.Yield):
            value = self.expr(node.value, sc) if node.value is not None else (lambda f: None)

            def yield_(fr: Frame) -> Any:
                return (yield value(fr))

            return yield_
        if isinstance(node, ast.YieldFrom):
            source = self.expr(node.value, sc)

            def yield_from(fr: Frame) -> Any:
                return (yield from source(fr))

            return yield_from
        raise self.unsupported(node, "yield inside an expression")

    def _gstmt(self, node: ast.stmt, sc: Scope) -> Fn:
        b = self.b
        if isinstance(node, ast.Expr):
            y = self._yield_value(node.value, sc)

            def gexpr(fr: Frame) -> Any:
                yield from y(fr)
                return None

            return gexpr
        if isinstance(node, ast.Assign):
            y = self._yield_value(node.value, sc)
            stores = [self.store(t, sc) for t in node.targets]

            def gassign(fr: Frame) -> Any:
                v = yield from y(fr)
                for s in stores:
                    s(fr, v)
                return None

            return gassign
        if isinstance(node, ast.If):
            if _has_yield(node.test):
                raise self.unsupported(node, "yield in an if condition")
            test = self.expr(node.test, sc)
            body, orelse = self.gen_block(node.body, sc), self.gen_block(node.orelse, sc)

            def gif(fr: Frame) -> Any:
                return (yield from (body(fr) if test(fr) else orelse(fr)))

            return gif
        if isinstance(node, (ast.For, ast.While)):
            is_for = isinstance(node, ast.For)
            if _has_yield(node.iter if isinstance(node, ast.For) else node.test):
                raise self.unsupported(node, "yield in a loop header")
            head = self.expr(node.iter if isinstance(node, ast.For) else node.test, sc)
            store = self.store(node.target, sc) if isinstance(node, ast.For) else None
            body = self.gen_block(node.body, sc)
            orelse = self.gen_block(node.orelse, sc)

            def gloop(fr: Frame) -> Any:
                if is_for:
                    it = iter(head(fr))
                while True:
                    if is_for:
                        try:
                            x = next(it)
                        except StopIteration:
                            break
                        store(fr, x)  # type: ignore[misc]
                    elif not head(fr):
                        break
                    b.iters -= 1
                    if b.iters < 0:
                        b.iterations_exceeded()
                    r = yield from body(fr)
                    if r is not None:
                        if r is BREAK:
                            return None
                        if r is CONTINUE:
                            continue
                        return r
                return (yield from orelse(fr))

            return gloop
        if isinstance(node, ast.Try):
            return self._gtry(node, sc)
        if isinstance(node, ast.With):
            if len(node.items) != 1:
                raise self.unsupported(node, "yield inside a multi-item with")
            item = node.items[0]
            ctx = self.expr(item.context_expr, sc)
            store = self.store(item.optional_vars, sc) if item.optional_vars is not None else None
            body = self.gen_block(node.body, sc)

            def gwith(fr: Frame) -> Any:
                mgr = ctx(fr)
                t = type(mgr)
                v = t.__enter__(mgr)
                if store is not None:
                    store(fr, v)
                try:
                    r = yield from body(fr)
                except UNCATCHABLE:
                    if not is_user_owned(mgr):
                        t.__exit__(mgr, None, None, None)
                    raise
                except BaseException as e:
                    if not t.__exit__(mgr, type(e), e, None):
                        raise
                    return None
                t.__exit__(mgr, None, None, None)
                return r

            return gwith
        raise self.unsupported(node, f"yield inside {type(node).__name__}")

    def _gtry(self, node: ast.Try, sc: Scope) -> Fn:
        from .nodes_exc import _valid_except_type

        body = self.gen_block(node.body, sc)
        handlers = []
        for h in node.handlers:
            typ = self.expr(h.type, sc) if h.type is not None else None
            store = self.store_name(h, h.name, sc) if h.name else None
            handlers.append((typ, store, self.gen_block(h.body, sc)))
        orelse = self.gen_block(node.orelse, sc)
        final = self.gen_block(node.finalbody, sc) if node.finalbody else None

        def gtry(fr: Frame) -> Any:
            try:
                try:
                    r = yield from body(fr)
                except UNCATCHABLE:
                    raise
                except BaseException as e:
                    for typ, store, hbody in handlers:
                        if typ is not None:
                            t = typ(fr)
                            if not _valid_except_type(t):
                                raise TypeError(
                                    "catching classes that do not inherit from BaseException is not allowed"  # noqa: E501
                                ) from None
                            if not isinstance(e, t):
                                continue
                        if store is not None:
                            store(fr, e)
                        r = yield from hbody(fr)
                        break
                    else:
                        raise
                else:
                    r = yield from orelse(fr)
            except UNCATCHABLE:
                raise
            except BaseException:
                if final is not None:
                    fr_ = yield from final(fr)
                    if fr_ is not None:
                        return fr_
                raise
            if final is not None:
                fr_ = yield from final(fr)
                if fr_ is not None:
                    return fr_
            return r

        return gtry
