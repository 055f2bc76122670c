"""Statements: assignment, control flow, exceptions, with, imports, delete, assert."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .compiler_support import CompilerBase, annotate
from .errors import InterpreterError
from .frame import BREAK, CONTINUE, RETURN, Frame
from .host_effects import CallOnly
from .rules import is_dunder

if TYPE_CHECKING:
    from .compiler import Fn
    from .scope import Scope

__all__ = ["StmtMixin"]


class StmtMixin(CompilerBase):
    def s_Expr(self, node: ast.Expr, sc: Scope) -> Fn:
        value = self.expr(node.value, sc)

        def expr_stmt(f: Frame) -> None:
            value(f)

        return expr_stmt

    def s_Pass(self, node: ast.Pass, sc: Scope) -> Fn:
        def pass_(f: Frame) -> None:
            return None

        return pass_

    def s_Break(self, node: ast.Break, sc: Scope) -> Fn:
        def break_(f: Frame) -> Any:
            return BREAK

        return break_

    def s_Continue(self, node: ast.Continue, sc: Scope) -> Fn:
        def continue_(f: Frame) -> Any:
            return CONTINUE

        return continue_

    def s_Return(self, node: ast.Return, sc: Scope) -> Fn:
        if sc.kind not in ("function",):
            raise SyntaxError("'return' outside function")
        if node.value is None:

            def return_none(f: Frame) -> Any:
                f.ret = None
                return RETURN

            return return_none
        value = self.expr(node.value, sc)

        def return_(f: Frame) -> Any:
            f.ret = value(f)
            return RETURN

        return return_

    def s_Global(self, node: ast.Global, sc: Scope) -> Fn:
        for name in node.names:
            self.check_name(node, name, sc, store=True)
        return self.s_Pass(node, sc)  # type: ignore[arg-type]

    s_Nonlocal = s_Global

    def s_Assign(self, node: ast.Assign, sc: Scope) -> Fn:
        value = self.expr(node.value, sc)
        stores = [self.store(t, sc) for t in node.targets]
        if len(stores) == 1:
            s0 = stores[0]

            def assign(f: Frame) -> None:
                s0(f, value(f))

            return assign

        def assign_many(f: Frame) -> None:
            v = value(f)
            for s in stores:
                s(f, v)

        return assign_many

    def s_AnnAssign(self, node: ast.AnnAssign, sc: Scope) -> Fn:
        target = node.target
        annotation = self.expr(node.annotation, sc) if sc.kind in ("class", "module") else None
        store = self.store(target, sc)
        value = self.expr(node.value, sc) if node.value is not None else None
        record = sc.kind == "class" and isinstance(target, ast.Name)
        name = target.id if isinstance(target, ast.Name) else ""
        if isinstance(target, ast.Name):
            self.check_name(target, name, sc, store=True)

        def ann_assign(f: Frame) -> None:
            if value is not None:
                store(f, value(f))
            if annotation is not None:
                ann = annotation(f)
                if record:
                    f.l.setdefault("__annotations__", {})[name] = ann

        return ann_assign

    def s_AugAssign(self, node: ast.AugAssign, sc: Scope) -> Fn:
        op = self.inplace_op(node.op)
        target = node.target
        value = self.expr(node.value, sc)
        if isinstance(target, ast.Name):
            load = self.load_name(target, target.id, sc)
            store = self.store_name(target, target.id, sc)
            kind = sc.resolve(target.id)[0]
            if isinstance(node.op, (ast.Add, ast.Sub)) and kind in ("global", "local"):
                # total += i: numbers take the direct route, anything else the guarded op.
                name = target.id
                g = self.g
                is_global = kind == "global"
                is_add = isinstance(node.op, ast.Add)
                num = (int, float)

                def aug_number(f: Frame) -> None:
                    ns = g if is_global else f.l
                    a = ns[name] if name in ns else load(f)
                    v = value(f)
                    if type(a) in num and type(v) in num:
                        ns[name] = a + v if is_add else a - v
                    else:
                        ns[name] = op(a, v)

                return aug_number

            def aug_name(f: Frame) -> None:
                store(f, op(load(f), value(f)))

            return aug_name
        if isinstance(target, ast.Attribute):
            if is_dunder(target.attr):
                raise self.security(
                    target, f"assignment of dunder attribute {target.attr!r} is not allowed"
                )
            obj = self.expr(target.value, sc)
            attr = target.attr
            get, set_ = self.p.get_attr, self.p.set_attr

            def aug_attr(f: Frame) -> None:
                o = obj(f)
                set_(o, attr, op(get(o, attr), value(f)))

            return aug_attr
        if isinstance(target, ast.Subscript):
            obj = self.expr(target.value, sc)
            key = self.expr(target.slice, sc)

            def aug_item(f: Frame) -> None:
                o = obj(f)
                k = key(f)
                o[k] = op(o[k], value(f))

            return aug_item
        raise self.unsupported(node, "augmented assignment to this target")

    def s_If(self, node: ast.If, sc: Scope) -> Fn:
        test = self.expr(node.test, sc)
        body = self.block(node.body, sc)
        if not node.orelse:

            def if_(f: Frame) -> Any:
                if test(f):
                    return body(f)
                return None

            return if_
        orelse = self.block(node.orelse, sc)

        def if_else(f: Frame) -> Any:
            if test(f):
                return body(f)
            return orelse(f)

        return if_else

    def s_For(self, node: ast.For, sc: Scope) -> Fn:
        iterable = self.expr(node.iter, sc)
        store = self.store(node.target, sc)
        orelse = self.block(node.orelse, sc) if node.orelse else None
        b = self.b
        target = node.target
        if isinstance(target, ast.Name):
            kind = sc.resolve(target.id)[0]
            if kind in ("local", "global"):
                # The common case, inlined: a plain name target and the body's statements run
                # straight from the loop (one closure call less per statement and iteration).
                name = target.id
                g = self.g
                stmts = tuple(self.stmt(s, sc) for s in node.body)
                n = len(stmts)
                is_global = kind == "global"

                def for_name(f: Frame) -> Any:
                    ns = g if is_global else f.l
                    s: Any = None  # the running statement (None while iterating)
                    try:
                        for x in iterable(f):
                            b.iters -= 1
                            if b.iters < 0:
                                b.iterations_exceeded()
                            ns[name] = x
                            b.left -= n
                            if b.left < 0:
                                b.refill()
                            for s in stmts:
                                r = s(f)
                                if r is not None:
                                    break
                            else:
                                s = None
                                continue
                            s = None
                            if r is BREAK:
                                return None
                            if r is CONTINUE:
                                continue
                            return r
                    except BaseException as e:
                        if s is not None:
                            annotate(e, s.sb_pos)
                        raise
                    if orelse is not None:
                        return orelse(f)
                    return None

                return for_name
        body = self.block(node.body, sc)

        def for_(f: Frame) -> Any:
            for x in iterable(f):
                b.iters -= 1
                if b.iters < 0:
                    b.iterations_exceeded()
                store(f, x)
                r = body(f)
                if r is not None:
                    if r is BREAK:
                        return None
                    if r is CONTINUE:
                        continue
                    return r
            if orelse is not None:
                return orelse(f)
            return None

        return for_

    def s_While(self, node: ast.While, sc: Scope) -> Fn:
        test = self.expr(node.test, sc)
        body = self.block(node.body, sc)
        orelse = self.block(node.orelse, sc) if node.orelse else None
        b = self.b

        def while_(f: Frame) -> Any:
            while test(f):
                b.iters -= 1
                if b.iters < 0:
                    b.iterations_exceeded()
                r = body(f)
                if r is not None:
                    if r is BREAK:
                        return None
                    if r is CONTINUE:
                        continue
                    return r
            if orelse is not None:
                return orelse(f)
            return None

        return while_

    def s_Assert(self, node: ast.Assert, sc: Scope) -> Fn:
        test = self.expr(node.test, sc)
        msg = self.expr(node.msg, sc) if node.msg is not None else None

        def assert_(f: Frame) -> None:
            if not test(f):
                if msg is None:
                    raise AssertionError
                raise AssertionError(msg(f))

        return assert_

    def s_Delete(self, node: ast.Delete, sc: Scope) -> Fn:
        deleters = []
        for t in node.targets:
            if isinstance(t, ast.Name):
                deleters.append(self.del_name(t, t.id, sc))
            elif isinstance(t, ast.Attribute):
                if is_dunder(t.attr):
                    raise self.security(
                        t, f"deletion of dunder attribute {t.attr!r} is not allowed"
                    )
                obj = self.expr(t.value, sc)
                deleters.append(_del_attr(self.p.del_attr, obj, t.attr))
            elif isinstance(t, ast.Subscript):
                deleters.append(_del_item(self.expr(t.value, sc), self.expr(t.slice, sc)))
            elif isinstance(t, (ast.Tuple, ast.List)):
                inner = ast.Delete(targets=t.elts)
                ast.copy_location(inner, node)
                deleters.append(self.s_Delete(inner, sc))
            else:
                raise self.unsupported(t, "deleting this target")

        def delete(f: Frame) -> None:
            for d in deleters:
                d(f)

        return delete

    def s_Import(self, node: ast.Import, sc: Scope) -> Fn:
        steps = []
        for alias in node.names:
            if alias.asname:
                steps.append((alias.name, self.store_name(node, alias.asname, sc), True))
            else:
                top = alias.name.split(".")[0]
                steps.append((alias.name, self.store_name(node, top, sc), False))
        import_module = self.p.import_module

        def import_(f: Frame) -> None:
            for name, store, full in steps:
                proxy = import_module(name)
                if not full and "." in name:
                    proxy = import_module(name.split(".")[0])
                store(f, proxy)

        return import_

    def s_ImportFrom(self, node: ast.ImportFrom, sc: Scope) -> Fn:
        if node.level:
            raise self.security(node, "relative imports are not allowed")
        module = node.module or ""
        import_module = self.p.import_module
        if any(a.name == "*" for a in node.names):
            if sc.kind != "module":
                raise SyntaxError("import * only allowed at module level")
            g = self.g
            protected = self.protected

            def import_star(f: Frame) -> None:
                proxy = import_module(module)
                for n in dir(proxy):
                    if n not in protected:
                        try:
                            g[n] = getattr(proxy, n)
                        except CallOnly:
                            continue  # os.remove & co.: callable as os.remove(...) only

            return import_star
        steps = [(a.name, self.store_name(node, a.asname or a.name, sc)) for a in node.names]
        for a in node.names:
            if is_dunder(a.name):
                raise self.security(node, f"import of dunder name {a.name!r} is not allowed")

        def import_from(f: Frame) -> None:
            proxy = import_module(module)
            for name, store in steps:
                try:
                    v = getattr(proxy, name)
                except InterpreterError:
                    raise  # a policy refusal (also an AttributeError for host code)
                except AttributeError:
                    raise ImportError(f"cannot import name {name!r} from {module!r}") from None
                store(f, v)

        return import_from

    def s_AsyncFunctionDef(self, node: ast.AST, sc: Scope) -> Fn:
        raise self.unsupported(node, "async def")

    def s_AsyncFor(self, node: ast.AST, sc: Scope) -> Fn:
        raise self.unsupported(node, "async for")

    def s_AsyncWith(self, node: ast.AST, sc: Scope) -> Fn:
        raise self.unsupported(node, "async with")

    def inplace_op(self, op: ast.operator) -> Any:
        g = self.guards

        def iadd(a: Any, b: Any) -> Any:
            if type(a) is int:
                return a + b
            return (
                _iadd(a, b)
                if not isinstance(a, (list, str, bytes, tuple, bytearray))
                else _sized(g, _iadd, a, b, "concatenation")
            )

        def imul(a: Any, b: Any) -> Any:
            if isinstance(a, (list, bytearray)) and isinstance(b, int):
                g.check_size("repetition", len(a) * b)
                return _imul(a, b)
            return inplace(a, b, g.mul, _imul)

        def inplace(a: Any, b: Any, binary: Any, in_place: Any) -> Any:
            """CPython's ``a op= b``: the in-place method when the type has one, else the
            binary operator; immutable builtins (no in-place methods) take the guarded op."""
            if isinstance(a, _IMMUTABLE):
                return binary(a, b)
            if in_place is _imul and isinstance(b, int) and hasattr(a, "__len__"):
                g.check_size(f"{type(a).__name__} repetition", len(a) * abs(b))  # deque *= n
            return g.post(in_place(a, b))

        def make(binary: Any, in_place: Any) -> Any:
            def op(a: Any, b: Any) -> Any:
                return inplace(a, b, binary, in_place)

            return op

        table = {
            ast.Add: iadd, ast.Mult: imul,
            ast.Pow: make(g.pow, operator.ipow),
            ast.LShift: make(g.lshift, operator.ilshift),
            ast.Mod: make(g.mod, operator.imod),
            ast.Sub: lambda a, b: g.post(_isub(a, b)),
            ast.Div: make(g.truediv, operator.itruediv),
            ast.FloorDiv: make(g.floordiv, operator.ifloordiv),
            ast.RShift: operator.irshift, ast.BitOr: operator.ior, ast.BitXor: operator.ixor,
            ast.BitAnd: operator.iand, ast.MatMult: operator.imatmul,
        }  # fmt: skip
        return table[type(op)]


# operator's in-place functions, typed (typeshed leaves them untyped)
_iadd: Callable[[Any, Any], Any] = operator.iadd
_imul: Callable[[Any, Any], Any] = operator.imul
_isub: Callable[[Any, Any], Any] = operator.isub
_IMMUTABLE = (int, float, complex, str, bytes, tuple, frozenset, Fraction, Decimal)


def _sized(g: Any, fn: Any, a: Any, b: Any, what: str) -> Any:
    if hasattr(b, "__len__"):
        g.check_size(what, len(a) + len(b))
        return fn(a, b)
    if isinstance(a, list):
        a.extend(g.budget.iterate(b))
        g.check_size(what, len(a))
        return a
    return fn(a, b)


def _del_attr(del_attr: Any, obj: Any, attr: str) -> Any:
    def delete(f: Frame) -> None:
        del_attr(obj(f), attr)

    return delete


def _del_item(obj: Any, key: Any) -> Any:
    def delete(f: Frame) -> None:
        o = obj(f)
        del o[key(f)]

    return delete


_ = RETURN
