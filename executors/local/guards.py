"""Size checks before known-expensive operations, and the budgeted native-call path.

Anything that can allocate or compute far more than its inputs (``*`` repetition, ``**``,
``<<``, format widths, ``str.center``, ``bytes(n)``, ``math.factorial``, ...) is checked
*before* it runs; results of native calls are checked after (sizes, and :meth:`Policy.guard`).
Iterators and huge ranges handed to native code are wrapped so that native consumers
(``list``, ``sum``, ``"".join``, ...) pay the budget per item.
"""

from __future__ import annotations

import decimal
import math
import re
import types
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from .budget import Budget
from .errors import SecurityError, SizeLimitExceeded
from .policy import Policy
from .rules import PLAIN_TYPES

__all__ = ["Guards"]

_SEQ_TYPES = (str, bytes, bytearray, list, tuple)
_SIZED_RESULT_TYPES = frozenset({str, bytes, bytearray, list, tuple, dict, set, frozenset})
_NO_ITER_TYPES = frozenset({
    int, float, str, bool, type(None), bytes, list, tuple, dict, set, frozenset, complex,
    slice, bytearray, type,
})  # fmt: skip
_WIDTH_RE = re.compile(r"(\d+)")
_PERCENT_RE = re.compile(r"%[-#0 +(]*(?:\*|(\d{4,}))?(?:\.(?:\*|(\d{4,})))?")
_MUTATING_CONTAINERS = (list, dict, set, bytearray)
_FAST_OWNERS = frozenset({list, dict, set, bytearray, str, bytes, tuple, frozenset, int, float})
_GROWING = frozenset({list, dict, set, bytearray})
_CHECKED_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join"})
_PURE_IDS = frozenset(
    id(f)
    for f in (
        len, abs, str, int, float, bool, repr, isinstance, issubclass, hash, ord, chr, round,
        divmod, hex, oct, bin, callable, id, ascii,
    )
)  # fmt: skip


def _type_one_arg(*args: Any) -> type:
    if len(args) != 1:
        raise SecurityError("type() with three arguments is not allowed; use a class statement")
    return type(args[0])


