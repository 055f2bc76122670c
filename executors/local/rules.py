"""The static rules of the policy: name tables, markers and small predicates (no state)."""

from __future__ import annotations

import types
from typing import Any

__all__ = [
    "CLASS_DUNDERS",
    "DEFAULT_AUTHORIZED_IMPORTS",
    "PLAIN_TYPES",
    "READABLE_DUNDERS",
    "SUPER_DUNDERS",
    "USER_CODES",
    "USER_CODE_IDS",
    "USER_MARK",
    "USER_MARK_NAME",
    "add_user_code",
    "is_dunder",
    "is_user_owned",
    "mark_safe",
]

DEFAULT_AUTHORIZED_IMPORTS: tuple[str, ...] = (
    "math", "cmath", "random", "statistics", "itertools", "functools", "operator",
    "collections", "collections.abc", "re", "json", "datetime", "time", "string",
    "unicodedata", "decimal", "fractions", "heapq", "bisect", "copy", "textwrap", "typing",
    "numbers", "abc",
)  # fmt: skip

# Marker set on classes and functions created by the sandboxed code (not an identifier: no
# attribute syntax or policy-checked route can read or write it).
USER_MARK_NAME = "@sb_user"


class _UserMark:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<sandbox-owned>"


USER_MARK = _UserMark()
# Code objects of the sandbox's functions (their calls take the interpreted fast paths).
USER_CODES: set[types.CodeType] = set()
# Their ids, for the membership tests on every call: hashing a code object walks its constants
# (~0.3 us), an id is one word. The objects stay alive in USER_CODES, so an id is never reused.
USER_CODE_IDS: set[int] = set()


def add_user_code(code: types.CodeType) -> None:
    USER_CODES.add(code)
    USER_CODE_IDS.add(id(code))


SAFE_MARK_NAME = "@sb_safe"  # set on the host's own safe closures (attrgetter results, ...)


def mark_safe(fn: Any) -> Any:
    fn.__dict__[SAFE_MARK_NAME] = True
    return fn


# Dunder names a class body may bind (protocol methods); everything else is refused.
CLASS_DUNDERS = frozenset(
    [
        "__init__",
        "__new__",
        "__repr__",
        "__str__",
        "__eq__",
        "__ne__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__hash__",
        "__bool__",
        "__len__",
        "__iter__",
        "__next__",
        "__reversed__",
        "__contains__",
        "__getitem__",
        "__setitem__",
        "__delitem__",
        "__missing__",
        "__call__",
        "__enter__",
        "__exit__",
        "__add__",
        "__radd__",
        "__iadd__",
        "__sub__",
        "__rsub__",
        "__isub__",
        "__mul__",
        "__rmul__",
        "__imul__",
        "__matmul__",
        "__rmatmul__",
        "__imatmul__",
        "__truediv__",
        "__rtruediv__",
        "__itruediv__",
        "__floordiv__",
        "__rfloordiv__",
        "__ifloordiv__",
        "__mod__",
        "__rmod__",
        "__imod__",
        "__divmod__",
        "__rdivmod__",
        "__pow__",
        "__rpow__",
        "__ipow__",
        "__lshift__",
        "__rlshift__",
        "__ilshift__",
        "__rshift__",
        "__rrshift__",
        "__irshift__",
        "__and__",
        "__rand__",
        "__iand__",
        "__or__",
        "__ror__",
        "__ior__",
        "__xor__",
        "__rxor__",
        "__ixor__",
        "__neg__",
        "__pos__",
        "__abs__",
        "__invert__",
        "__int__",
        "__float__",
        "__complex__",
        "__index__",
        "__round__",
        "__trunc__",
        "__floor__",
        "__ceil__",
        "__format__",
        "__post_init__",
        "__getattr__",
        "__setattr__",
        "__delattr__",
        "__get__",
        "__set__",
        "__delete__",
        "__set_name__",
        "__init_subclass__",
        "__class_getitem__",
        "__match_args__",
        "__slots__",
        "__doc__",
        "__instancecheck__",
        "__subclasscheck__",
        "__length_hint__",
        "__bytes__",
        "__sizeof__",
        "__dir__",
    ]
)
# Extra names native class factories (namedtuple, NamedTuple, dataclasses) put in a class dict.
_FACTORY_DUNDERS = frozenset(
    {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__annotations__",
     "__orig_bases__", "__getnewargs__", "__parameters__", "__abstractmethods__",
     "__dataclass_fields__", "__dataclass_params__", "__replace__"}
)  # fmt: skip
_DYNAMIC_CLASS_MODULES = frozenset({"executors.local.guards", "executors.local.natives"})

