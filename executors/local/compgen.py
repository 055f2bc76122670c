"""Fused comprehensions and generator expressions: the loops of ``nodes_comp`` as generated code.

Same steps as ``CompMixin._comprehension`` / ``e_GeneratorExp``: the first iterable evaluated in
the enclosing scope, a new frame for the comprehension's scope, per item one operation tick and
one iteration tick before the target is stored, the conditions in order, the size check of the
result; the element expressions are fused by ``exprgen``.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from .exprgen import _Gen
from .fngen import _FRAME_REF
from .frame import Frame

if TYPE_CHECKING:
    from .compiler import Compiler, Fn
    from .scope import Scope

__all__ = ["COMPREHENSIONS", "fuse_comprehension"]

COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_MAX_LEVELS = 4


def fuse_comprehension(
    comp: Compiler, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp, sc: Scope
) -> Fn | None:
    gens = node.generators
    if any(g.is_async for g in gens) or len(gens) > _MAX_LEVELS:
        return None  # the ordinary closure raises "not supported" / handles deep nesting
    csc = comp.scopes[id(node)]
    # As in fngen: when nothing but the generated loop reads the comprehension's namespace, its
    # variables are Python locals and no frame is built; otherwise generated again with one.
    fused, uses_frame = _generate(comp, node, sc, csc, fast=True)
    if uses_frame:
        fused, _ = _generate(comp, node, sc, csc, fast=False)
    return fused


def _generate(
    comp: Compiler,
    node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp,
    sc: Scope,
    csc: Scope,
    fast: bool,
) -> tuple[Fn, bool]:
    gens = node.generators
    gen = _Gen(comp, csc)
    if fast:
        gen.fast = {}
    first = gen.param(comp.expr(gens[0].iter, sc), "F")
    up = gen.param(comp._frame_up(sc), "U")
    gen.ns.update(Frame=Frame, b=comp.b, iter=iter, len=len)
    is_gen = isinstance(node, ast.GeneratorExp)
    flat = len(gens) == 1
    if is_gen:
        gen.emit(f"it = iter({first}(f))")
        if not fast:
            gen.emit(f"cf = Frame({{}}, {up}(f), f.cls)")
        gen.emit("def run(f, it):")
        gen.indent += 1
    else:
        gen.emit(f"it = {first}(f)")
        if not fast:
            gen.emit(f"f = Frame({{}}, {up}(f), f.cls)")
        out = (
            "set()"
            if isinstance(node, ast.SetComp)
            else "{}"
            if isinstance(node, ast.DictComp)
            else "[]"
        )
        gen.emit(f"out = {out}")
    if not fast:
        gen.emit("l = f.l")
    body_start = len(gen.lines)
    base = gen.indent
    for i, g in enumerate(gens):
        it = "it" if i == 0 else gen.value(g.iter, 0)
        x = gen.tmp()
        gen.emit(f"for {x} in {it}:")
        gen.indent += 1
        gen.emit("b.left -= 1")
        gen.emit("if b.left < 0:")
        gen.emit("    b.refill()")
        gen.emit("b.iters -= 1")
        gen.emit("if b.iters < 0:")
        gen.emit("    b.iterations_exceeded()")
        target = g.target
        if isinstance(target, ast.Name) and csc.resolve(target.id)[0] == "local":
            comp.check_name(target, target.id, csc, store=True)
            if fast:
                gen.emit(f"{gen.local_var(target.id)} = {x}")
            else:
                gen.emit(f"l[{gen.param(target.id, 'k')}] = {x}")
        else:
            gen.emit(f"{gen.param(comp.store(target, csc), 'T')}(f, {x})")
        for cond in g.ifs:
            gen.nodes = 0
            c = gen.value(cond, 0)
            gen.emit(f"if not {c}:")
            gen.emit("    continue")
    gen.nodes = 0
    if isinstance(node, ast.DictComp):
        k = gen.value(node.key, 0)
        gen.nodes = 0
        v = gen.value(node.value, 0)
        gen.emit(f"out[{k}] = {v}")
    else:
        e = gen.value(node.elt, 0)
        gen.emit(
            f"yield {e}"
            if is_gen
            else f"out.{'add' if isinstance(node, ast.SetComp) else 'append'}({e})"
        )
    uses_frame = _FRAME_REF.search("\n".join(gen.lines[body_start:])) is not None
    gen.indent = base
    if is_gen:
        gen.indent -= 1
        return gen.build("run(None, it)" if fast else "run(cf, it)"), uses_frame
    check = gen.param(comp.guards.check_size, "V")
    if flat:
        gen.emit("if len(out) > 100_000:")
        gen.emit(f"    {check}('comprehension result', len(out))")
    else:
        gen.emit(f"{check}('comprehension result', len(out))")
    return gen.build("out"), uses_frame
