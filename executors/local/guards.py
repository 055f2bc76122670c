"""Size checks before known-expensive operations, and the budgeted native-call path.

Anything that can allocate or compute far more than its inputs (``*`` repetition, ``**``,
``<<``, format widths, ``str.center``, ``bytes(n)``, ``math.factorial``, ...) is checked
*before* it runs; results of native calls are checked after (sizes, and :meth:`Policy.guard`).
Iterators and huge ranges handed to native code are wrapped so that native consumers
(``list``, ``sum``, ``"".join``, ...) pay the budget per item.
"""

from __future__ import annotations

import io
import math
import operator
import re
import types
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from .budget import Budget
from .errors import SecurityError, SizeLimitExceeded
from .host_effects import check_host_call
from .policy import Policy
from .rules import PLAIN_TYPES, SAFE_MARK_NAME, is_user_owned

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
_CHECKED_METHODS = frozenset({
    "center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "translate", "to_bytes",
})  # fmt: skip
_BIG_BITS = 50_000  # integers above this many bits: look at the clock around the operation
_BUILTIN_CONTAINERS = frozenset({list, tuple, set, frozenset, dict, str, bytes, bytearray, range})
_TEXT_FUNCS = frozenset({str, repr, ascii})
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


def _is_metaclass(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, type)


def _meta_one_arg(meta: type) -> Any:
    """A metaclass handed to native code: calling it may not build a class from a namespace."""

    def one_arg(*args: Any, **kwargs: Any) -> Any:
        if len(args) != 1 or kwargs:
            raise SecurityError("calling a metaclass to build a class is not allowed")
        return meta(args[0])

    return one_arg


def _num_bits(x: Any) -> int:
    if isinstance(x, int):
        return x.bit_length()
    if isinstance(x, Fraction):
        return x.numerator.bit_length() + x.denominator.bit_length()
    return 0


_TEXT_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})
_SMALL_SCALARS = frozenset({int, float, bool, type(None), complex})


