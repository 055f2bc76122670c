"""Fused user functions: the fixed-arity template of ``arity.py`` with the body written inside.

``arity.py`` calls the body's closure from the generated ``user_function``; here the body's
generated code (``stmtgen`` in function mode, or the fused expression of a lambda or of a
``return``-only body) is the ``try`` block of ``user_function`` itself, which saves a call and a
frame lookup per call. The steps are those of the template: the operation tick (``cost``), the
frame, the recursion depth, the exception marks, the general binder for any other call shape.

The code objects of these functions are sandbox code (``USER_CODE_IDS``): the cache of them is
bounded and never evicted, and a shape beyond it takes the ordinary template.
"""

from __future__ import annotations

import ast
import re
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .frame import RETURN, Frame
from .rules import add_user_code
from .stmtgen import _MAX_FUSED_NODES, _BlockGen, scan

if TYPE_CHECKING:
    from .scope import Scope

__all__ = ["fuse_function"]

_MAX_SHAPES = 2048
_FACTORIES: dict[str, types.CodeType] = {}
_NA = object()
_FRAME_REF = re.compile(r"(?<![\w.])f(?!\w)")  # the identifier ``f`` (attribute names excluded)


def fuse_function(
    comp: Any,
    node: ast.FunctionDef | ast.Lambda,
    fsc: Scope,
    params: tuple[str, ...],
    n_defaults: int,
    marks: tuple[Callable[[BaseException], None], Callable[..., Any]],
    too_deep: Callable[..., BaseException],
) -> Callable[..., Any] | None:
    """A factory ``(binder, body, defaults, kwdefaults, up, cls, b, expr_body) -> function``
    for ``node``, or None (then the caller compiles it the ordinary way)."""

    size, stored = scan([node])  # the names stored include the nested scopes' (a superset)
    if size > _MAX_FUSED_NODES:
        return None

    def generate(fast: bool) -> tuple[_BlockGen, int, Callable[[BaseException], None]]:
        mark_open, annotating = marks
        gen = _BlockGen(comp, fsc, fn_mode=True)
        gen.indent = 3
        if fast:
            gen.fast = {p: f"a{i}" for i, p in enumerate(params)}
            gen.rebound = stored
        if isinstance(node, ast.Lambda):
            gen.emit(f"return {gen.root(node.body)}")
            return gen, 1, mark_open
        body = node.body
        ret = body[0]
        if len(body) == 1 and isinstance(ret, ast.Return) and ret.value is not None:
            # evaluated like a lambda body; errors at the return's position
            gen.emit(f"return {gen.root(ret.value)}")
            return gen, 2, annotating((ret.lineno, ret.col_offset, fsc.name))
        gen.block_body(body, tick=True)
        return gen, 1, mark_open

    # A body whose every step is generated code is the only reader of its namespace: no frame
    # object is built for it (a frame is for sub-closures, nested functions, super()), and its
    # locals are Python locals (``v0``; the parameters stay ``a0``...). Otherwise the body is
    # generated again with the namespace in the frame.
    gen, cost, mark = generate(fast=True)
    uses_frame = _FRAME_REF.search("\n".join(gen.lines)) is not None
    if uses_frame:
        gen, cost, mark = generate(fast=False)
    n = len(params)
    fd = n - n_defaults
    names = [f"a{i}" for i in range(n)]
    keys = [gen.param(p, "k") for p in params]
    pairs = ", ".join(f"{k}: {a}" for k, a in zip(keys, names, strict=True))
    head = [
        "def factory(BINDER, BODY, DEFAULTS, KWDEFAULTS, UP, CLS, B, EXPR_BODY):",
        f"    ({''.join(f'd{i}, ' for i in range(fd, n))}) = DEFAULTS"
        if n_defaults
        else "    pass",
        f"    def user_function({''.join(f'{a}=NA, ' for a in names)}*args, **kwargs):",
        f"        b.left -= {cost}",
        "        if b.left < 0:",
        "            b.refill()",
        f"        if {f'a{fd - 1} is not NA and ' if fd else ''}not args and not kwargs:",
        "            pass",
        *(f"            if a{i} is NA:\n                a{i} = d{i}" for i in range(fd, n)),
        *([f"            l = {{{pairs}}}"] if uses_frame else []),
        *(
            [
                "            f = new_frame(Frame)",
                "            f.l = l",
                "            f.up = UP",
                "            f.cls = CLS",
                "            f.ret = None",
            ]
            if uses_frame
            else []
        ),
        "        else:",
        f"            given = tuple(a for a in ({''.join(f'{a}, ' for a in names)}) "
        "if a is not NA)",
        "            l = BINDER((*given, *args), kwargs, DEFAULTS, KWDEFAULTS)",
        *(["            f = Frame(l, UP, CLS)"] if uses_frame else []),
        *(f"            {a} = l[{k}]" for k, a in zip(keys, names, strict=True) if not uses_frame),
        "        b.depth += 1",
        "        if b.depth > b.max_depth:",
        "            b.depth -= 1",
        "            raise too_deep(b)",
        "        try:",
    ]
    tail = [
        "        except BaseException as e:",
        "            MARK_EXC(e)",
        "            raise",
        "        finally:",
        "            b.depth -= 1",
        "    return user_function",
        "",
    ]
    source = "\n".join([*head, *gen.lines, *tail])
    code = _FACTORIES.get(source)
    if code is None:
        if len(_FACTORIES) >= _MAX_SHAPES:
            return None
        module = compile(source, "<fused>", "exec")  # fixed templates (see exprgen)
        code = next(c for c in module.co_consts if isinstance(c, types.CodeType))
        for const in code.co_consts:
            if getattr(const, "co_name", None) == "user_function":
                add_user_code(const)
        _FACTORIES[source] = code
    ns = gen.namespace()
    ns.update(
        NA=_NA, new_frame=object.__new__, Frame=Frame, too_deep=too_deep, MARK_EXC=mark,
        RETURN=RETURN, tuple=tuple,
    )  # fmt: skip
    factory: Callable[..., Any] = types.FunctionType(code, ns, "factory")
    return factory
