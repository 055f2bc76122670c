"""The builtins the sandbox sees, and safe replacements for the dangerous ones.

No ``eval``/``exec``/``compile``/``open``/``__import__``/``globals``/``locals``/``vars``/
``breakpoint``/``input``/``help``/``exit``. ``getattr``/``setattr``/``hasattr``/``delattr``,
``str.format``, ``format``, ``operator.attrgetter``/``methodcaller`` and ``dir`` go through the
policy; ``print`` writes to the budgeted output; ``time.sleep`` cannot outlive the deadline.
"""

from __future__ import annotations

import builtins
import collections
import functools
import string
import time
from collections.abc import Callable
from typing import Any, cast

from .budget import Budget
from .errors import FinalAnswerSignal, InterpreterError, SecurityError, TimeoutExceeded
from .guards import Guards
from .policy import Policy
from .rules import USER_MARK, USER_MARK_NAME, is_user_owned, mark_safe
from .stdlib_safe import install_stdlib_safe

__all__ = ["FinalAnswer", "make_builtins"]

_PLAIN_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "classmethod", "complex", "dict", "divmod", "enumerate", "filter", "float", "frozenset",
    "hash", "hex", "id", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max",
    "min", "next", "object", "oct", "ord", "property", "range", "repr", "reversed", "round",
    "set", "slice", "sorted", "staticmethod", "str", "sum", "tuple", "type", "zip",
    "NotImplemented", "Ellipsis", "True", "False", "None",
)  # fmt: skip

_NOTHING = object()


