"""Static scope analysis: which names are local, global, free (closure) or class-level.

The interpreter resolves every name at compile time, as CPython does, so closures, ``nonlocal``,
``global``, class bodies and comprehension scopes behave exactly like CPython's.
"""

from __future__ import annotations

import ast
from typing import Literal

__all__ = ["Scope", "analyze"]

ScopeKind = Literal["module", "function", "class", "comprehension"]
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class Scope:
    def __init__(self, kind: ScopeKind, parent: Scope | None, name: str) -> None:
        self.kind = kind
        self.parent = parent
        self.name = name
        self.bound: set[str] = set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.walrus: set[str] = set()  # comprehension names bound by := in the enclosing scope
        self.has_yield = False
        self.first_arg: str | None = None  # first parameter of a function (zero-arg super())
        self._cache: dict[str, tuple[str, int]] = {}

    @property
    def is_function(self) -> bool:
        return self.kind in ("function", "comprehension")

    def _enclosing_function(self) -> Scope | None:
        s = self.parent
        while s is not None and s.kind == "class":
            s = s.parent
        return s if s is not None and s.is_function else None

    def _find_free(self, name: str) -> int:
        """Depth (number of frame hops) of the enclosing function scope binding ``name``, or 0."""
        depth = 0
        s: Scope | None = self
        while True:
            assert s is not None
            s = s._enclosing_function()
            if s is None:
                return 0
            depth += 1
            if name in s.globals:
                return 0
            if name in s.bound and name not in s.nonlocals and name not in s.walrus:
                return depth

    def resolve(self, name: str) -> tuple[str, int]:
        """One of ("global", 0), ("local", 0), ("free", depth), ("class", 0), ("classfree", d)."""
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        result: tuple[str, int]
        if self.kind == "module" or name in self.globals:
            result = ("global", 0)
        elif self.kind == "class":
            if name in self.nonlocals:
                d = self._find_free(name)
                if not d:
                    raise SyntaxError(f"no binding for nonlocal '{name}' found")
                result = ("free", d)
            elif name in self.bound:
                result = ("class", 0)
            else:
                d = self._find_free(name)
                result = ("classfree", d) if d else ("class", 0)
        elif name in self.nonlocals or name in self.walrus:
            d = self._find_free(name)
            if not d:
                if name in self.walrus:
                    result = ("global", 0)
                else:
                    raise SyntaxError(f"no binding for nonlocal '{name}' found")
            else:
                result = ("free", d)
        elif name in self.bound:
            result = ("local", 0)
        else:
            d = self._find_free(name)
            result = ("free", d) if d else ("global", 0)
        self._cache[name] = result
        return result


class _Analyzer(ast.NodeVisitor):
    def __init__(self) -> None:
        self.scopes: dict[int, Scope] = {}
        self.scope: Scope = Scope("module", None, "<module>")

    def _bind(self, name: str) -> None:
        self.scope.bound.add(name)

    def _enter(self, node: ast.AST, kind: ScopeKind, name: str) -> Scope:
        s = Scope(kind, self.scope, name)
        self.scopes[id(node)] = s
        return s

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            self._bind(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.scope.globals.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        if self.scope.kind == "module":
            raise SyntaxError("nonlocal declaration not allowed at module level")
        self.scope.nonlocals.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._bind(alias.asname or alias.name)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self._bind(node.rest)
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        name = node.target.id
        s: Scope | None = self.scope
        while s is not None and s.kind == "comprehension":
            s.walrus.add(name)
            s = s.parent
        if s is not None:
            if s.kind == "class" and self.scope.kind == "comprehension":
                raise SyntaxError(
                    "assignment expression within a comprehension cannot be used in a class body"
                )
            s.bound.add(name)

    def visit_Yield(self, node: ast.Yield) -> None:
        self.scope.has_yield = True
        self.generic_visit(node)

    def visit_YieldFrom(self, node: ast.YieldFrom) -> None:
        self.scope.has_yield = True
        self.generic_visit(node)

    def _visit_args(self, args: ast.arguments) -> None:
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs):
            self._bind(a.arg)
        if args.vararg:
            self._bind(args.vararg.arg)
        if args.kwarg:
            self._bind(args.kwarg.arg)

    def _visit_function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, name: str
    ) -> None:
        args = node.args
        for d in (*args.defaults, *[d for d in args.kw_defaults if d is not None]):
            self.visit(d)
        if not isinstance(node, ast.Lambda):
            for dec in node.decorator_list:
                self.visit(dec)
            for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
                if a is not None and a.annotation is not None:
                    self.visit(a.annotation)
            if node.returns is not None:
                self.visit(node.returns)
            self._bind(name)
        outer = self.scope
        self.scope = self._enter(node, "function", name)
        self._visit_args(args)
        body = node.body if isinstance(node.body, list) else [node.body]
        for stmt in body:
            self.visit(stmt)
        self.scope = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node, node.name)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_function(node, node.name)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_function(node, "<lambda>")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for dec in node.decorator_list:
            self.visit(dec)
        for b in node.bases:
            self.visit(b)
        for k in node.keywords:
            self.visit(k.value)
        self._bind(node.name)
        outer = self.scope
        self.scope = self._enter(node, "class", node.name)
        for stmt in node.body:
            self.visit(stmt)
        self.scope = outer

    def _visit_comp(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
    ) -> None:
        gens = node.generators
        self.visit(gens[0].iter)
        outer = self.scope
        self.scope = self._enter(node, "comprehension", "<" + type(node).__name__.lower() + ">")
        for i, gen in enumerate(gens):
            self.visit(gen.target)
            if i:
                self.visit(gen.iter)
            for cond in gen.ifs:
                self.visit(cond)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self.scope = outer

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comp


def analyze(tree: ast.Module) -> tuple[Scope, dict[int, Scope]]:
    """Return the module scope and a map from ``id(node)`` to the scope each node opens."""
    an = _Analyzer()
    an.scopes[id(tree)] = an.scope
    for stmt in tree.body:
        an.visit(stmt)
    return an.scope, an.scopes
