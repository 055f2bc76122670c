"""Safe stand-ins for standard-library callables that mutate shared classes or compute unboundedly.

Why: the host shares its library classes (``json.JSONEncoder``, ``collections.abc.Mapping``...)
with every sandbox (and, in-process, with the host itself). Decorators such as
``dataclasses.dataclass`` or ``functools.total_ordering`` and ``ABCMeta.register`` write into the
class they are given, so they only accept classes the sandbox defined. Arithmetic helpers
(``operator.mul``, ``math.prod``, ``round``...) go through the same size checks as the operators.
Every replacement is registered by the id of the real callable, so whichever route hands the
real one out (module attribute, bound method, native code) yields the safe one.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import functools
import math
import operator
import random
import string
import types
import typing
from collections.abc import Callable
from typing import Any

from .errors import SecurityError
from .rules import _FACTORY_DUNDERS, CLASS_DUNDERS, is_dunder, is_user_owned, mark_safe

_iadd: Callable[[Any, Any], Any] = operator.iadd  # typed (typeshed leaves them untyped)
_imul: Callable[[Any, Any], Any] = operator.imul

__all__ = ["install_stdlib_safe"]


def _require_own(what: str, target: Any) -> None:
    if not is_user_owned(target):
        raise SecurityError(
            f"{what} can only modify classes and functions defined in the sandbox "
            f"(not {getattr(target, '__qualname__', type(target).__name__)})"
        )


def _class_mutator(what: str, real: Callable[..., Any]) -> Callable[..., Any]:
    """``real(target)`` writes into ``target``: only the sandbox's own objects."""

    def safe(target: Any, /, *args: Any, **kwargs: Any) -> Any:
        _require_own(what, target)
        return real(target, *args, **kwargs)

    return safe