class FinalAnswer:
    """The ``final_answer`` callable: ends the run with its argument."""

    __slots__ = ()

    def __call__(self, answer: Any = None, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            raise TypeError("final_answer() takes exactly one argument")
        raise FinalAnswerSignal(answer)

    def __repr__(self) -> str:
        return "<tool final_answer>"


def make_builtins(budget: Budget, policy: Policy, guards: Guards) -> dict[str, Any]:
    """Build the builtins mapping of one interpreter (and register the safe replacements)."""
    table: dict[str, Any] = {name: getattr(builtins, name) for name in _PLAIN_BUILTINS}
    for name in dir(builtins):
        obj = getattr(builtins, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            table[name] = obj
    max_width = guards.max_width

    def check_spec(spec: str) -> None:
        if spec:
            guards.check_width(spec)

    class _SafeFormatter(string.Formatter):
        # The text built is counted: '{a}' * 10**6 with one big ``a`` is small until it is
        # formatted.
        total = 0

        def vformat(self, format_string: Any, args: Any, kwargs: Any) -> str:
            self.total = len(format_string) if isinstance(format_string, str) else 0
            return super().vformat(format_string, args, kwargs)

        def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
            first, rest = _field_split(field_name)
            rest = list(rest)
            for is_attr, key in rest:
                if is_attr:
                    policy.check_name(None, key, "read")
            obj = self.get_value(first, args, kwargs)
            for is_attr, key in rest:
                obj = policy.get_attr(obj, key) if is_attr else policy.guard(obj[key])
            return obj, first

        def format_field(self, value: Any, format_spec: str) -> Any:
            check_spec(format_spec)
            guards.check_text_size("str.format()", self.total, value)
            out = format(value, format_spec)
            self.total += len(out) if isinstance(out, str) else 0
            if self.total > guards.max_size:
                raise guards.too_big("str.format() result", self.total)
            return out

    # string.Formatter for the sandbox: the same checked field lookups and sizes (subclasses
    # the sandbox defines run their overrides as sandboxed code). The real class and its
    # unchecked methods are replaced on every route that could hand them out (mro()...).
    _SafeFormatter.__name__ = _SafeFormatter.__qualname__ = "Formatter"
    _SafeFormatter.__module__ = "string"
    policy.overrides["string"] = {"Formatter": _SafeFormatter}
    policy.func_replacements[id(string.Formatter)] = _SafeFormatter
    for meth in ("get_field", "format_field", "vformat"):
        getattr(_SafeFormatter, meth).__module__ = "string"
        policy.func_replacements[id(getattr(string.Formatter, meth))] = getattr(
            _SafeFormatter, meth
        )
    formatter = _SafeFormatter()

    def str_format(self: str, /, *args: Any, **kwargs: Any) -> str:
        if not isinstance(self, str):
            raise TypeError("descriptor 'format' requires a 'str' object")
        return formatter.vformat(self, args, kwargs)

    def str_format_map(self: str, mapping: Any, /) -> str:
        if not isinstance(self, str):
            raise TypeError("descriptor 'format_map' requires a 'str' object")
        return formatter.vformat(self, (), mapping)

    str_format.__name__ = "format"
    str_format_map.__name__ = "format_map"
    policy.overrides["@str"] = {"format": str_format, "format_map": str_format_map}

    def safe_format(value: Any, format_spec: str = "") -> str:
        if isinstance(format_spec, str):
            check_spec(format_spec)
        guards.check_text_size("format()", 0, value)
        return format(value, format_spec)

    def safe_getattr(obj: Any, name: Any, default: Any = _NOTHING) -> Any:
        try:
            return policy.get_attr(obj, name)
        except InterpreterError:
            raise  # a policy refusal (also an AttributeError for host code)
        except AttributeError:
            if default is _NOTHING:
                raise
            return default

    def safe_hasattr(obj: Any, name: Any) -> bool:
        try:
            policy.get_attr(obj, name)
        except InterpreterError:
            raise  # a policy refusal (also an AttributeError for host code)
        except AttributeError:
            return False
        return True

    def safe_setattr(obj: Any, name: Any, value: Any) -> None:
        policy.set_attr(obj, name, value)

    def safe_delattr(obj: Any, name: Any) -> None:
        policy.del_attr(obj, name)

    def safe_dir(*args: Any) -> list[str]:
        if not args:
            raise SecurityError("dir() without arguments is not available in the sandbox")
        (obj,) = args
        names = dir(obj)
        if is_user_owned(obj):
            return [
                n for n in names if not (n.startswith("__") and n.endswith("__")) and n[0] != "@"
            ]
        return [n for n in names if not n.startswith("_")]

    def safe_print(
        *args: Any, sep: Any = " ", end: Any = "\n", file: Any = None, flush: bool = False
    ) -> None:
        if file is not None:
            raise SecurityError("print(file=...) is not available in the sandbox")
        if sep is None:
            sep = " "
        if end is None:
            end = "\n"
        if not isinstance(sep, str) or not isinstance(end, str):
            raise TypeError("sep and end must be None or strings")
        for a in args:
            guards.check_text_size("print()", 0, a)
        budget.write(sep.join([str(a) for a in args]) + end)

    def safe_pow(base: Any, exp: Any, mod: Any = None) -> Any:
        return guards.pow(base, exp, mod)

    def safe_sum(iterable: Any, /, start: Any = 0) -> Any:
        if isinstance(start, (str, bytes, bytearray)):
            raise TypeError("sum() can't sum strings [use ''.join(seq) instead]")
        if type(start) is list or type(start) is tuple:
            # Linear, budgeted concatenation instead of CPython's quadratic list + list.
            acc = list(start)
            kind = type(start)
            for item in budget.iterate(iterable):
                if type(item) is not kind:
                    raise TypeError(
                        f'can only concatenate {kind.__name__} (not "{type(item).__name__}") '
                        f"to {kind.__name__}"
                    )
                acc.extend(item)
                if len(acc) > guards.max_size:
                    guards.check_size("sum() result", len(acc))
            return acc if kind is list else tuple(acc)
        return sum(iterable, start)

    def safe_super(*args: Any) -> Any:
        if not args:
            raise RuntimeError("super(): no arguments")
        return super(*args)

    def attrgetter(*names: str) -> Callable[[Any], Any]:
        for n in names:
            if not isinstance(n, str):
                raise TypeError("attribute name must be a string")
        paths = [n.split(".") for n in names]

        def get(obj: Any) -> Any:
            out = []
            for path in paths:
                v = obj
                for part in path:
                    v = policy.get_attr(v, part)
                out.append(v)
            return out[0] if len(out) == 1 else tuple(out)

        return cast("Callable[[Any], Any]", mark_safe(get))

    def methodcaller(name: str, /, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        if not isinstance(name, str):
            raise TypeError("method name must be a string")

        def call(obj: Any) -> Any:
            return guards.call_native(policy.get_attr(obj, name), list(args), kwargs)

        return cast("Callable[[Any], Any]", mark_safe(call))

    def safe_sleep(seconds: float) -> None:
        seconds = float(seconds)
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        remaining = budget.remaining_time()
        if seconds > remaining:
            time.sleep(max(remaining, 0))
            raise budget.timeout_now()
        time.sleep(seconds)
        budget.left -= 1
        if budget.left < 0:
            budget.refill()

    _ = TimeoutExceeded
    install_stdlib_safe(policy, guards, budget)

    def safe_round(number: Any, ndigits: Any = None) -> Any:
        return guards.safe_round(number, ndigits)

    def safe_divmod(a: Any, b: Any, /) -> Any:
        return guards.divmod(a, b)

    replacements = {
        "getattr": safe_getattr,
        "hasattr": safe_hasattr,
        "setattr": safe_setattr,
        "delattr": safe_delattr,
        "format": safe_format,
        "print": safe_print,
        "pow": safe_pow,
        "super": safe_super,
        "dir": safe_dir,
        "sum": safe_sum,
        "round": safe_round,
        "divmod": safe_divmod,
    }
    table.update(replacements)
    for name, fn in replacements.items():
        fn.__name__ = name
        fn.__qualname__ = name
        policy.builtin_replacements[id(getattr(builtins, name))] = fn
    policy.overrides["operator"] = {"attrgetter": attrgetter, "methodcaller": methodcaller}
    policy.overrides["time"] = {"sleep": safe_sleep}

    def namedtuple(
        typename: str,
        field_names: Any,
        *,
        rename: bool = False,
        defaults: Any = None,
        module: Any = None,
    ) -> type:
        cls = cast(Any, collections.namedtuple)(
            typename, field_names, rename=rename, defaults=defaults, module="__selfbox__"
        )
        type.__setattr__(cls, USER_MARK_NAME, USER_MARK)  # a fresh class: the sandbox's own
        return cast(type, cls)

    policy.overrides["collections"] = {"namedtuple": namedtuple}

    def reduce(function: Any, iterable: Any, *initial: Any) -> Any:
        # Every item is budgeted (and the clock looked at often): the folding function may be
        # a native doing work proportional to the accumulator (operator.add on lists).
        return functools.reduce(function, budget.iterate(iterable), *initial)

    allowed_assigned = frozenset(functools.WRAPPER_ASSIGNMENTS)
    allowed_updated = frozenset(functools.WRAPPER_UPDATES)

    def update_wrapper(
        wrapper: Any,
        wrapped: Any,
        assigned: Any = functools.WRAPPER_ASSIGNMENTS,
        updated: Any = functools.WRAPPER_UPDATES,
    ) -> Any:
        # The native version reads and writes attributes by (dunder) name: only the standard
        # names, and only onto the sandbox's own objects.
        if not is_user_owned(wrapper):
            raise SecurityError("update_wrapper() can only update functions defined in the sandbox")
        if not (set(assigned) <= allowed_assigned and set(updated) <= allowed_updated):
            raise SecurityError("update_wrapper() only copies the standard attributes")
        return functools.update_wrapper(wrapper, wrapped, tuple(assigned), tuple(updated))

    def wraps(
        wrapped: Any,
        assigned: Any = functools.WRAPPER_ASSIGNMENTS,
        updated: Any = functools.WRAPPER_UPDATES,
    ) -> Any:
        def decorator(wrapper: Any) -> Any:
            return update_wrapper(wrapper, wrapped, assigned, updated)

        return mark_safe(decorator)

    policy.overrides["functools"] = {
        "reduce": reduce,
        "update_wrapper": update_wrapper,
        "wraps": wraps,
    }
    for fn in (reduce, update_wrapper, wraps):
        policy.safe_ids.add(id(fn))
    policy.safe_ids.add(id(namedtuple))
    for fn in (
        *replacements.values(),
        str_format,
        str_format_map,
        attrgetter,
        methodcaller,
        safe_sleep,
    ):
        policy.safe_ids.add(id(fn))
    guards.no_wrap.update(id(f) for f in (safe_getattr, safe_hasattr, safe_setattr, safe_print))
    _ = max_width
    return table


def _field_split(field_name: str) -> tuple[Any, Any]:
    import _string  # the parser str.format itself uses

    return cast("tuple[Any, Any]", _string.formatter_field_name_split(field_name))
