"""Fused blocks: statements (and the loops and branches they nest) written into one generated
function, with the expressions fused by ``exprgen``.

The generated text performs the steps of the per-statement closures (``compiler.make_block``,
``nodes_stmt``): the same operation ticks per block, the same iteration ticks per loop turn, the
same stores and guarded operators, and the same error positions (``p`` names the innermost
running statement, as the nested blocks' ``annotate`` calls would). Any statement outside the
shapes below is called as its ordinary compiled closure, and its control signals are honoured.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from itertools import islice
from typing import TYPE_CHECKING

from .compiler_support import annotate, store_slice
from .exprgen import _Gen
from .exprgen_calls import attr_text
from .frame import BREAK, CONTINUE, RETURN
from .rules import USER_MARK, USER_MARK_NAME, is_dunder

if TYPE_CHECKING:
    from .compiler import Compiler, Fn
    from .scope import Scope

__all__ = ["fuse_block", "scan", "small_enough"]

_MAX_STMT_INDENT = 36
_MAX_FUSED_NODES = 1500  # syntax-tree nodes in one generated function
_MAX_LOOPS = 6  # CPython allows 20 statically nested blocks (loops and try)
_FUSABLE = (ast.Assign, ast.AugAssign, ast.Expr, ast.If, ast.Return, ast.For, ast.While)


def small_enough(stmts: list[ast.stmt]) -> bool:
    """CPython's compiler is superlinear on huge functions: a long body keeps its closures
    (its statements and expressions are still generated one by one)."""
    return scan(stmts)[0] <= _MAX_FUSED_NODES


def scan(roots: Sequence[ast.AST]) -> tuple[int, frozenset[str]]:
    """(number of syntax-tree nodes, capped just above the bound; names stored or deleted)."""
    stack: list[ast.AST] = list(roots)
    pop, push, node_type = stack.pop, stack.append, ast.AST
    stored: set[str] = set()
    n = 0
    while stack:
        node = pop()
        n += 1
        if n > _MAX_FUSED_NODES:
            break
        if isinstance(node, ast.Name) and type(node.ctx) is not ast.Load:
            stored.add(node.id)
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, node_type):
                push(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, node_type):
                        push(item)
    return n, frozenset(stored)


def fuse_block(comp: Compiler, stmts: list[ast.stmt], sc: Scope, *, tick: bool) -> Fn | None:
    """One generated function running ``stmts`` (ticking the block when ``tick``), or None."""
    if not any(isinstance(s, _FUSABLE) for s in stmts) or not small_enough(stmts):
        return None
    gen = _BlockGen(comp, sc)
    gen.block_body(stmts, tick)
    return gen.build_lines([*gen.lines, "    return None"])


def _unpack_error(vals: list[object], n: int) -> None:
    if len(vals) > n:
        raise ValueError(f"too many values to unpack (expected {n})")
    raise ValueError(f"not enough values to unpack (expected {n}, got {len(vals)})")


class _BlockGen(_Gen):
    def __init__(self, comp: Compiler, sc: Scope, fn_mode: bool = False) -> None:
        super().__init__(comp, sc)
        self.loops: list[str] = []  # per enclosing generated loop: the line `continue` needs
        # fn_mode: the block is a function's body inlined in its generated function (fngen):
        # ``return v`` returns at once instead of signalling RETURN to the caller's template.
        self.fn_mode = fn_mode
        self.ns.update(
            b=comp.b, annotate=annotate, BREAK=BREAK, CONTINUE=CONTINUE, RETURN=RETURN,
            NUM=(int, float), MARKNAME=USER_MARK_NAME, MARK=USER_MARK, store_slice=store_slice,
            islice=islice, unpack_error=_unpack_error, tuple=tuple, list=list, iter=iter,
            setattr=setattr,
        )  # fmt: skip

    def block_body(self, stmts: list[ast.stmt], tick: bool) -> None:
        """The steps of ``make_block``: tick, run, annotate the innermost running statement."""
        self.emit("p = None")
        if tick:
            self.tick(len(stmts))
        self.emit("try:")
        self.indent += 1
        self.stmts(stmts)
        self.indent -= 1
        self.emit("except BaseException as e:")
        self.emit("    if p is not None:")
        self.emit("        annotate(e, p)")
        self.emit("    raise")

    def tick(self, n: int) -> None:
        self.emit(f"b.left -= {n}")
        self.emit("if b.left < 0:")
        self.emit("    b.refill()")

    def root(self, node: ast.expr) -> str:
        self.nodes = 0
        return self.value(node, 0)

    def stmts(self, stmts: list[ast.stmt]) -> None:
        for s in stmts:
            self.emit(f"p = {self.param((s.lineno, s.col_offset, self.sc.name), 'Q')}")
            method = getattr(self, "s_" + type(s).__name__, None)
            if method is None or self.indent > _MAX_STMT_INDENT or not method(s):
                self.child_stmt(s)

    def child_stmt(self, s: ast.stmt) -> None:
        fn = self.comp.plain_stmt(s, self.sc)
        r = self.tmp()
        self.emit(f"{r} = {self.param(fn, 'S')}(f)")
        if isinstance(s, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Pass)):
            return  # never a control signal
        self.emit(f"if {r} is not None:")
        if self.loops:
            self.emit(f"    if {r} is BREAK:")
            self.emit("        break")
            self.emit(f"    if {r} is CONTINUE:")
            self.emit(f"        {self.loops[-1]}")
            self.emit("        continue")
        if self.fn_mode:
            self.emit(f"    return f.ret if {r} is RETURN else None")
        else:
            self.emit(f"    return {r}")

    def _name_target(self, target: ast.expr) -> tuple[str, str, str]:
        """For a local or global plain name: (kind, key atom, assignable text)."""
        assert isinstance(target, ast.Name)
        name = target.id
        kind = self.sc.resolve(name)[0]
        assert kind in ("local", "global")
        self.comp.check_name(target, name, self.sc, store=True)
        k = self.param(name, "k")
        if kind == "global":
            return kind, k, f"{self.param(self.comp.g, 'G')}[{k}]"
        if self.fast is not None:
            return kind, k, self.local_var(name)
        self.uses_l = True
        return kind, k, f"l[{k}]"

    # -- statements (each returns False when it is left to its ordinary closure) ------------
    def s_Expr(self, s: ast.Expr) -> bool:
        self.root(s.value)
        return True

    def s_Pass(self, s: ast.Pass) -> bool:
        return True

    def s_Assign(self, s: ast.Assign) -> bool:
        if not all(self._storable(t, unpack=True) for t in s.targets):
            return False
        if len(s.targets) > 1:  # a = b = v: one value, stored target by target
            v = self.root(s.value)
            for target in s.targets:
                self.store(target, v)
            return True
        v = self.root(s.value) if not self._parallel(s) else ""
        self.store(s.targets[0], v, s.value)
        return True

    def _storable(self, target: ast.expr, unpack: bool) -> bool:
        if isinstance(target, ast.Name):
            return self.sc.resolve(target.id)[0] in ("local", "global")
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            return True
        if unpack and isinstance(target, (ast.Tuple, ast.List)):
            return all(self._storable(e, unpack=False) for e in target.elts)
        return False

    def _parallel(self, s: ast.Assign) -> bool:
        """``a, b = b, a + b``: the values go to the names without building the tuple."""
        target, value = s.targets[0], s.value
        return (
            isinstance(target, (ast.Tuple, ast.List))
            and isinstance(value, ast.Tuple)
            and len(value.elts) == len(target.elts)
            and not any(isinstance(e, ast.Starred) for e in value.elts)
        )

    def store(self, target: ast.expr, v: str, value: ast.expr | None = None) -> None:
        comp = self.comp
        if isinstance(target, ast.Name):
            lv = self._name_target(target)[2]
            self.emit(f"{lv} = {v}")
        elif isinstance(target, ast.Attribute):
            attr = target.attr
            if is_dunder(attr):
                raise comp.security(
                    target, f"assignment of dunder attribute {attr!r} is not allowed"
                )
            o = self.root(target.value)
            k = self.param(attr, "k")
            set_attr = self.param(comp.p.set_attr, "E")
            # the sandbox's own instance (the name was checked above), else the policy
            self.emit(f"if getattr(type({o}), MARKNAME, None) is MARK:")
            self.emit(f"    {attr_text(o, attr, k)} = {v}")
            self.emit("else:")
            self.emit(f"    {set_attr}({o}, {k}, {v})")
        elif isinstance(target, ast.Subscript):
            o = self.root(target.value)
            k = self.root(target.slice)
            g = comp.guards
            parts = (comp.b.iterate, g.too_big, g.max_size)
            extra = ", ".join(self.param(x, "c") for x in parts)
            self.emit(f"if type({k}) is slice:")
            self.emit(f"    store_slice({o}, {k}, {v}, {extra})")
            self.emit("else:")
            self.emit(f"    {o}[{k}] = {v}")
        else:
            assert isinstance(target, (ast.Tuple, ast.List))
            self._unpack(target, v, value)

    def _unpack(self, target: ast.Tuple | ast.List, v: str, value: ast.expr | None) -> None:
        n = len(target.elts)
        if isinstance(value, ast.Tuple) and v == "":
            atoms = [self.root(e) for e in value.elts]  # evaluated first, stored in order
        else:
            vals = self.tmp()
            self.emit(f"if type({v}) is tuple or type({v}) is list:")
            self.emit(f"    {vals} = {v}")
            self.emit("else:")
            self.emit(f"    {vals} = list(islice(iter({v}), {n + 1}))")
            self.emit(f"if len({vals}) != {n}:")
            self.emit(f"    unpack_error({vals}, {n})")
            atoms = []
            for i in range(n):
                x = self.tmp()
                self.emit(f"{x} = {vals}[{i}]")
                atoms.append(x)
        for e, x in zip(target.elts, atoms, strict=True):
            self.store(e, x)

    def s_AugAssign(self, s: ast.AugAssign) -> bool:
        target = s.target
        if not isinstance(s.op, (ast.Add, ast.Sub)) or not isinstance(target, ast.Name):
            return False
        if self.sc.resolve(target.id)[0] not in ("local", "global"):
            return False
        op = self.param(self.comp.inplace_op(s.op), "O")
        outer, self.lines = self.lines, []
        v = self.root(s.value)  # compiled in the order of nodes_stmt, emitted after the load
        value_lines, self.lines = self.lines, outer
        load = self.param(self.comp.load_name(target, target.id, self.sc), "L")
        kind, k, lv = self._name_target(target)
        a = self.tmp()
        # aug_number: the current value first, then the operand
        if kind == "local" and self.fast is not None:
            self.emit("try:")
            self.emit(f"    {a} = {lv}")
            self.emit("except UnboundLocalError:")
            self.emit(f"    raise unbound_local({k}) from None")
        else:
            ns = lv[: -len(f"[{k}]")]
            self.emit(f"if {k} in {ns}:")
            self.emit(f"    {a} = {lv}")
            self.emit("else:")
            # a missing local: load_local's UnboundLocalError; a global: load_global's lookup
            missing = f"raise unbound_local({k})" if kind == "local" else f"{a} = {load}(f)"
            self.emit(f"    {missing}")
        self.lines.extend(value_lines)
        sign = "+" if isinstance(s.op, ast.Add) else "-"
        self.emit(f"if type({a}) in NUM and type({v}) in NUM:")
        self.emit(f"    {lv} = {a} {sign} {v}")
        self.emit("else:")
        self.emit(f"    {lv} = {op}({a}, {v})")
        return True

    def _orelse(self, orelse: list[ast.stmt]) -> None:
        """An ``if``'s or a ``for``'s ``else:`` block, ticked as the closures tick it."""
        if orelse:
            self.emit("else:")
            self.indent += 1
            self.tick(len(orelse))
            self.stmts(orelse)
            self.indent -= 1

    def s_If(self, s: ast.If) -> bool:
        t = self.root(s.test)
        self.emit(f"if {t}:")
        self.indent += 1
        self.tick(len(s.body))
        self.stmts(s.body)
        self.indent -= 1
        self._orelse(s.orelse)
        return True

    def s_Return(self, s: ast.Return) -> bool:
        if self.sc.kind != "function":
            return False  # the ordinary closure raises the SyntaxError
        v = self.root(s.value) if s.value is not None else "None"
        if self.fn_mode:
            self.emit(f"return {v}")
            return True
        self.emit(f"f.ret = {v}")
        self.emit("return RETURN")
        return True

    def s_Break(self, s: ast.Break) -> bool:
        self.emit("break" if self.loops else "return BREAK")
        return True

    def s_Continue(self, s: ast.Continue) -> bool:
        if self.loops:
            self.emit(self.loops[-1])
            self.emit("continue")
        else:
            self.emit("return CONTINUE")
        return True

    def s_For(self, s: ast.For) -> bool:
        target = s.target
        if (
            len(self.loops) >= _MAX_LOOPS
            or not isinstance(target, ast.Name)
            or self.sc.resolve(target.id)[0] not in ("local", "global")
        ):
            return False
        here = f"p = {self.param((s.lineno, s.col_offset, self.sc.name), 'Q')}"
        it = self.root(s.iter)
        lv = self._name_target(target)[2]
        x = self.tmp()
        self.emit(f"for {x} in {it}:")
        self.indent += 1
        self.emit("b.iters -= 1")
        self.emit("if b.iters < 0:")
        self.emit("    b.iterations_exceeded()")
        self.emit(f"{lv} = {x}")
        self.tick(len(s.body))
        self.loops.append(here)
        self.stmts(s.body)
        self.loops.pop()
        self.emit(here)  # next() runs as the for statement
        self.indent -= 1
        self._orelse(s.orelse)
        return True

    def s_While(self, s: ast.While) -> bool:
        if s.orelse or len(self.loops) >= _MAX_LOOPS:
            return False
        here = f"p = {self.param((s.lineno, s.col_offset, self.sc.name), 'Q')}"
        self.emit("while True:")
        self.indent += 1
        self.emit(here)
        t = self.root(s.test)
        self.emit(f"if not {t}:")
        self.emit("    break")
        self.emit("b.iters -= 1")
        self.emit("if b.iters < 0:")
        self.emit("    b.iterations_exceeded()")
        self.tick(len(s.body))
        self.loops.append("pass")
        self.stmts(s.body)
        self.loops.pop()
        self.indent -= 1
        return True