def install_stdlib_safe(policy: Any, guards: Any, budget: Any) -> None:
    """Register the replacements in ``policy.func_replacements`` (id of real -> safe)."""
    repl: dict[int, Any] = policy.func_replacements
    max_size = guards.max_size
    max_bits = guards.max_bits

    def register(real: Any, safe: Callable[..., Any], name: str | None = None) -> None:
        safe.__name__ = safe.__qualname__ = name or str(getattr(real, "__name__", "function"))
        mark_safe(safe)
        repl[id(real)] = safe
        policy.safe_ids.add(id(safe))

    # -- class-mutating decorators and registries -------------------------------------------
    real_dataclass = dataclasses.dataclass

    def dataclass(cls: Any = None, /, **kwargs: Any) -> Any:
        if cls is None:
            return mark_safe(lambda c: dataclass(c, **kwargs))
        _require_own("dataclass()", cls)
        return real_dataclass(cls, **kwargs)

    register(real_dataclass, dataclass)
    for real, what in (
        (functools.total_ordering, "total_ordering()"),
        (typing.final, "final()"),
        (typing.runtime_checkable, "runtime_checkable()"),
        (typing.no_type_check, "no_type_check()"),
        (abc.update_abstractmethods, "update_abstractmethods()"),
    ):
        register(real, _class_mutator(what, real))

    def make_dataclass_check(args: list[Any], kwargs: dict[str, Any]) -> None:
        # the namespace becomes the class body: the class-body rules apply before it is built
        ns = kwargs.get("namespace")
        for key in ns or ():
            if (
                isinstance(key, str)
                and is_dunder(key)
                and key not in CLASS_DUNDERS
                and key not in _FACTORY_DUNDERS
            ):
                raise SecurityError(f"special name {key!r} cannot be defined in the sandbox")

    guards.by_id[id(dataclasses.make_dataclass)] = make_dataclass_check

    def enum_check(args: list[Any], kwargs: dict[str, Any]) -> None:
        # Enum('E', {'__del__': 1}): the functional API turns names into class attributes
        names = args[1] if len(args) > 1 else kwargs.get("names")
        if isinstance(names, str):
            keys: list[Any] = names.replace(",", " ").split()
        elif isinstance(names, dict):
            keys = list(names)
        elif isinstance(names, (list, tuple)):
            keys = [n[0] if isinstance(n, (list, tuple)) and n else n for n in names]
        else:
            keys = []
        make_dataclass_check([], {"namespace": [k for k in keys if isinstance(k, str)]})

    for base in (enum.Enum, enum.IntEnum, enum.Flag, enum.IntFlag, enum.StrEnum):
        guards.by_id[id(base)] = enum_check

    real_register = abc.ABCMeta.register

    def abc_register(cls: Any, subclass: Any) -> Any:
        # Registering a library class into a library ABC changes isinstance() for everyone.
        if not is_user_owned(cls) and not is_user_owned(subclass):
            raise SecurityError("register() needs an ABC or a class defined in the sandbox")
        return real_register(cls, subclass)

    register(real_register, abc_register, "register")

    # -- arithmetic through the size checks --------------------------------------------------
    def iadd(a: Any, b: Any) -> Any:
        if type(a) is list:
            a.extend(budget.iterate(b))
            guards.check_size("concatenation", len(a))
            return a
        if isinstance(a, (bytearray, list)) and hasattr(b, "__len__"):
            guards.check_size("concatenation", len(a) + len(b))
            return _iadd(a, b)
        return guards.add(a, b) if isinstance(a, (str, bytes, tuple, int)) else _iadd(a, b)

    def imul(a: Any, b: Any) -> Any:
        if isinstance(a, (list, bytearray)):
            n = guards.as_index(b)
            guards.check_size("repetition", len(a) * n)
            return _imul(a, n)
        return guards.mul(a, b)

    for name, fn in (
        ("mul", guards.mul), ("add", guards.add), ("concat", guards.add),
        ("pow", guards.pow), ("ipow", guards.pow), ("lshift", guards.lshift),
        ("ilshift", guards.lshift), ("mod", guards.mod), ("imod", guards.mod),
        ("iadd", iadd), ("iconcat", iadd), ("imul", imul), ("sub", guards.sub),
        ("isub", guards.sub), ("truediv", guards.truediv), ("itruediv", guards.truediv),
        ("floordiv", guards.floordiv), ("ifloordiv", guards.floordiv),
    ):  # fmt: skip
        safe = (lambda f: lambda a, b, /: f(a, b))(fn)
        register(getattr(operator, name), safe, name)

    def prod(iterable: Any, /, *, start: Any = 1) -> Any:
        acc = start
        for x in budget.iterate(iterable):
            acc = guards.mul(acc, x)
        return acc

    register(math.prod, prod)

    def lcm(*ints: Any) -> int:
        bits = sum(guards.as_index(i).bit_length() for i in ints)
        guards.check_bits("math.lcm()", bits)
        return math.lcm(*ints)

    register(math.lcm, lcm)

    def safe_round(number: Any, ndigits: Any = None) -> Any:
        if ndigits is not None and not isinstance(number, float):
            nd = guards.as_index(ndigits)
            guards.check_bits("round() scale", abs(nd) * 3.33)
            return round(number, nd)
        return round(number) if ndigits is None else round(number, ndigits)

    guards.safe_round = safe_round

    # -- random: sizes before the work -------------------------------------------------------
    inst = random.Random

    def size_check(what: str, value: Any, bits: bool = False) -> int:
        n: int = guards.as_index(value)
        if bits:
            guards.check_bits(what, n)
        else:
            guards.check_size(what, n)
        return n

    def sample_check(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        k = args[1] if len(args) > 1 else kwargs.get("k")
        if k is not None:
            size_check("random.sample()", k)

    def choices_check(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        k = args[3] if len(args) > 3 else kwargs.get("k", 1)
        size_check("random.choices()", k)

    guards.by_method[(inst, "getrandbits")] = lambda o, a, k=None: size_check(
        "random.getrandbits()", a[0] if a else 0, bits=True
    )
    guards.by_method[(inst, "randbytes")] = lambda o, a, k=None: size_check(
        "random.randbytes()", a[0] if a else 0
    )
    guards.by_method[(inst, "sample")] = sample_check
    guards.by_method[(inst, "choices")] = choices_check
    for meth in ("sample", "choices"):
        guards.by_func[id(getattr(inst, meth))] = guards.by_method[(inst, meth)]

    # -- string.Template: the substituted text is bounded before it is built ----------------
    def template_check(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        values = list(kwargs.values())
        if args and isinstance(args[0], dict):
            values += list(args[0].values())
        longest = max((len(v) for v in values if isinstance(v, str)), default=0)
        text = getattr(owner, "template", "")
        if isinstance(text, str) and longest:
            guards.check_size("Template substitution", len(text) + text.count("$") * longest)

    for meth in ("substitute", "safe_substitute"):
        guards.by_func[id(getattr(string.Template, meth))] = template_check

    _ = (max_size, max_bits, types)
