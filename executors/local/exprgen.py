"""Fused expressions: one generated Python function per expression tree instead of one closure
per node.

A tree of closures pays a Python call per node (``n < 2`` is three: compare, load, constant).
For the node kinds below, :func:`fuse` writes the *same* steps the per-node closures of
``nodes_expr.py``/``nodes_call.py``/``compiler.py`` perform (the same guards, the same fast
paths, the same evaluation order) into the body of one function, and calls the ordinary
compiled closure for any other node. The generated source is fixed host text: user names,
constants and sub-closures enter it only as generated identifiers (``k0``, ``c1``, ``F2``)
bound in the function's namespace, never as text -- except attribute names that are plain ASCII
identifiers (checked by ``attr_text``), written as ``o.name`` so that CPython specialises the
read; the attribute rules were applied to them at compile time as for any attribute.
"""

from __future__ import annotations

import ast
import types
from typing import TYPE_CHECKING, Any

from .exprgen_calls import CALL_NAMES, CallGen, attr_text, is_fusable_call
from .frame import MISSING
from .nodes_call import _call_slow
from .nodes_expr import _UNARY
from .policy import WATCHED_PLAIN
from .rules import PLAIN_TYPES, USER_CODE_IDS, USER_MARK, USER_MARK_NAME, is_dunder

if TYPE_CHECKING:
    from .compiler import Compiler, Fn
    from .scope import Scope

__all__ = ["fuse"]

_MAX_DEPTH = 12  # deeper subtrees start a fused function of their own (indentation stays small)
_MAX_NODES = 60  # per expression
_MAX_INDENT = 60  # CPython's tokenizer allows 100 levels

_CMP_TEXT = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
_PLAIN_BINOPS = {ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&"}
_POST_BINOPS = {ast.Sub: "-", ast.Div: "/", ast.FloorDiv: "//"}
_BIG = 1 << 50_000
# Generated source -> code object: the text depends only on the tree's shape, so agents that
# send similar code every step compile each shape once.
_CODES: dict[str, types.CodeType] = {}
_MAX_CACHED = 4096


def _unbound_local(name: str) -> UnboundLocalError:
    return UnboundLocalError(
        f"cannot access local variable {name!r} where it is not associated with a value"
    )


def _is_fusable(node: ast.AST, sc: Scope) -> bool:
    t = type(node)
    if t is ast.Name:
        return isinstance(node.ctx, ast.Load)  # type: ignore[attr-defined]
    if t is ast.Call:
        assert isinstance(node, ast.Call)
        return is_fusable_call(node)
    if t is ast.List or t is ast.Tuple:
        return isinstance(node.ctx, ast.Load) and not any(  # type: ignore[attr-defined]
            isinstance(e, ast.Starred)
            for e in node.elts  # type: ignore[attr-defined]
        )
    if t is ast.Attribute:
        return isinstance(node.ctx, ast.Load)  # type: ignore[attr-defined]
    if t is ast.Subscript:
        return isinstance(node.ctx, ast.Load)  # type: ignore[attr-defined]
    if t is ast.BoolOp:
        return len(node.values) <= 8  # type: ignore[attr-defined]
    if t is ast.Compare:
        return len(node.ops) <= 8  # type: ignore[attr-defined]
    return t in _SIMPLE


_SIMPLE = frozenset(
    {ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Slice}
)


def _count(node: ast.AST, sc: Scope, depth: int) -> int:
    if depth > _MAX_DEPTH or not _is_fusable(node, sc):
        return 0
    n = 1
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr):
            n += _count(child, sc, depth + 1)
    return n


def fuse(comp: Compiler, node: ast.expr, sc: Scope) -> Fn | None:
    """One generated function for ``node``'s tree, or None when fusing saves nothing."""
    if type(node) is ast.Constant or _count(node, sc, 0) < 2:
        return None
    gen = _Gen(comp, sc)
    result = gen.value(node, 0)
    return gen.build(result)