class Guards:
    """Pre/post checks bound to one interpreter's budget and policy."""

    def __init__(self, budget: Budget, policy: Policy) -> None:
        self.budget = budget
        self.policy = policy
        lim = budget.limits
        self.max_size = lim.max_collection_size
        self.max_bits = lim.max_int_bits
        self.max_width = lim.max_format_width
        self.by_id: dict[int, Callable[[tuple[Any, ...], dict[str, Any]], None]] = {}
        self.by_method: dict[tuple[type, str], Callable[[Any, tuple[Any, ...]], None]] = {}
        self.no_wrap: set[int] = set()
        self._iter_cache: dict[type, bool] = {}
        self._install()

    # -- errors ----------------------------------------------------------------------------
    def too_big(self, what: str, size: int | float) -> SizeLimitExceeded:
        return SizeLimitExceeded(
            f"{what} would have size {size:,.0f}, above max_collection_size={self.max_size:,}"
        )

    def check_size(self, what: str, size: int | float) -> None:
        if size > self.max_size:
            raise self.too_big(what, size)
        if size > 100_000:
            self.budget.check_memory()  # big allocations: look at the process size right away

    def check_bits(self, what: str, bits: int | float) -> None:
        if bits > self.max_bits:
            raise SizeLimitExceeded(
                f"{what} would have about {bits:,.0f} bits, above max_int_bits={self.max_bits:,}"
            )

    def check_width(self, spec: str) -> None:
        if len(spec) > 3 or spec.isdigit():
            for m in _WIDTH_RE.finditer(spec):
                if len(m.group(1)) > 6 or int(m.group(1)) > self.max_width:
                    raise SizeLimitExceeded(
                        f"format width/precision {m.group(1)} is above max_format_width="
                        f"{self.max_width}"
                    )

    # -- operators -------------------------------------------------------------------------
    def mul(self, a: Any, b: Any) -> Any:
        ta = type(a)
        tb = type(b)
        if ta is int and tb is int:
            if a.bit_length() + b.bit_length() > self.max_bits:
                self.check_bits("integer product", a.bit_length() + b.bit_length())
            return a * b
        if ta is float or tb is float:
            return a * b
        if isinstance(a, _SEQ_TYPES) and isinstance(b, int):
            self.check_size(f"{ta.__name__} repetition", len(a) * b)
        elif isinstance(b, _SEQ_TYPES) and isinstance(a, int):
            self.check_size(f"{tb.__name__} repetition", len(b) * a)
        return a * b

    def add(self, a: Any, b: Any) -> Any:
        ta = type(a)
        if ta is int or ta is float:
            return a + b
        if isinstance(a, _SEQ_TYPES) and isinstance(b, _SEQ_TYPES):
            self.check_size(f"{ta.__name__} concatenation", len(a) + len(b))
        return a + b

    def pow(self, a: Any, b: Any, mod: Any = None) -> Any:
        if mod is not None:
            return pow(a, b, mod)
        if isinstance(b, int) and b > 1:
            base_bits = 0.0
            if isinstance(a, int) and abs(a) > 1:
                base_bits = math.log2(abs(a))
            elif isinstance(a, Fraction):
                base_bits = float(max(a.numerator.bit_length(), a.denominator.bit_length()))
            if base_bits * b > self.max_bits:
                self.check_bits("power", base_bits * b)
        return a**b

    def lshift(self, a: Any, b: Any) -> Any:
        if isinstance(a, int) and isinstance(b, int) and a and b > 0:
            self.check_bits("left shift", a.bit_length() + b)
        return a << b

    def mod(self, a: Any, b: Any) -> Any:
        if type(a) is int or type(a) is float:
            return a % b
        if isinstance(a, (str, bytes)):
            text = a if isinstance(a, str) else a.decode("latin-1")
            if "%" in text:
                for m in _PERCENT_RE.finditer(text):
                    if m.group(1) or m.group(2):
                        raise SizeLimitExceeded(
                            f"%-format width above max_format_width={self.max_width}"
                        )
                    if "*" in m.group(0):
                        values = b if isinstance(b, tuple) else (b,)
                        for v in values:
                            if isinstance(v, int) and v > self.max_width:
                                raise SizeLimitExceeded(
                                    f"%-format width above max_format_width={self.max_width}"
                                )
        return a % b

    # -- native calls ----------------------------------------------------------------------
    def _is_iterator_type(self, t: type) -> bool:
        known = self._iter_cache.get(t)
        if known is None:
            known = hasattr(t, "__next__")
            self._iter_cache[t] = known
        return known

    def prepare_args(self, fn: Any, args: list[Any]) -> None:
        """Wrap iterators and huge ranges handed to native code (in place)."""
        if id(fn) in self.no_wrap:
            return
        budget = self.budget
        for i, a in enumerate(args):
            if a is type:
                # Native code handed ``type`` could call it with three arguments (a class
                # built from an unchecked namespace): it gets the one-argument form only.
                args[i] = _type_one_arg
                continue
            t = type(a)
            if t in _NO_ITER_TYPES:
                continue
            if t is range:
                if len(a) > 100_000:
                    args[i] = budget.iterate(a)
            elif self._is_iterator_type(t):
                args[i] = budget.iterate(a)

    def call_method(self, owner: Any, method: Any, name: str, args: list[Any]) -> Any:
        """``owner.name(*args)`` where ``owner`` is exactly a builtin str/list/dict/...."""
        if name in _CHECKED_METHODS:
            check = self.by_method.get((type(owner), name))
            if check is not None:
                check(owner, tuple(args))
        for a in args:
            if type(a) not in _NO_ITER_TYPES:
                self.prepare_args(method, args)
                break
        result = method(*args)
        if type(owner) in _GROWING and len(owner) > self.max_size:
            n = len(owner)
            owner.clear()
            raise self.too_big(type(owner).__name__, n)
        if type(result) in _SIZED_RESULT_TYPES and len(result) > 100_000:
            self.check_size("result of a native call", len(result))
        return result

    def call_native(self, fn: Any, args: list[Any], kwargs: dict[str, Any] | None) -> Any:
        if id(fn) in _PURE_IDS:
            # len(), str(), abs()...: nothing to check unless an argument is an iterator.
            for a in args:
                if type(a) not in _NO_ITER_TYPES:
                    break
            else:
                return fn(*args, **kwargs) if kwargs else fn(*args)
        t = type(fn)
        if t is types.BuiltinMethodType:
            owner = fn.__self__
            to = type(owner)
            if to in _FAST_OWNERS:
                # A method of a builtin container/str: plain results, only sizes to check.
                name = fn.__name__
                if name in _CHECKED_METHODS:
                    check = self.by_method.get((to, name))
                    if check is not None:
                        check(owner, tuple(args))
                for a in args:
                    if type(a) not in _NO_ITER_TYPES:
                        self.prepare_args(fn, args)
                        break
                result = fn(*args, **kwargs) if kwargs else fn(*args)
                if to in _GROWING and len(owner) > self.max_size:
                    n = len(owner)
                    owner.clear()
                    raise self.too_big(to.__name__, n)
                if type(result) in _SIZED_RESULT_TYPES and len(result) > self.max_size:
                    raise self.too_big("result of a native call", len(result))
                return result
        pre = self.by_id.get(id(fn))
        if pre is not None:
            pre(tuple(args), kwargs or {})
        elif t is types.BuiltinMethodType:
            owner = fn.__self__
            check = self.by_method.get((type(owner), fn.__name__))
            if check is not None:
                check(owner, tuple(args))
        for a in args:
            if type(a) not in _NO_ITER_TYPES or a is type:
                self.prepare_args(fn, args)
                break
        if kwargs:
            for k, v in kwargs.items():
                if v is type:
                    kwargs[k] = _type_one_arg
        result = fn(*args, **kwargs) if kwargs else fn(*args)
        tr = type(result)
        if tr in _SIZED_RESULT_TYPES:
            if len(result) > 100_000:
                self.check_size("result of a native call", len(result))
        elif tr not in PLAIN_TYPES:
            result = self.policy.guard_slow(result)
        if t is types.BuiltinMethodType and isinstance(fn.__self__, _MUTATING_CONTAINERS):
            n = len(fn.__self__)
            if n > self.max_size:
                fn.__self__.clear()
                raise self.too_big(f"{type(fn.__self__).__name__}", n)
        return result

    # -- the table of pre-checks ---------------------------------------------------------------
    def _install(self) -> None:
        size = self.check_size

        def width_arg(owner: Any, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], int):
                size("padded string", args[0])

        def expandtabs(owner: Any, args: tuple[Any, ...]) -> None:
            tab = args[0] if args and isinstance(args[0], int) else 8
            size("expanded string", len(owner) * max(tab, 1))

        def replace(owner: Any, args: tuple[Any, ...]) -> None:
            if len(args) >= 2 and isinstance(args[0], (str, bytes)):
                old, new = args[0], args[1]
                count = len(owner) + 1 if not old else len(owner) // len(old)
                if len(args) >= 3 and isinstance(args[2], int) and args[2] >= 0:
                    count = min(count, args[2])
                size("replaced string", len(owner) + count * len(new))

        def join(owner: Any, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], (list, tuple)):
                items = args[0]
                try:
                    total = sum(map(len, items))
                except TypeError:
                    return
                size("joined string", total + len(owner) * max(len(items) - 1, 0))

        for t in (str, bytes, bytearray):
            for m in ("center", "ljust", "rjust", "zfill"):
                self.by_method[(t, m)] = width_arg
            self.by_method[(t, "expandtabs")] = expandtabs
            self.by_method[(t, "replace")] = replace
            self.by_method[(t, "join")] = join

        def alloc(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if args and isinstance(args[0], int):
                size("bytes object", args[0])

        def fact(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if args and isinstance(args[0], int) and args[0] > 100_000:
                raise SizeLimitExceeded(f"math.factorial({args[0]}) is above the size budget")

        def comb(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if args and isinstance(args[0], int) and args[0] > 1_000_000:
                raise SizeLimitExceeded("math.comb/perm argument is above the size budget")

        def unbound_width(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if len(args) >= 2 and isinstance(args[1], int):
                size("padded string", args[1])

        def ldexp(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            return None

        def deny_type3(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if len(args) != 1:
                raise SecurityError(
                    "type() with three arguments is not allowed; use a class statement"
                )

        def decimal_context(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            values = [*args[:1], kwargs.get("prec"), kwargs.get("Emax"), kwargs.get("Emin")]
            for v in values:
                if isinstance(v, int) and abs(v) > 100_000:
                    raise SizeLimitExceeded(
                        f"decimal precision/exponent {v} is above the size budget"
                    )

        self.by_id[id(decimal.Context)] = decimal_context
        self.by_id[id(decimal.localcontext)] = lambda a, k: decimal_context(a[1:], k)
        self.by_id[id(bytes)] = alloc
        self.by_id[id(bytearray)] = alloc
        self.by_id[id(math.factorial)] = fact
        self.by_id[id(math.comb)] = comb
        self.by_id[id(math.perm)] = comb
        self.by_id[id(type)] = deny_type3
        for t in (str, bytes, bytearray):
            for m in ("center", "ljust", "rjust", "zfill"):
                self.by_id[id(t.__dict__[m])] = unbound_width
        for fn in (
            len, isinstance, issubclass, id, repr, type, callable, hash, iter, next, bool,
            print, getattr, setattr, hasattr,
        ):  # fmt: skip
            self.no_wrap.add(id(fn))