READABLE_DUNDERS = frozenset({"__name__", "__qualname__", "__doc__"})
# Dunder methods that may be called on a super() object (super().__init__(...)).
SUPER_DUNDERS = frozenset({
    "__init__", "__new__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__",
    "__gt__", "__ge__", "__hash__", "__len__", "__iter__", "__contains__", "__getitem__",
    "__setitem__", "__delitem__", "__post_init__", "__init_subclass__", "__enter__",
    "__exit__", "__format__", "__call__", "__bool__", "__add__", "__sub__", "__mul__",
    "__missing__",
})  # fmt: skip
_INTROSPECTION_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_", "func_", "im_")
_INTROSPECTION_NAMES = frozenset({"cell_contents", "mro_entries"})

# Roots of modules whose members are never handed out, whatever route produced them.
_DENIED_ROOTS = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "_posixsubprocess", "importlib", "io", "_io",
    "shutil", "socket", "_socket", "ctypes", "_ctypes", "pickle", "_pickle", "marshal", "gc",
    "inspect", "threading", "_thread", "multiprocessing", "_multiprocessing", "signal", "pty",
    "code", "codeop", "runpy", "weakref", "_weakref", "pathlib", "tempfile", "glob", "asyncio",
    "concurrent", "selectors", "select", "mmap", "resource", "fcntl", "ssl", "_ssl", "http",
    "urllib", "ftplib", "smtplib", "webbrowser", "zipimport", "pkgutil", "site", "sysconfig",
    "platform", "executors", "pydoc", "trace", "tracemalloc", "faulthandler", "sqlite3",
    "dbm", "shelve", "logging", "linecache", "traceback", "warnings", "atexit", "copyreg",
    "posixpath", "ntpath", "genericpath", "builtins", "_imp", "_frozen_importlib",
    "_frozen_importlib_external", "zipfile", "tarfile", "cffi", "_signal",
    "_tracemalloc", "sandbox_server", "agent", "pytest", "_pytest",
})  # fmt: skip

# Per-module members never handed out (they evaluate strings or reach attributes by name).
_DENIED_MEMBERS: dict[str, frozenset[str]] = {
    "typing": frozenset({"get_type_hints", "ForwardRef", "evaluate_forward_ref"}),
    "functools": frozenset({"singledispatch", "singledispatchmethod"}),
    "string": frozenset({"Formatter"}),
    "operator": frozenset({"attrgetter", "methodcaller"}),  # replaced by safe versions
    "random": frozenset({"SystemRandom"}),
    "io": frozenset({"open", "open_code", "FileIO"}),  # in-memory buffers only
}

_DENIED_TYPES: tuple[type, ...] = (
    types.FrameType,
    types.TracebackType,
    types.CodeType,
    types.CellType,
)

_SAFE_BUILTIN_NAMES = frozenset({
    "abs", "all", "any", "ascii", "bin", "callable", "chr", "divmod", "hash", "hex", "id",
    "isinstance", "issubclass", "iter", "len", "max", "min", "next", "oct", "ord", "repr",
    "round", "sorted", "sum", "aiter", "anext",
})  # fmt: skip

PLAIN_TYPES = frozenset({
    int, float, str, bool, type(None), bytes, list, tuple, dict, set, frozenset, complex,
    range, slice, bytearray, types.MethodType, type(Ellipsis), type(NotImplemented),
})  # fmt: skip


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name[:2] == "__" and name[-2:] == "__"


def is_user_owned(obj: object) -> bool:
    try:
        return getattr(obj, USER_MARK_NAME, None) is USER_MARK
    except Exception:
        return False


def _root(module_name: object) -> str:
    if not isinstance(module_name, str):
        return ""
    return module_name.split(".", 1)[0]