class _Gen(CallGen):
    def __init__(self, comp: Compiler, sc: Scope) -> None:
        self.comp = comp
        self.sc = sc
        self.lines: list[str] = []
        self.indent = 1
        self.ns: dict[str, Any] = {}
        self.temps = 0
        self.nodes = 0
        self.uses_l = False
        # fngen: the function's locals as Python locals (name -> variable), when nothing but
        # this generated code can see its namespace
        self.fast: dict[str, str] | None = None
        self.rebound: frozenset[str] = frozenset()  # (fast) names the body assigns

    # -- emission --------------------------------------------------------------------------
    def param(self, obj: Any, prefix: str) -> str:
        name = f"{prefix}{len(self.ns)}"
        self.ns[name] = obj
        return name

    def local_var(self, name: str) -> str:
        assert self.fast is not None
        var = self.fast.get(name)
        if var is None:
            var = self.fast[name] = f"v{len(self.fast)}"
        return var

    def tmp(self) -> str:
        self.temps += 1
        return f"t{self.temps}"

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def build(self, result: str) -> Fn:
        return self.build_lines([*self.lines, f"    return {result}"])

    def namespace(self) -> dict[str, Any]:
        """The globals of the generated function: its parameters and the fixed helpers."""
        ns = dict(self.ns)
        ns.update(CALL_NAMES)
        ns.update(
            type=type, int=int, float=float, slice=slice, KeyError=KeyError, M=MISSING,
            UnboundLocalError=UnboundLocalError,
            FT=types.FunctionType, codes=USER_CODE_IDS, id=id, PLAIN=PLAIN_TYPES,
            WATCHED=WATCHED_PLAIN, BIG=_BIG, NBIG=-_BIG, unbound_local=_unbound_local,
            call_slow=_call_slow,
            getattr=getattr, isinstance=isinstance, MARKNAME=USER_MARK_NAME, MARK=USER_MARK,
        )  # fmt: skip
        return ns

    def build_lines(self, lines: list[str]) -> Fn:
        head = ["def node(f):"]
        if self.uses_l:
            head.append("    l = f.l")
        source = "\n".join([*head, *lines, ""])
        ns = self.namespace()
        code = _CODES.get(source)
        if code is None:
            module = compile(source, "<fused>", "exec")  # fixed templates; see the module doc
            code = next(c for c in module.co_consts if isinstance(c, types.CodeType))
            if len(_CODES) >= _MAX_CACHED:
                _CODES.clear()
            _CODES[source] = code
        fn: Fn = types.FunctionType(code, ns, "node")
        return fn

    # -- nodes -----------------------------------------------------------------------------
    def value(self, node: ast.expr, depth: int) -> str:
        """Emit the evaluation of ``node``; return an atom (temporary or parameter) naming it."""
        if (
            depth > _MAX_DEPTH
            or self.nodes >= _MAX_NODES
            or self.indent > _MAX_INDENT
            or not _is_fusable(node, self.sc)
        ):
            return self.child(node)
        self.nodes += 1
        method = getattr(self, "v_" + type(node).__name__)
        atom: str = method(node, depth + 1)
        return atom

    def child(self, node: ast.expr) -> str:
        fn = self.comp.expr(node, self.sc)
        t = self.tmp()
        self.emit(f"{t} = {self.param(fn, 'F')}(f)")
        return t

    def v_Constant(self, node: ast.Constant, depth: int) -> str:
        return self.param(node.value, "c")

    def v_Name(self, node: ast.Name, depth: int) -> str:
        comp, sc, name = self.comp, self.sc, node.id
        kind = sc.resolve(name)[0] if name not in comp.protected else "protected"
        if kind not in ("local", "global"):
            return self.child(node)
        comp.check_name(node, name, sc, store=False)
        k = self.param(name, "k")
        t = self.tmp()
        if kind == "local" and self.fast is not None:
            var = self.local_var(name)
            if var[0] == "a" and name not in self.rebound:
                return var  # a parameter never assigned in the body: always bound
            self.emit("try:")
            self.emit(f"    {t} = {self.local_var(name)}")
            self.emit("except UnboundLocalError:")
            self.emit(f"    raise unbound_local({k}) from None")
            return t
        if kind == "local":
            self.uses_l = True
            self.emit("try:")
            self.emit(f"    {t} = l[{k}]")
            self.emit("except KeyError:")
            self.emit(f"    raise unbound_local({k}) from None")
            return t
        # load_global: the globals, then the builtins (both plain dicts), then name_missing
        g = self.param(comp.g, "G")
        builtins = self.param(comp.builtins, "B")
        missing = self.param(comp.name_missing, "N")
        root = sc
        while root.parent is not None:
            root = root.parent
        if name in root.bound or name in comp.g:
            # a global of the program (or of an earlier run): the read that is fast on a hit
            self.emit("try:")
            self.emit(f"    {t} = {g}[{k}]")
            self.emit("except KeyError:")
            self.emit(f"    {t} = {builtins}.get({k}, M)")
            self.emit(f"if {t} is M:")  # raised outside the handler: no chained KeyError
            self.emit(f"    {t} = {missing}({k})")
            return t
        self.emit(f"if {k} in {g}:")
        self.emit(f"    {t} = {g}[{k}]")
        self.emit(f"elif {k} in {builtins}:")
        self.emit(f"    {t} = {builtins}[{k}]")
        self.emit("else:")
        self.emit(f"    {t} = {missing}({k})")
        return t

    def v_BinOp(self, node: ast.BinOp, depth: int) -> str:
        g = self.comp.guards
        op = type(node.op)
        right = node.right
        const = right.value if isinstance(right, ast.Constant) else MISSING
        a = self.value(node.left, depth)
        t = self.tmp()
        if op in _PLAIN_BINOPS:
            c = self.value(right, depth)
            self.emit(f"{t} = {a} {_PLAIN_BINOPS[op]} {c}")
        elif op in _POST_BINOPS:
            c = self.value(right, depth)
            post = self.param(g.post, "P")
            self.emit(f"{t} = {a} {_POST_BINOPS[op]} {c}")
            self.emit(f"if not (type({t}) is float or (type({t}) is int and NBIG < {t} < BIG)):")
            self.emit(f"    {t} = {post}({t})")
        elif op is ast.Add:
            c = self.value(right, depth)
            if type(const) in (int, float):
                self.emit(f"{t} = {a} + {c}")  # x + 1, x + 0.5: nothing can grow
            else:
                add = self.param(g.add, "A")
                self.emit(
                    f"if (type({a}) is int or type({a}) is float) and type({c}) in (int, float):"
                )
                self.emit(f"    {t} = {a} + {c}")
                # short text: Guards.add's size check passes (max_collection_size and memory)
                short = self.param(min(g.max_size, 100_000), "c")
                self.emit(
                    f"elif type({a}) is str and type({c}) is str and "
                    f"len({a}) + len({c}) <= {short}:"
                )
                self.emit(f"    {t} = {a} + {c}")
                self.emit("else:")
                self.emit(f"    {t} = {add}({a}, {c})")
        elif op is ast.Mod:
            c = self.value(right, depth)
            mod = self.param(g.mod, "D")
            self.emit(f"if type({a}) is int:")
            self.emit(f"    {t} = {a} % {c}")
            self.emit("else:")
            self.emit(f"    {t} = {mod}({a}, {c})")
        elif op is ast.Mult:
            c = self.value(right, depth)
            mul = self.param(g.mul, "X")
            if type(const) is float:
                self.emit(f"{t} = {a} * {c}")
            elif const is not MISSING:
                small = type(const) is int and abs(const) < 2**31
                limit = g.max_bits - 32
                if small and limit >= 1:
                    # |a| < 2**(limit-1) is exactly a.bit_length() < limit, without the calls
                    h, nh = self.param(1 << (limit - 1), "c"), self.param(-(1 << (limit - 1)), "c")
                    self.emit(f"if type({a}) is int and {nh} < {a} < {h}:")
                    self.emit(f"    {t} = {a} * {c}")
                    self.emit("else:")
                    self.emit(f"    {t} = {mul}({a}, {c})")
                elif small:
                    self.emit(f"if type({a}) is int and {a}.bit_length() < {limit}:")
                    self.emit(f"    {t} = {a} * {c}")
                    self.emit("else:")
                    self.emit(f"    {t} = {mul}({a}, {c})")
                else:
                    self.emit(f"{t} = {mul}({a}, {c})")
            else:
                self.emit(f"if type({a}) is float and (type({c}) is float or type({c}) is int):")
                self.emit(f"    {t} = {a} * {c}")
                # both below 2**((max_bits-1)//2): their bit lengths add up below max_bits (a
                # subset of the closures' test; the rest takes the guarded product)
                bound = 1 << (max(g.max_bits, 1) - 1) // 2
                h, nh = self.param(bound, "c"), self.param(-bound, "c")
                self.emit(
                    f"elif type({a}) is int and type({c}) is int and "
                    f"{nh} < {a} < {h} and {nh} < {c} < {h}:"
                )
                self.emit(f"    {t} = {a} * {c}")
                self.emit("else:")
                self.emit(f"    {t} = {mul}({a}, {c})")
        else:
            c = self.value(right, depth)
            fn = self.param(self.comp.binop(node.op, node.right), "O")
            self.emit(f"{t} = {fn}({a}, {c})")
        return t

    def v_UnaryOp(self, node: ast.UnaryOp, depth: int) -> str:
        a = self.value(node.operand, depth)
        t = self.tmp()
        if isinstance(node.op, ast.Not):
            self.emit(f"{t} = not {a}")
        elif isinstance(node.op, ast.USub):
            self.emit(f"{t} = -{a}")
        else:
            self.emit(f"{t} = {self.param(_UNARY[type(node.op)], 'U')}({a})")
        return t

    def v_BoolOp(self, node: ast.BoolOp, depth: int) -> str:
        t = self.tmp()
        test = "if {}:" if isinstance(node.op, ast.And) else "if not {}:"
        self.emit(f"{t} = {self.value(node.values[0], depth)}")
        opened = 0
        for v in node.values[1:]:
            self.emit(test.format(t))
            self.indent += 1
            opened += 1
            self.emit(f"{t} = {self.value(v, depth)}")
        self.indent -= opened
        return t

    def v_IfExp(self, node: ast.IfExp, depth: int) -> str:
        t = self.tmp()
        test = self.value(node.test, depth)
        self.emit(f"if {test}:")
        self.indent += 1
        self.emit(f"{t} = {self.value(node.body, depth)}")
        self.indent -= 1
        self.emit("else:")
        self.indent += 1
        self.emit(f"{t} = {self.value(node.orelse, depth)}")
        self.indent -= 1
        return t

    def _cmp(self, op: ast.cmpop, a: str, b: str, chain: bool, const_right: bool) -> str:
        text = _CMP_TEXT.get(type(op))
        if text is not None:
            return f"{a} {text} {b}"
        g = self.comp.guards
        if not chain and const_right:
            return f"{a} {'in' if isinstance(op, ast.In) else 'not in'} {b}"
        fn = g.contains if isinstance(op, ast.In) else g.not_contains
        return f"{self.param(fn, 'I')}({a}, {b})"

    def v_Compare(self, node: ast.Compare, depth: int) -> str:
        t = self.tmp()
        a = self.value(node.left, depth)
        chain = len(node.ops) > 1
        opened = 0
        for i, (op, right) in enumerate(zip(node.ops, node.comparators, strict=True)):
            if i:
                self.emit(f"if {t}:")
                self.indent += 1
                opened += 1
            b = self.value(right, depth)
            self.emit(f"{t} = {self._cmp(op, a, b, chain, isinstance(right, ast.Constant))}")
            a = b
        self.indent -= opened
        return t

    def v_List(self, node: ast.List, depth: int) -> str:
        items = [self.value(e, depth) for e in node.elts]
        t = self.tmp()
        self.emit(f"{t} = [{', '.join(items)}]")
        return t

    def v_Tuple(self, node: ast.Tuple, depth: int) -> str:
        if all(isinstance(e, ast.Constant) for e in node.elts):
            return self.param(tuple(e.value for e in node.elts), "c")  # type: ignore[attr-defined]
        items = [self.value(e, depth) for e in node.elts]
        t = self.tmp()
        self.emit(f"{t} = ({', '.join(items)}{',' if len(items) == 1 else ''})")
        return t

    def v_Slice(self, node: ast.Slice, depth: int) -> str:
        parts = [
            self.value(p, depth) if p is not None else "None"
            for p in (node.lower, node.upper, node.step)
        ]
        t = self.tmp()
        self.emit(f"{t} = slice({', '.join(parts)})")
        return t

    def v_Subscript(self, node: ast.Subscript, depth: int) -> str:
        o = self.value(node.value, depth)
        k = self.value(node.slice, depth)
        t = self.tmp()
        guard = self.param(self.comp.p.guard_slow, "S")
        self.emit(f"{t} = {o}[{k}]")
        self.emit(f"if type({t}) not in PLAIN:")
        # an instance of a sandbox class passes guard_slow's first test: kept as it is
        self.emit(
            f"    if getattr(type({t}), MARKNAME, None) is not MARK or isinstance({t}, type):"
        )
        self.emit(f"        {t} = {guard}({t})")
        return t

    def v_Attribute(self, node: ast.Attribute, depth: int) -> str:
        name = node.attr
        get = self.comp.attr_getter(node, name)  # the compile-time checks of the attribute
        o = self.value(node.value, depth)
        t = self.tmp()
        if getattr(get, "__name__", "") != "get_plain" or is_dunder(name):
            self.emit(f"{t} = {self.param(get, 'Y')}({o})")
            return t
        p = self.comp.p
        k = self.param(name, "k")
        hook, guard = self.param(p.plain_hook, "H"), self.param(p.guard_slow, "S")
        self.emit(f"{t} = {attr_text(o, name, k)}")
        self.emit(f"if type({t}) in PLAIN:")
        self.emit(f"    if type({t}) in WATCHED:")
        self.emit(f"        {t} = {hook}({o}, {t}, type({t}))")
        self.emit("else:")
        self.emit(f"    {t} = {guard}({t})")
        return t
