"""The table of size pre-checks of native calls (see :class:`Guards`).

Why: a native call runs to completion without looking at any budget, so anything that can
allocate or compute far more than its inputs is bounded *before* it starts. Checks receive the
argument list itself and may replace an argument (a user ``repl`` callable wrapped so that the
text it contributes is counted).
"""

from __future__ import annotations

import contextlib
import decimal
import fractions
import itertools
import json
import math
import re
from typing import TYPE_CHECKING, Any

from .errors import SecurityError, SizeLimitExceeded

if TYPE_CHECKING:
    from .guards import Guards

__all__ = ["install_size_checks"]

_EXPONENT = re.compile(r"[eE]\s*([-+]?\d+)")
Args = list[Any]
Kw = dict[str, Any]


def install_size_checks(g: Guards) -> None:
    size = g.check_size

    def width_arg(owner: Any, args: Args, kw: Kw | None = None) -> None:
        if args and isinstance(args[0], int):
            size("padded string", args[0])

    def expandtabs(owner: Any, args: Args, kw: Kw | None = None) -> None:
        tab = args[0] if args and isinstance(args[0], int) else (kw or {}).get("tabsize", 8)
        size("expanded string", len(owner) * max(tab if isinstance(tab, int) else 8, 1))

    def replace(owner: Any, args: Args, kw: Kw | None = None) -> None:
        if len(args) >= 2 and isinstance(args[0], (str, bytes)):
            old, new = args[0], args[1]
            count = len(owner) + 1 if not old else len(owner) // len(old)
            if len(args) >= 3 and isinstance(args[2], int) and args[2] >= 0:
                count = min(count, args[2])
            size("replaced string", len(owner) + count * len(new))

    def join(owner: Any, args: Args, kw: Kw | None = None) -> None:
        if args and isinstance(args[0], (list, tuple)):
            items = args[0]
            try:
                total = sum(map(len, items))
            except TypeError:
                return
            size("joined string", total + len(owner) * max(len(items) - 1, 0))
        elif args and type(args[0]) not in (str, bytes, dict, set, frozenset):
            # an iterator: materialize it under the budget, then check as a list
            args[0] = list(g.budget.iterate(args[0]))
            join(owner, args)

    def translate(owner: Any, args: Args, kw: Kw | None = None) -> None:
        if not isinstance(owner, str) or not args:
            return
        table = args[0]
        if type(table) is not dict:
            # a user mapping: ask it once per distinct character (budgeted), then check
            mapped: dict[int, Any] = {}
            for ch in set(owner):
                with contextlib.suppress(LookupError):
                    mapped[ord(ch)] = table[ord(ch)]
            args[0] = table = mapped
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
        size("translated string", len(owner) * max(longest, 1))

    def to_bytes(owner: Any, args: Args, kw: Kw | None = None) -> None:
        n = args[0] if args else (kw or {}).get("length", 1)
        if isinstance(n, int):
            size("int.to_bytes()", n)

    for t in (str, bytes, bytearray):
        for m in ("center", "ljust", "rjust", "zfill"):
            g.by_method[(t, m)] = width_arg
        g.by_method[(t, "expandtabs")] = expandtabs
        g.by_method[(t, "replace")] = replace
        g.by_method[(t, "join")] = join
    g.by_method[(str, "translate")] = translate
    g.by_method[(int, "to_bytes")] = to_bytes
    g.by_method[(bool, "to_bytes")] = to_bytes

    def alloc(args: Args, kwargs: Kw) -> None:
        if args and isinstance(args[0], int):
            size("bytes object", args[0])

    def fact(args: Args, kwargs: Kw) -> None:
        if args and isinstance(args[0], int) and args[0] > 100_000:
            raise SizeLimitExceeded(f"math.factorial({args[0]}) is above the size budget")

    def comb_perm(args: Args, kwargs: Kw, perm: bool) -> None:
        if not args or not isinstance(args[0], int) or args[0] < 2:
            return
        n = args[0]
        k = args[1] if len(args) > 1 and isinstance(args[1], int) else (n if perm else 0)
        k = max(0, min(k, n))
        if not perm:
            k = min(k, n - k)
        g.check_bits("math.comb/perm result", k * math.log2(n))

    def unbound_width(args: Args, kwargs: Kw) -> None:
        if len(args) >= 2 and isinstance(args[1], int):
            size("padded string", args[1])

    def deny_type3(args: Args, kwargs: Kw) -> None:
        if len(args) != 1:
            raise SecurityError("type() with three arguments is not allowed; use a class statement")

    def decimal_context(args: Args, kwargs: Kw) -> None:
        values = [*args[:1], kwargs.get("prec"), kwargs.get("Emax"), kwargs.get("Emin")]
        for v in values:
            if isinstance(v, int) and abs(v) > 100_000:
                raise SizeLimitExceeded(f"decimal precision/exponent {v} is above the size budget")

    def decimal_to_int(args: Args, kwargs: Kw) -> None:
        if args and isinstance(args[0], decimal.Decimal) and args[0].is_finite():
            g.check_bits("int(Decimal)", max(args[0].adjusted(), 0) * 3.33)

    def exponent(args: Args, kwargs: Kw) -> None:
        # Decimal('1e99999999') is cheap, but int()/Fraction()/format() of it are not: refuse
        # exponents whose integer would be above max_int_bits.
        v = args[0] if args else kwargs.get("value", kwargs.get("numerator"))
        if isinstance(v, str):
            m = _EXPONENT.search(v)
            if (m and len(m.group(1)) > 7) or (m and abs(int(m.group(1))) * 3.33 > g.max_bits):
                g.check_bits("number exponent", g.max_bits + 1)
            if isinstance(v, str) and "_" not in v and len(v) < 1000:
                with contextlib.suppress(ArithmeticError, ValueError):
                    v = decimal.Decimal(v.strip())
        if isinstance(v, decimal.Decimal) and v.is_finite():
            g.check_bits("number exponent", abs(v.adjusted()) * 3.33)

    def tee(args: Args, kwargs: Kw) -> None:
        if len(args) > 1 and isinstance(args[1], int):
            size("itertools.tee()", args[1])

    def re_sub(pattern: Any, args: Args, kw: Kw, off: int) -> None:
        # args (after the pattern): repl, string, count
        if len(args) < off + 2:
            return
        repl, text = args[off], args[off + 1]
        if not isinstance(text, (str, bytes)):
            return
        count = args[off + 2] if len(args) > off + 2 else kw.get("count", 0)
        if callable(repl):
            args[off] = _counted_repl(g, repl)
            return
        if not isinstance(repl, (str, bytes)):
            return
        refs = repl.count("\\") if isinstance(repl, str) else repl.count(b"\\")
        n = len(text) + 1
        if isinstance(count, int) and count > 0:
            n = min(n, count)
        est = len(text) + n * len(repl) + refs * len(text)
        if est > g.max_size and pattern is not None:
            # maybe far fewer matches: count them (budgeted) before refusing
            found = 0
            flags = kw.get("flags", 0) if off == 1 else 0
            it = re.finditer(pattern, text, flags) if off == 1 else pattern.finditer(text)
            for _ in g.budget.iterate(it):
                found += 1
            est = len(text) + min(n, found) * len(repl) + refs * len(text)
        size("re.sub() result", est)

    g.by_id[id(re.sub)] = lambda a, k: re_sub(a[0] if a else None, a, k, 1)
    g.by_id[id(re.subn)] = g.by_id[id(re.sub)]

    def pattern_sub(owner: Any, args: Args, kw: Kw | None = None) -> None:
        re_sub(owner, args, kw or {}, 0)

    g.by_method[(re.Pattern, "sub")] = pattern_sub
    g.by_method[(re.Pattern, "subn")] = g.by_method[(re.Pattern, "sub")]

    def json_dumps(args: Args, kwargs: Kw) -> None:
        if args:
            g.check_text_size("json.dumps()", 0, args[0])

    g.by_id[id(decimal.Context)] = decimal_context
    g.by_id[id(decimal.localcontext)] = lambda a, k: decimal_context(a[1:], k)
    g.by_id[id(int)] = decimal_to_int
    g.by_id[id(bytes)] = alloc
    g.by_id[id(bytearray)] = alloc
    g.by_id[id(math.factorial)] = fact
    g.by_id[id(math.comb)] = lambda a, k: comb_perm(a, k, False)
    g.by_id[id(math.perm)] = lambda a, k: comb_perm(a, k, True)
    g.by_id[id(itertools.tee)] = tee
    g.by_id[id(decimal.Decimal)] = exponent
    g.by_id[id(fractions.Fraction)] = exponent
    g.by_id[id(json.dumps)] = json_dumps
    g.by_id[id(type)] = deny_type3
    g.by_id[id(int.__dict__["to_bytes"])] = lambda a, k: to_bytes(None, a[1:], k)
    for t in (str, bytes, bytearray):
        for m in ("center", "ljust", "rjust", "zfill"):
            g.by_id[id(t.__dict__[m])] = unbound_width

    def translate_unbound(args: Args, kwargs: Kw) -> None:
        rest = args[1:]
        translate(args[0] if args else "", rest, kwargs)
        args[1:] = rest

    g.by_id[id(str.__dict__["translate"])] = translate_unbound
    for fn in (
        len, isinstance, issubclass, id, repr, type, callable, hash, iter, next, bool,
        print, getattr, setattr, hasattr,
    ):  # fmt: skip
        g.no_wrap.add(id(fn))


def _counted_repl(g: Guards, repl: Any) -> Any:
    """A user ``repl`` function may return one big string for every match: count the text."""
    total = [0]

    def counted(m: Any) -> Any:
        out = repl(m)
        if isinstance(out, (str, bytes)):
            total[0] += len(out)
            if total[0] > g.max_size:
                raise g.too_big("re.sub() result", total[0])
        return out

    return counted
