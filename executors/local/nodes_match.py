"""The ``match`` statement (PEP 634): value, singleton, sequence, mapping, class, as, or."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .compiler_support import CompilerBase
from .errors import InterpreterError
from .frame import Frame
from .rules import is_dunder

if TYPE_CHECKING:
    from .compiler import Fn
    from .scope import Scope

__all__ = ["MatchMixin"]

Matcher = Any  # (frame, subject) -> bool
_SELF_MATCHING = (bool, bytearray, bytes, dict, float, frozenset, int, list, set, str, tuple)
_NOTHING = object()


class MatchMixin(CompilerBase):
    def s_Match(self, node: ast.Match, sc: Scope) -> Fn:
        subject = self.expr(node.subject, sc)
        cases = [
            (
                self.pattern(c.pattern, sc),
                self.expr(c.guard, sc) if c.guard is not None else None,
                self.block(c.body, sc),
            )
            for c in node.cases
        ]

        def match(f: Frame) -> Any:
            s = subject(f)
            for pat, guard, body in cases:
                if pat(f, s) and (guard is None or guard(f)):
                    return body(f)
            return None

        return match

    def pattern(self, p: ast.pattern, sc: Scope) -> Matcher:
        if isinstance(p, ast.MatchValue):
            value = self.expr(p.value, sc)
            return lambda f, s: s == value(f)
        if isinstance(p, ast.MatchSingleton):
            const = p.value
            return lambda f, s: s is const
        if isinstance(p, ast.MatchAs):
            store = self.store_name(p, p.name, sc) if p.name else None
            inner = self.pattern(p.pattern, sc) if p.pattern is not None else None

            def match_as(f: Frame, s: Any) -> bool:
                if inner is not None and not inner(f, s):
                    return False
                if store is not None:
                    store(f, s)
                return True

            return match_as
        if isinstance(p, ast.MatchOr):
            alts = [self.pattern(x, sc) for x in p.patterns]
            return lambda f, s: any(a(f, s) for a in alts)
        if isinstance(p, ast.MatchSequence):
            return self._match_sequence(p, sc)
        if isinstance(p, ast.MatchMapping):
            return self._match_mapping(p, sc)
        if isinstance(p, ast.MatchClass):
            return self._match_class(p, sc)
        raise self.unsupported(p, f"match pattern {type(p).__name__}")

    def _match_sequence(self, p: ast.MatchSequence, sc: Scope) -> Matcher:
        stars = [i for i, x in enumerate(p.patterns) if isinstance(x, ast.MatchStar)]
        subs = [None if isinstance(x, ast.MatchStar) else self.pattern(x, sc) for x in p.patterns]
        star_store = None
        if stars:
            star = p.patterns[stars[0]]
            assert isinstance(star, ast.MatchStar)
            star_store = self.store_name(star, star.name, sc) if star.name else None
        n = len(subs)

        def match_seq(f: Frame, s: Any) -> bool:
            if not isinstance(s, Sequence) or isinstance(s, (str, bytes, bytearray)):
                return False
            items = list(s)
            if not stars:
                if len(items) != n:
                    return False
                return all(m(f, x) for m, x in zip(subs, items, strict=False))  # type: ignore[misc]
            si = stars[0]
            after = n - si - 1
            if len(items) < n - 1:
                return False
            for i in range(si):
                if not subs[i](f, items[i]):  # type: ignore[misc]
                    return False
            tail = items[len(items) - after :] if after else []
            for j in range(after):
                if not subs[si + 1 + j](f, tail[j]):  # type: ignore[misc]
                    return False
            if star_store is not None:
                star_store(f, items[si : len(items) - after])
            return True

        return match_seq

    def _match_mapping(self, p: ast.MatchMapping, sc: Scope) -> Matcher:
        keys = [self.expr(k, sc) for k in p.keys]
        subs = [self.pattern(x, sc) for x in p.patterns]
        rest = self.store_name(p, p.rest, sc) if p.rest else None

        def match_map(f: Frame, s: Any) -> bool:
            if not isinstance(s, Mapping):
                return False
            ks = [k(f) for k in keys]
            for k, m in zip(ks, subs, strict=False):
                v = s.get(k, _NOTHING)
                if v is _NOTHING or not m(f, v):
                    return False
            if rest is not None:
                rest(f, {k: v for k, v in s.items() if k not in ks})
            return True

        return match_map

    def _match_class(self, p: ast.MatchClass, sc: Scope) -> Matcher:
        cls = self.expr(p.cls, sc)
        pos = [self.pattern(x, sc) for x in p.patterns]
        for a in p.kwd_attrs:
            if is_dunder(a):
                raise self.security(p, f"access to dunder attribute {a!r} is not allowed")
        kwd = [(a, self.pattern(x, sc)) for a, x in zip(p.kwd_attrs, p.kwd_patterns, strict=False)]
        get_attr = self.p.get_attr

        def match_class(f: Frame, s: Any) -> bool:
            c = cls(f)
            if not isinstance(c, type):
                raise TypeError("called match pattern must be a class")
            if not isinstance(s, c):
                return False
            if pos:
                if issubclass(c, _SELF_MATCHING) and "__match_args__" not in c.__dict__:
                    if len(pos) != 1:
                        raise TypeError(
                            f"{c.__name__}() accepts 1 positional sub-pattern ({len(pos)} given)"
                        )
                    if not pos[0](f, s):
                        return False
                else:
                    names = getattr(c, "__match_args__", ())
                    if len(pos) > len(names):
                        raise TypeError(
                            f"{c.__name__}() accepts {len(names)} positional sub-patterns ({len(pos)} given)"  # noqa: E501
                        )
                    for name, m in zip(names, pos, strict=False):
                        try:
                            v = get_attr(s, name)
                        except InterpreterError:
                            raise  # a policy refusal (also an AttributeError for host code)
                        except AttributeError:
                            return False
                        if not m(f, v):
                            return False
            for name, m in kwd:
                try:
                    v = get_attr(s, name)
                except InterpreterError:
                    raise  # a policy refusal (also an AttributeError for host code)
                except AttributeError:
                    return False
                if not m(f, v):
                    return False
            return True

        return match_class
