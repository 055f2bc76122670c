"""Comprehensions and generator expressions (each runs in its own scope, like CPython's)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from .compiler_support import CompilerBase
from .frame import Frame

if TYPE_CHECKING:
    from .compiler import Fn
    from .scope import Scope


__all__ = ["CompMixin"]


class CompMixin(CompilerBase):
    def _comp_levels(
        self, node: Any, sc: Scope
    ) -> tuple[Scope, Fn, list[tuple[Any, list[Fn], Fn | None]]]:
        csc = self.scopes[id(node)]
        gens = node.generators
        if any(g.is_async for g in gens):
            raise self.unsupported(node, "async comprehensions")
        first = self.expr(gens[0].iter, sc)
        levels = []
        for i, g in enumerate(gens):
            levels.append(
                (
                    self.store(g.target, csc),
                    [self.expr(c, csc) for c in g.ifs],
                    self.expr(g.iter, csc) if i else None,
                )
            )
        return csc, first, levels

    def _comprehension(self, node: Any, sc: Scope, kind: str) -> Fn:
        csc, first, levels = self._comp_levels(node, sc)
        if kind == "dict":
            key, value = self.expr(node.key, csc), self.expr(node.value, csc)
        else:
            elt = self.expr(node.elt, csc)
        up = self._frame_up(sc)
        b = self.b
        check_size = self.guards.check_size
        last = len(levels) - 1

        def loop(cf: Frame, level: int, iterable: Any, out: Any) -> None:
            store, conds, _ = levels[level]
            for x in iterable:
                b.left -= 1
                if b.left < 0:
                    b.refill()
                b.iters -= 1
                if b.iters < 0:
                    b.iterations_exceeded()
                store(cf, x)
                ok = True
                for c in conds:
                    if not c(cf):
                        ok = False
                        break
                if not ok:
                    continue
                if level == last:
                    if kind == "list":
                        out.append(elt(cf))
                    elif kind == "set":
                        out.add(elt(cf))
                    else:
                        out[key(cf)] = value(cf)
                else:
                    loop(cf, level + 1, levels[level + 1][2](cf), out)  # type: ignore[misc]

        def comprehension(f: Frame) -> Any:
            iterable = first(f)
            cf = Frame({}, up(f), f.cls)
            out: Any = [] if kind == "list" else set() if kind == "set" else {}
            loop(cf, 0, iterable, out)
            check_size("comprehension result", len(out))
            return out

        if len(levels) == 1:
            # One ``for`` clause (the usual case): a flat loop, the target stored inline when
            # it is a plain name of the comprehension's own scope.
            store0, conds, _ = levels[0]
            gen0 = node.generators[0]
            target = gen0.target.id if isinstance(gen0.target, ast.Name) else None
            if target is not None and csc.resolve(target)[0] != "local":
                target = None
            conds_t = tuple(conds)
            is_list = kind == "list"
            is_set = kind == "set"

            def flat_comprehension(f: Frame) -> Any:
                iterable = first(f)
                cf = Frame({}, up(f), f.cls)
                ns = cf.l
                out: Any = [] if is_list else set() if is_set else {}
                for x in iterable:
                    b.left -= 1
                    if b.left < 0:
                        b.refill()
                    b.iters -= 1
                    if b.iters < 0:
                        b.iterations_exceeded()
                    if target is not None:
                        ns[target] = x
                    else:
                        store0(cf, x)
                    if conds_t:
                        for c in conds_t:
                            if not c(cf):
                                break
                        else:
                            c = None
                        if c is not None:
                            continue
                    if is_list:
                        out.append(elt(cf))
                    elif is_set:
                        out.add(elt(cf))
                    else:
                        out[key(cf)] = value(cf)
                if len(out) > 100_000:
                    check_size("comprehension result", len(out))
                return out

            return flat_comprehension
        return comprehension

    def e_ListComp(self, node: ast.ListComp, sc: Scope) -> Fn:
        return self._comprehension(node, sc, "list")

    def e_SetComp(self, node: ast.SetComp, sc: Scope) -> Fn:
        return self._comprehension(node, sc, "set")

    def e_DictComp(self, node: ast.DictComp, sc: Scope) -> Fn:
        return self._comprehension(node, sc, "dict")

    def e_GeneratorExp(self, node: ast.GeneratorExp, sc: Scope) -> Fn:
        csc, first, levels = self._comp_levels(node, sc)
        elt = self.expr(node.elt, csc)
        up = self._frame_up(sc)
        b = self.b
        last = len(levels) - 1

        def gen(cf: Frame, level: int, iterable: Any) -> Any:
            store, conds, _ = levels[level]
            for x in iterable:
                b.left -= 1
                if b.left < 0:
                    b.refill()
                b.iters -= 1
                if b.iters < 0:
                    b.iterations_exceeded()
                store(cf, x)
                if all(c(cf) for c in conds):
                    if level == last:
                        yield elt(cf)
                    else:
                        yield from gen(cf, level + 1, levels[level + 1][2](cf))  # type: ignore[misc]

        def genexp(f: Frame) -> Any:
            iterable = iter(first(f))
            return gen(Frame({}, up(f), f.cls), 0, iterable)

        return genexp