def _text_size(value: Any, cap: int, depth: int) -> int:
    """An upper-ish estimate of ``len(repr(value))``, computed at C speed for flat containers;
    stops counting once above ``cap``. Shared references count once per occurrence."""
    t = type(value)
    if t is str or t is bytes or t is bytearray:
        return len(value) + 3
    if t is int:
        return int(value.bit_length()) // 3 + 2
    if t not in _TEXT_CONTAINERS:
        return 24
    if depth > 40:
        return 24
    items: Any = value
    n = len(items)
    if t is dict:
        items = [*value.keys(), *value.values()]
    kinds = set(map(type, items))
    if kinds <= _SMALL_SCALARS:
        if int in kinds:
            big = max(x.bit_length() for x in items if type(x) is int)
            return 2 + n * (big // 3 + 4)
        return 2 + n * 26
    if kinds <= {str}:
        return 2 + sum(map(len, items)) + 4 * n
    total = 2
    for x in items:
        total += _text_size(x, cap, depth + 1) + 2
        if total > cap:
            return total
    return total


class Guards:
    """Pre/post checks bound to one interpreter's budget and policy."""

    def __init__(self, budget: Budget, policy: Policy) -> None:
        self.budget = budget
        self.policy = policy
        lim = budget.limits
        self.max_size = lim.max_collection_size
        self.max_bits = lim.max_int_bits
        self.max_width = lim.max_format_width
        # Pre-checks of native calls (they may replace arguments in the list they are given):
        # by the callable's id, by (owner type, method name), by a Python method's function id.
        self.by_id: dict[int, Callable[[list[Any], dict[str, Any]], None]] = {}
        self.by_method: dict[tuple[type, str], Callable[..., None]] = {}
        self.by_func: dict[int, Callable[[Any, list[Any], dict[str, Any]], None]] = {}
        self.safe_round: Callable[..., Any] = round
        self.no_wrap: set[int] = set()
        self._iter_cache: dict[type, bool] = {}
        from .size_checks import install_size_checks

        install_size_checks(self)

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

    # -- numbers ---------------------------------------------------------------------------
    def as_index(self, v: Any) -> int:
        """``operator.index(v)`` once (a user ``__index__`` may answer differently each time)."""
        if type(v) is int:
            return v
        if isinstance(v, int):
            return int(v)
        if hasattr(type(v), "__index__"):
            return operator.index(v)
        raise TypeError(f"'{type(v).__name__}' object cannot be interpreted as an integer")

    def check_numeric(self, what: str, a: Any, b: Any) -> None:
        """Bound operations on big ints/fractions (int subclasses and Fraction included)."""
        bits = _num_bits(a) + _num_bits(b)
        if bits > _BIG_BITS:
            self.check_bits(what, bits)
            self.budget.check_clock()

    def post(self, r: Any) -> Any:
        """After ``-``, ``/``, ``//``, ``%``: results that grew (fractions) or cost (big ints)."""
        if type(r) is int or isinstance(r, (int, Fraction)):
            bits = _num_bits(r)
            if bits > _BIG_BITS:
                self.budget.check_clock()
                self.check_bits("result", bits)
        return r

    def check_division(self, a: Any, b: Any) -> None:
        # Schoolbook division costs (quotient bits x divisor bits): 1M-bit operands take ~1 s.
        if isinstance(a, int) and isinstance(b, int):
            ab, bb = a.bit_length(), b.bit_length()
            if ab > _BIG_BITS and bb > 64:
                if (ab - bb) * bb > 4 * 10**10:
                    raise SizeLimitExceeded(
                        f"integer division of {ab:,}-bit by {bb:,}-bit numbers is too costly"
                    )
                self.budget.check_clock()
        elif isinstance(a, Fraction) or isinstance(b, Fraction):
            self.check_numeric("fraction", a, b)

    # -- operators -------------------------------------------------------------------------
    def mul(self, a: Any, b: Any) -> Any:
        ta = type(a)
        tb = type(b)
        if ta is int and tb is int:
            if a.bit_length() + b.bit_length() > _BIG_BITS:
                self.check_numeric("integer product", a, b)
            return a * b
        if ta is float or tb is float:
            return a * b
        if isinstance(a, _SEQ_TYPES) and not isinstance(b, _SEQ_TYPES):
            if hasattr(tb, "__index__"):
                b = self.as_index(b)
                self.check_size(f"{ta.__name__} repetition", len(a) * b)
        elif isinstance(b, _SEQ_TYPES) and not isinstance(a, _SEQ_TYPES):
            if hasattr(ta, "__index__"):
                a = self.as_index(a)
                self.check_size(f"{tb.__name__} repetition", len(b) * a)
        else:
            self.check_numeric("product", a, b)
        return a * b

    def add(self, a: Any, b: Any) -> Any:
        ta = type(a)
        if ta is int or ta is float:
            return a + b
        if isinstance(a, _SEQ_TYPES) and isinstance(b, _SEQ_TYPES):
            self.check_size(f"{ta.__name__} concatenation", len(a) + len(b))
        elif isinstance(a, Fraction) or isinstance(b, Fraction):
            self.check_numeric("fraction sum", a, b)
        return a + b

    def sub(self, a: Any, b: Any) -> Any:
        if isinstance(a, Fraction) or isinstance(b, Fraction):
            self.check_numeric("fraction difference", a, b)
        return a - b

    def truediv(self, a: Any, b: Any) -> Any:
        if isinstance(a, Fraction) or isinstance(b, Fraction):
            self.check_numeric("fraction quotient", a, b)
        return a / b

    def floordiv(self, a: Any, b: Any) -> Any:
        self.check_division(a, b)
        return a // b

    def divmod(self, a: Any, b: Any) -> Any:
        self.check_division(a, b)
        return divmod(a, b)

    def pow(self, a: Any, b: Any, mod: Any = None) -> Any:
        if isinstance(b, Fraction) and b.denominator == 1:
            b = b.numerator  # Fraction ** Fraction(n) computes a ** n
        if mod is not None:
            if isinstance(a, int) and isinstance(b, int) and isinstance(mod, int):
                eb, mb = abs(b).bit_length(), mod.bit_length()
                if eb * float(mb) ** 1.6 > 5e9:
                    raise SizeLimitExceeded(
                        f"pow() with a {eb:,}-bit exponent and {mb:,}-bit modulus: too costly"
                    )
            return pow(a, b, mod)
        if isinstance(b, int) and abs(b) > 1:
            base_bits = 0.0
            if isinstance(a, int) and abs(a) > 1:
                base_bits = math.log2(abs(a))
            elif isinstance(a, Fraction):
                base_bits = float(max(a.numerator.bit_length(), a.denominator.bit_length()))
            if base_bits * abs(b) > self.max_bits:
                self.check_bits("power", base_bits * abs(b))
            if base_bits * abs(b) > _BIG_BITS:
                self.budget.check_clock()
        return a**b

    def lshift(self, a: Any, b: Any) -> Any:
        if isinstance(a, int) and isinstance(b, int) and a and b > 0:
            self.check_bits("left shift", a.bit_length() + b)
        return a << b

    def mod(self, a: Any, b: Any) -> Any:
        if type(a) is int or type(a) is float:
            if type(a) is int and a.bit_length() > _BIG_BITS:
                self.check_division(a, b)
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
                self.check_text_size("%-formatting", len(a), b)
            return a % b
        self.check_division(a, b)
        return a % b

    def contains(self, a: Any, b: Any) -> bool:
        """``a in b``: an iterator (or an iterable without ``__contains__``) is scanned by the
        native ``in`` without any budget: scan it one budgeted item at a time instead."""
        tb = type(b)
        if tb in _BUILTIN_CONTAINERS or (
            hasattr(tb, "__contains__") and not hasattr(tb, "__next__")
        ):
            return a in b
        return any(v is a or v == a for v in self.budget.iterate(b))

    def not_contains(self, a: Any, b: Any) -> bool:
        return not self.contains(a, b)

    # -- text built from containers ---------------------------------------------------------
    def check_text_size(self, what: str, base: int, value: Any) -> None:
        """``repr``/``str``/``%``/``json.dumps`` of containers: a list holding one big string
        10,000 times is small, its text is not. Estimate the text before building it."""
        if type(value) in _TEXT_CONTAINERS:
            size = base + _text_size(value, self.max_size - base, 0)
            if size > self.max_size:
                raise self.too_big(f"text of {what}", size)

    # -- native calls ----------------------------------------------------------------------
    def _is_iterator_type(self, t: type) -> bool:
        known = self._iter_cache.get(t)
        if known is None:
            # in-memory buffers are finite: handed to pandas/numpy as they are (as files)
            known = hasattr(t, "__next__") and not issubclass(t, (io.StringIO, io.BytesIO))
            self._iter_cache[t] = known
        return known

    def prepare_args(self, fn: Any, args: list[Any]) -> None:
        """Wrap iterators and huge ranges handed to native code (in place)."""
        if id(fn) in self.no_wrap:
            return
        # our own checked helpers (super().__new__ of a metaclass) take metaclasses as they are
        own = type(fn) is types.FunctionType and SAFE_MARK_NAME in fn.__dict__
        budget = self.budget
        for i, a in enumerate(args):
            if a is type:
                # Native code handed ``type`` could call it with three arguments (a class
                # built from an unchecked namespace): it gets the one-argument form only.
                args[i] = _type_one_arg
                continue
            t = type(a)
            if not own and isinstance(a, type) and issubclass(a, type):
                args[i] = _meta_one_arg(a)  # any metaclass (abc.ABCMeta...): the same
                continue
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
                self._index_args(args)
                check(owner, args, {})
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
                if fn in _TEXT_FUNCS and args and type(args[0]) in _TEXT_CONTAINERS:
                    self.check_text_size(fn.__name__ + "()", 0, args[0])
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
                        check(owner, args, kwargs or {})
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
        if isinstance(fn, type) and issubclass(fn, type) and (len(args) != 1 or kwargs):
            # abc.ABCMeta('X', (), {...}), type(SomeClass)(...): a class from an unchecked
            # namespace. Classes come from class statements only.
            raise SecurityError(
                f"calling the metaclass {fn.__name__} to build a class is not allowed; "
                "use a class statement"
            )
        check_host_call(fn, args, kwargs, is_user_owned)  # nothing kept for the host to call
        pre = self.by_id.get(id(fn))
        if pre is not None:
            self._index_args(args)
            pre(args, kwargs or {})
        elif t is types.BuiltinMethodType:
            owner = fn.__self__
            for k in type(owner).__mro__:
                check = self.by_method.get((k, fn.__name__))
                if check is not None:
                    self._index_args(args)
                    check(owner, args, kwargs or {})
                    break
        elif t is types.MethodType:
            mcheck = self.by_func.get(id(fn.__func__))
            if mcheck is not None:
                self._index_args(args)
                mcheck(fn.__self__, args, kwargs or {})
        for a in args:
            if type(a) not in _NO_ITER_TYPES or type(a) is type:
                self.prepare_args(fn, args)
                break
        if kwargs:
            for key, v in kwargs.items():
                if v is type:
                    kwargs[key] = _type_one_arg
                elif isinstance(v, type) and issubclass(v, type):
                    kwargs[key] = _meta_one_arg(v)
        result = fn(*args, **kwargs) if kwargs else fn(*args)
        tr = type(result)
        if tr in _SIZED_RESULT_TYPES:
            if len(result) > 100_000:
                self.check_size("result of a native call", len(result))
            if tr is list and getattr(fn, "__name__", None) == "mro":
                # the classes of an MRO are handed out one by one (string.Formatter's base)
                guard = self.policy.guard
                result = [guard(c) for c in result]
        elif tr not in PLAIN_TYPES:
            result = self.policy.guard_slow(result)
        elif tr is types.MethodType:
            result = self.policy.plain_hook(None, result, tr)
        if t is types.BuiltinMethodType and isinstance(fn.__self__, _MUTATING_CONTAINERS):
            n = len(fn.__self__)
            if n > self.max_size:
                fn.__self__.clear()
                raise self.too_big(f"{type(fn.__self__).__name__}", n)
        return result

    def _index_args(self, args: list[Any]) -> None:
        """Size-checked natives: convert ``__index__`` objects once, so the check and the call
        see the same number."""
        for i, a in enumerate(args):
            ta = type(a)
            if ta is not int and ta not in _NO_ITER_TYPES and hasattr(ta, "__index__"):
                args[i] = self.as_index(a)
