"""Expressions: operators, comparisons, attribute/subscript access, calls, displays, f-strings."""

from __future__ import annotations

import ast
import operator
import types
from typing import TYPE_CHECKING, Any, cast

from .compiler_support import CompilerBase
from .fastpaths import binop_closure, compare_closure
from .frame import Frame
from .policy import WATCHED_PLAIN
from .rules import PLAIN_TYPES, USER_CODES, is_dunder

if TYPE_CHECKING:
    from .compiler import Fn
    from .scope import Scope

__all__ = ["USER_CODES", "ExprMixin"]

# Code objects of the closures that implement user functions (set by nodes_def).
_FunctionType = types.FunctionType
_NO_ITER_ARGS = frozenset({int, float, str, bool, type(None), bytes, tuple, complex})
_MethodType = types.MethodType
_METHOD_FAST_TYPES = frozenset(
    {list, dict, str, set, int, float, tuple, bytes, frozenset, bytearray, complex, bool}
)

_CMP = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip
_UNARY: dict[type, Any] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}


class ExprMixin(CompilerBase):
    def e_Constant(self, node: ast.Constant, sc: Scope) -> Fn:
        value = node.value

        def const(f: Frame) -> Any:
            return value

        return const

    def e_Name(self, node: ast.Name, sc: Scope) -> Fn:
        load: Fn = self.load_name(node, node.id, sc)
        return load

    def attr_getter(self, node: ast.AST, name: str) -> Any:
        """A function obj -> obj.name applying the attribute policy."""
        p = self.p
        if is_dunder(name) and name not in ("__name__", "__qualname__", "__doc__"):
            raise self.security(node, f"access to dunder attribute {name!r} is not allowed")
        if (
            name[0] == "_"
            or name in ("format", "format_map")
            or "_" in name[:5]
            or name == "cell_contents"
        ):
            get_attr = p.get_attr

            def get_checked(o: Any) -> Any:
                return get_attr(o, name)

            return get_checked
        guard_slow = p.guard_slow
        hook = p.plain_hook
        watched = WATCHED_PLAIN

        def get_plain(o: Any) -> Any:
            v = getattr(o, name)
            tv = type(v)
            if tv in PLAIN_TYPES:
                return hook(o, v, tv) if tv in watched else v
            return guard_slow(v)

        return get_plain

    def e_Attribute(self, node: ast.Attribute, sc: Scope) -> Fn:
        obj = self.expr(node.value, sc)
        get = self.attr_getter(node, node.attr)

        def load_attr(f: Frame) -> Any:
            return get(obj(f))

        return load_attr

    def e_Subscript(self, node: ast.Subscript, sc: Scope) -> Fn:
        obj = self.expr(node.value, sc)
        key = self.expr(node.slice, sc)
        guard_slow = self.p.guard_slow

        def subscript(f: Frame) -> Any:
            v = obj(f)[key(f)]
            if type(v) in PLAIN_TYPES:
                return v
            return guard_slow(v)

        return subscript

    def e_Slice(self, node: ast.Slice, sc: Scope) -> Fn:
        lo = self.expr(node.lower, sc) if node.lower else None
        hi = self.expr(node.upper, sc) if node.upper else None
        st = self.expr(node.step, sc) if node.step else None

        def slice_(f: Frame) -> Any:
            return slice(
                lo(f) if lo is not None else None,
                hi(f) if hi is not None else None,
                st(f) if st is not None else None,
            )

        return slice_

    def binop(self, op: ast.operator, right: ast.expr | None = None) -> Any:
        g = self.guards
        numeric_const = (
            isinstance(right, ast.Constant)
            and type(right.value) in (int, float)
            and (type(right.value) is float or abs(cast(int, right.value)) < 2**31)
        )
        table = {
            ast.Add: operator.add if numeric_const else g.add,
            ast.Sub: g.sub, ast.Mult: g.mul, ast.Div: g.truediv,
            ast.FloorDiv: g.floordiv, ast.Mod: g.mod,
            ast.Pow: g.pow, ast.LShift: g.lshift, ast.RShift: operator.rshift,
            ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.BitAnd: operator.and_,
            ast.MatMult: operator.matmul,
        }  # fmt: skip
        return table[type(op)]

    def e_BinOp(self, node: ast.BinOp, sc: Scope) -> Fn:
        left = self.expr(node.left, sc)
        opname = type(node.op).__name__
        if isinstance(node.right, ast.Constant):
            fast = binop_closure(opname, left, None, node.right.value, post=self.guards.post)
            if fast is not None:
                return fast
        if opname in ("Mod", "Mult") and isinstance(node.right, ast.Constant):
            return self._binop_int_const(opname, left, node.right.value)
        right = self.expr(node.right, sc)
        fast = binop_closure(opname, left, right, post=self.guards.post)
        if fast is not None:
            return fast
        op = self.binop(node.op, node.right)
        if op is operator.add:

            def add(f: Frame) -> Any:
                return left(f) + right(f)

            return add
        if op is operator.sub:

            def sub(f: Frame) -> Any:
                return left(f) - right(f)

            return sub
        g = self.guards
        max_bits = g.max_bits
        _int, _float = int, float
        if op == g.add:

            def add_checked(f: Frame) -> Any:
                a = left(f)
                c = right(f)
                ta = type(a)
                if (ta is _int or ta is _float) and type(c) in (_int, _float):
                    return a + c
                return op(a, c)

            return add_checked
        if op == g.mod:

            def mod(f: Frame) -> Any:
                a = left(f)
                if type(a) is _int:
                    return a % right(f)
                return op(a, right(f))

            return mod
        if op == g.mul:

            def mul(f: Frame) -> Any:
                a = left(f)
                c = right(f)
                ta = type(a)
                tc = type(c)
                if ta is _float and (tc is _float or tc is _int):
                    return a * c
                if ta is _int and tc is _int and a.bit_length() + c.bit_length() < max_bits:
                    return a * c
                return op(a, c)

            return mul

        def binop(f: Frame) -> Any:
            return op(left(f), right(f))

        return binop

    def _binop_int_const(self, opname: str, left: Fn, c: Any) -> Fn:
        """``x % 3`` / ``x * 2``: integers directly, everything else through the guards."""
        g = self.guards
        guarded = g.mod if opname == "Mod" else g.mul
        _int = int
        if opname == "Mod":

            def mod_const(f: Frame) -> Any:
                a = left(f)
                if type(a) is _int:
                    return a % c
                return guarded(a, c)

            return mod_const
        small = type(c) is _int and abs(c) < 2**31
        limit = g.max_bits - 32

        def mul_const(f: Frame) -> Any:
            a = left(f)
            if small and type(a) is _int and a.bit_length() < limit:
                return a * c
            return guarded(a, c)

        return mul_const

    def e_UnaryOp(self, node: ast.UnaryOp, sc: Scope) -> Fn:
        operand = self.expr(node.operand, sc)
        if isinstance(node.op, ast.Not):

            def not_(f: Frame) -> Any:
                return not operand(f)

            return not_
        if isinstance(node.op, ast.USub):

            def neg(f: Frame) -> Any:
                return -operand(f)

            return neg
        op = _UNARY[type(node.op)]

        def unary(f: Frame) -> Any:
            return op(operand(f))

        return unary

    def e_BoolOp(self, node: ast.BoolOp, sc: Scope) -> Fn:
        values = [self.expr(v, sc) for v in node.values]
        if isinstance(node.op, ast.And):

            def and_(f: Frame) -> Any:
                v = None
                for fn in values:
                    v = fn(f)
                    if not v:
                        return v
                return v

            return and_

        def or_(f: Frame) -> Any:
            v = None
            for fn in values:
                v = fn(f)
                if v:
                    return v
            return v

        return or_

    def e_Compare(self, node: ast.Compare, sc: Scope) -> Fn:
        left = self.expr(node.left, sc)
        g = self.guards
        # ``in`` over an iterator is a native scan without budget: the guarded version.
        special = {ast.In: g.contains, ast.NotIn: g.not_contains}
        ops = [special.get(type(o)) or _CMP[type(o)] for o in node.ops]
        if len(ops) == 1:
            right_node = node.comparators[0]
            opname = type(node.ops[0]).__name__
            if opname in ("In", "NotIn") and not isinstance(right_node, ast.Constant):
                op1, right1 = ops[0], self.expr(right_node, sc)

                def contains(f: Frame) -> Any:
                    return op1(left(f), right1(f))

                return contains
            if isinstance(right_node, ast.Constant):
                return compare_closure(opname, left, None, right_node.value)
            return compare_closure(opname, left, self.expr(right_node, sc))
        rights = [self.expr(c, sc) for c in node.comparators]
        if len(ops) == 1:
            op, right = ops[0], rights[0]

            def compare(f: Frame) -> Any:
                return op(left(f), right(f))

            return compare
        pairs = list(zip(ops, rights, strict=False))

        def compare_chain(f: Frame) -> Any:
            a = left(f)
            result: Any = True
            for op, right in pairs:
                b = right(f)
                result = op(a, b)
                if not result:
                    return result
                a = b
            return result

        return compare_chain

    def e_IfExp(self, node: ast.IfExp, sc: Scope) -> Fn:
        test, body, orelse = (
            self.expr(node.test, sc),
            self.expr(node.body, sc),
            self.expr(node.orelse, sc),
        )

        def ifexp(f: Frame) -> Any:
            return body(f) if test(f) else orelse(f)

        return ifexp

    def e_NamedExpr(self, node: ast.NamedExpr, sc: Scope) -> Fn:
        value = self.expr(node.value, sc)
        target = node.target
        assert isinstance(target, ast.Name)
        store = self.store_name(target, target.id, self.walrus_scope(sc))
        if sc.kind == "comprehension":
            store = self.store_name(target, target.id, sc)

        def walrus(f: Frame) -> Any:
            v = value(f)
            store(f, v)
            return v

        return walrus

    def walrus_scope(self, sc: Scope) -> Scope:
        return sc

    def sequence(self, elts: list[ast.expr], sc: Scope) -> Fn:
        """Evaluate display elements (with ``*unpacking``) into a list."""
        parts = [
            (
                isinstance(e, ast.Starred),
                self.expr(e.value if isinstance(e, ast.Starred) else e, sc),
            )
            for e in elts
        ]
        if not any(s for s, _ in parts):
            fns = [fn for _, fn in parts]

            def items(f: Frame) -> list[Any]:
                return [fn(f) for fn in fns]

            return items
        iterate = self.b.iterate

        def items_star(f: Frame) -> list[Any]:
            out: list[Any] = []
            for star, fn in parts:
                if star:
                    v = fn(f)
                    out.extend(v if type(v) in (list, tuple, set, dict, str) else iterate(v))
                else:
                    out.append(fn(f))
            self.guards.check_size("display", len(out))
            return out

        return items_star

    def e_List(self, node: ast.List, sc: Scope) -> Fn:
        items = self.sequence(node.elts, sc)
        return items

    def e_Tuple(self, node: ast.Tuple, sc: Scope) -> Fn:
        if all(isinstance(e, ast.Constant) for e in node.elts):
            value = tuple(e.value for e in node.elts)  # type: ignore[attr-defined]
            return lambda f: value
        items = self.sequence(node.elts, sc)

        def tuple_(f: Frame) -> Any:
            return tuple(items(f))

        return tuple_

    def e_Set(self, node: ast.Set, sc: Scope) -> Fn:
        items = self.sequence(node.elts, sc)

        def set_(f: Frame) -> Any:
            return set(items(f))

        return set_

    def e_Dict(self, node: ast.Dict, sc: Scope) -> Fn:
        parts = [
            (self.expr(k, sc) if k is not None else None, self.expr(v, sc))
            for k, v in zip(node.keys, node.values, strict=False)
        ]

        def dict_(f: Frame) -> Any:
            out: dict[Any, Any] = {}
            for k, v in parts:
                if k is None:
                    out.update(v(f))
                else:
                    out[k(f)] = v(f)
            return out

        return dict_

    def e_Starred(self, node: ast.Starred, sc: Scope) -> Fn:
        raise SyntaxError("can't use starred expression here")

    def e_JoinedStr(self, node: ast.JoinedStr, sc: Scope) -> Fn:
        parts = [self.expr(v, sc) for v in node.values]

        def fstring(f: Frame) -> str:
            return "".join([p(f) for p in parts])

        return fstring

    def e_FormattedValue(self, node: ast.FormattedValue, sc: Scope) -> Fn:
        value = self.expr(node.value, sc)
        conv = {-1: None, 115: str, 114: repr, 97: ascii}[node.conversion]
        spec = self.expr(node.format_spec, sc) if node.format_spec is not None else None
        check_width = self.guards.check_width
        check_text = self.guards.check_text_size
        containers = (list, tuple, dict, set, frozenset)

        def formatted(f: Frame) -> str:
            v = value(f)
            if type(v) in containers:
                check_text("f-string", 0, v)
            if conv is not None:
                v = conv(v)
            if spec is None:
                return v if type(v) is str else format(v, "")
            s = spec(f)
            check_width(s)
            return format(v, s)

        return formatted

    def e_Await(self, node: ast.Await, sc: Scope) -> Fn:
        raise self.unsupported(node, "await")

    def e_Yield(self, node: ast.AST, sc: Scope) -> Fn:
        raise self.unsupported(
            node, "yield inside an expression (use 'yield x' or 'v = yield x' as a statement)"
        )

    e_YieldFrom = e_Yield
