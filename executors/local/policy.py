"""The security policy: which modules, attributes and values user code may reach.

Invariants, enforced on every path (attribute syntax, ``getattr`` & co., ``str.format`` field
paths, ``operator`` helpers, values returned by native code, tools):

* no dunder attribute is read, written or deleted (three harmless read-only ones excepted:
  ``__name__``, ``__qualname__``, ``__doc__``; and ``super().__init__``-style calls);
* ``_private`` names and introspection names (``gi_*``, ``f_*``, ``tb_*``, ``co_*``, ...) are
  only reachable on objects the sandboxed code created itself (its classes, instances, functions);
* a module is only ever handed out wrapped in a :class:`ModuleProxy`, and only if authorized;
* frames, tracebacks, code objects, cells, unsafe builtins and members of dangerous modules are
  never handed out, whichever native function produced them;
* attributes are only written on the sandbox's own objects (never on shared library classes).
"""

from __future__ import annotations

import builtins
import copy
import importlib
import sys
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .errors import SecurityError, SizeLimitExceeded
from .host_effects import HOST_ROOTS, RefusedAttribute, host_callable_error, never_reachable
from .library_guards import LIB_NAMES, LIB_ROOTS, LibraryGuards, wrap_value

__all__ = [
    "DEFAULT_AUTHORIZED_IMPORTS",
    "USER_MARK",
    "WATCHED_PLAIN",
    "ModuleProxy",
    "Policy",
    "is_dunder",
]

from .rules import (
    _DENIED_MEMBERS,
    _DENIED_ROOTS,
    _DENIED_TYPES,
    _DYNAMIC_CLASS_MODULES,
    _FACTORY_DUNDERS,
    _INTROSPECTION_NAMES,
    _INTROSPECTION_PREFIXES,
    _SAFE_BUILTIN_NAMES,
    CLASS_DUNDERS,
    DEFAULT_AUTHORIZED_IMPORTS,
    PLAIN_TYPES,
    READABLE_DUNDERS,
    SAFE_MARK_NAME,
    USER_CODE_IDS,
    USER_MARK,
    USER_MARK_NAME,
    _root,
    is_dunder,
    is_user_owned,
)


class ModuleProxy:
    """Base class of module wrappers; a subclass per module holds the module in a closure."""

    __slots__ = ()


class Policy:
    """The policy of one interpreter: authorized imports and the attribute/value rules."""

    def __init__(self, authorized_imports: Iterable[str]) -> None:
        patterns = [p.strip() for p in authorized_imports]
        self.allow_all = "*" in patterns
        self.exact = frozenset(p for p in patterns if not p.endswith(".*") and p != "*")
        self.prefixes = tuple(p[:-2] for p in patterns if p.endswith(".*"))
        self._proxies: dict[str, ModuleProxy] = {}
        self.overrides: dict[str, dict[str, Any]] = {}  # module -> member -> safe replacement
        self.safe_ids: set[int] = set()  # our own safe callables, allowed wherever they flow
        self.builtin_replacements: dict[int, Any] = {}  # id(real builtin) -> safe version
        # id(real library callable) -> safe version, whatever route hands the real one out
        self.func_replacements: dict[int, Any] = {}
        self._registered: weakref.WeakSet[type] = weakref.WeakSet()
        self._environ: dict[str, str] | None = None  # the sandbox's copy of os.environ
        self.safe_builtin_ids = {id(getattr(builtins, n)) for n in _SAFE_BUILTIN_NAMES}
        self.lib = LibraryGuards(self)  # numpy/pandas/matplotlib readers, writers, eval...

    # -- imports ---------------------------------------------------------------------------
    def is_authorized(self, name: str) -> bool:
        if self.allow_all or name in self.exact:
            return True
        return any(name == p or name.startswith(p + ".") for p in self.prefixes)

    def import_module(self, name: str) -> ModuleProxy:
        if not self.is_authorized(name) or name.startswith(".") or not name:
            raise SecurityError(
                f"import of {name} is not allowed; authorized imports: {self.describe()}"
            )
        module = importlib.import_module(name)
        return self.proxy(module)

    def describe(self) -> str:
        if self.allow_all:
            return "* (everything)"
        return ", ".join(sorted(self.exact | {p + ".*" for p in self.prefixes}))

    def proxy(self, module: types.ModuleType) -> ModuleProxy:
        name = module.__name__
        proxy = self._proxies.get(name)
        if proxy is not None:
            return proxy
        resolve = self._module_attr
        names = self._public_names

        class _Proxy(ModuleProxy):
            __slots__ = ()

            def __getattr__(self, attr: str) -> Any:
                try:
                    return resolve(module, attr)
                except RefusedAttribute:
                    raise
                except SecurityError as e:
                    # uncatchable in the sandbox; an AttributeError to host code (hasattr...)
                    raise RefusedAttribute(e.message) from None

            def __setattr__(self, attr: str, value: Any) -> None:
                raise SecurityError(f"cannot assign attributes of module {name}")

            def __delattr__(self, attr: str) -> None:
                raise SecurityError(f"cannot delete attributes of module {name}")

            def __repr__(self) -> str:
                return f"<module {name!r} (sandboxed)>"

            def __dir__(self) -> list[str]:
                return names(module)

            def __reduce__(self) -> Any:
                raise TypeError(f"cannot pickle or copy module {name}")

            def __reduce_ex__(self, protocol: Any) -> Any:
                raise TypeError(f"cannot pickle or copy module {name}")

        _Proxy.__name__ = _Proxy.__qualname__ = "module"
        proxy = _Proxy()
        self._proxies[name] = proxy
        return proxy

    def _public_names(self, module: types.ModuleType) -> list[str]:
        denied = _DENIED_MEMBERS.get(module.__name__, frozenset())
        over = self.overrides.get(module.__name__, {})
        out = []
        for n in dir(module):
            if (
                n.startswith("_")
                or (n in denied and n not in over)
                or never_reachable(_host_root(module.__name__), n)
            ):
                continue
            out.append(n)
        return out

    def _module_attr(self, module: types.ModuleType, attr: str) -> Any:
        mname = module.__name__
        if not isinstance(attr, str):
            raise TypeError("attribute name must be string")
        if attr == "__name__":
            return mname
        if attr == "__doc__":
            return module.__doc__
        if attr.startswith("_"):
            raise SecurityError(
                f"access to private attribute {attr!r} of module {mname} is not allowed"
            )
        over = self.overrides.get(mname)
        if over is not None and attr in over:
            return over[attr]
        if attr in _DENIED_MEMBERS.get(mname, ()) or never_reachable(_host_root(mname), attr):
            raise SecurityError(f"{mname}.{attr} is not allowed in the sandbox")
        try:
            value = getattr(module, attr)
        except AttributeError:
            sub = f"{mname}.{attr}"
            if self.is_authorized(sub):
                try:
                    return self.import_module(sub)
                except ImportError:
                    pass
            raise AttributeError(f"module {mname!r} has no attribute {attr!r}") from None
        if isinstance(value, types.ModuleType):
            if not self.is_authorized(value.__name__):
                raise SecurityError(
                    f"module {value.__name__} is not authorized (reached as {mname}.{attr})"
                )
            return self.proxy(value)
        if type(value) in _SHARED_MUTABLE or type(value).__name__ == "_Environ":
            # Module-level containers and contexts (copy.dispatch_table, decimal.DefaultContext)
            # are shared with the host and every other sandbox: hand out a private copy.
            # os.environ: a plain copy (the host's environment is not the sandbox's to change)
            if type(value).__name__ == "_Environ":
                if self._environ is None:
                    self._environ = dict(value)
                return self._environ
            return copy.copy(value)
        if type(value) is types.MethodType:  # multiprocessing.Array: a bound method
            return self.plain_hook(module, value, types.MethodType)
        return self.guard(value)

    # -- values ----------------------------------------------------------------------------
    def guard(self, value: Any) -> Any:
        """Let a value produced by native code into the sandbox, or refuse it."""
        if type(value) in PLAIN_TYPES:
            return value
        return self.guard_slow(value)

    def guard_slow(self, value: Any) -> Any:
        t = type(value)
        if getattr(t, USER_MARK_NAME, None) is USER_MARK and not isinstance(value, type):
            return value  # an instance of a sandbox class (classes made by metaclasses: below)
        if isinstance(value, types.ModuleType):
            if not self.is_authorized(value.__name__):
                raise SecurityError(f"module {value.__name__} is not authorized")
            return self.proxy(value)
        if isinstance(value, _DENIED_TYPES):
            raise SecurityError(f"access to {t.__name__} objects is not allowed")
        if id(value) in self.safe_ids:
            return value
        repl = self.func_replacements.get(id(value))
        if repl is not None:
            return repl
        if t in _HOST_CHECKED and not (
            t is types.FunctionType and (SAFE_MARK_NAME in value.__dict__ or is_user_owned(value))
        ):
            err = host_callable_error(value)  # os.remove as a value, os.system at all...
            if err is not None:
                raise err
        if t in _NAMED_CALLABLES or isinstance(value, type):
            # numpy/pandas/matplotlib file readers/writers, pickle, eval, settings, by name
            name = getattr(value, "__name__", None)
            if name in LIB_NAMES:
                safe = self.lib.wrap(value, name)
                if safe is not value:
                    return safe
        if t is types.BuiltinFunctionType:
            owner = value.__self__
            if owner is builtins:
                safe = self.builtin_replacements.get(id(value))
                if safe is not None:
                    return safe
                if id(value) in self.safe_builtin_ids:
                    return value
                raise SecurityError(f"builtin {value.__name__} is not available in the sandbox")
            if isinstance(owner, types.ModuleType):
                if self.root_denied(owner.__name__):
                    raise SecurityError(f"{owner.__name__}.{value.__name__} is not allowed")
                return value
            if isinstance(owner, str) and value.__name__ in ("format", "format_map"):
                return self.safe_str_method(value.__name__, owner)
            if isinstance(owner, (ModuleProxy, types.FrameType)):
                raise SecurityError("access to this bound method is not allowed")
            return value
        if t is types.MethodDescriptorType or t is types.ClassMethodDescriptorType:
            objclass = value.__objclass__
            if issubclass(objclass, str) and value.__name__ in ("format", "format_map"):
                return self.safe_str_method(value.__name__, None)
            return value
        if isinstance(value, type):
            if value.__module__ in _DYNAMIC_CLASS_MODULES and not is_user_owned(value):
                return self.adopt_class(value)
            if value.__flags__ & _HEAPTYPE and not is_user_owned(value):
                self.check_library_class(value)
            if self.root_denied(value.__module__) and value.__module__ != "builtins":
                raise SecurityError(f"class {value.__module__}.{value.__qualname__} is not allowed")
            if value.__module__ == "builtins" and value.__name__ in ("type",):
                return value
            return value
        if t is types.FunctionType or t is types.BuiltinMethodType or t is functools_partial:
            if t is types.FunctionType and SAFE_MARK_NAME in value.__dict__:
                return value
            if not is_user_owned(value):
                mod = getattr(value, "__module__", None)
                if self.root_denied(mod):
                    raise SecurityError(
                        f"{mod}.{getattr(value, '__qualname__', '?')} is not allowed"
                    )
            return value
        mod = getattr(t, "__module__", "")
        if _root(mod) in LIB_ROOTS:
            name = getattr(value, "__name__", None) if callable(value) else None
            if type(name) is str and name in LIB_NAMES:  # numpy's dispatchers (np.save...)
                return self.lib.wrap(value, name)
            return wrap_value(self.lib, value)  # rcParams, df.plot
        if (
            self.root_denied(mod)
            and mod != "builtins"
            and not isinstance(value, (BaseException, ModuleProxy))
        ):
            raise SecurityError(f"objects of type {mod}.{t.__qualname__} are not allowed")
        return value

    def check_library_class(self, cls: type) -> None:
        """A class native code returned that its module does not define (made at run time by
        ``make_dataclass(namespace=...)``, ``Enum(...)``...): its namespace obeys the class-body
        rules, like a class statement's."""
        if cls in self._registered:
            return
        obj: Any = sys.modules.get(cls.__module__)
        for part in cls.__qualname__.split("."):
            obj = getattr(obj, part, None) if obj is not None else None
        if obj is not cls:
            for key in vars(cls):
                if is_dunder(key) and key not in CLASS_DUNDERS and key not in _FACTORY_DUNDERS:
                    raise SecurityError(f"special name {key!r} cannot be defined in the sandbox")
        self._registered.add(cls)

    def adopt_class(self, cls: type) -> type:
        """A class a native factory (``type()``, NamedTuple(...)) built for the sandbox: it must
        obey the class-body rules; then it is the sandbox's own."""
        if cls.__qualname__ in ("Guards", "FinalAnswer") or "<locals>" in cls.__qualname__:
            raise SecurityError(f"class {cls.__qualname__} is not available in the sandbox")
        for key in vars(cls):
            if is_dunder(key) and key not in CLASS_DUNDERS and key not in _FACTORY_DUNDERS:
                raise SecurityError(f"special name {key!r} cannot be defined in the sandbox")
        type.__setattr__(cls, USER_MARK_NAME, USER_MARK)
        type.__setattr__(cls, "__module__", "__selfbox__")
        return cls

    def root_denied(self, module_name: object) -> bool:
        """Members of these modules are refused unless the user authorized the module itself."""
        root = _root(module_name)
        if root not in _DENIED_ROOTS:
            return False
        if root in ("posix", "nt", "posixpath", "ntpath", "genericpath"):
            root = "os"
        elif root == "_io":
            root = "io"  # io.StringIO is _io.StringIO (io.open and FileIO: _DENIED_MEMBERS)
        return not (
            self.is_authorized(root)
            or (isinstance(module_name, str) and self.is_authorized(module_name))
        )

    def safe_str_method(self, name: str, owner: str | None) -> Callable[..., Any]:
        fmt: Callable[..., Any] = self.overrides["@str"][name]
        if owner is None:
            return fmt
        return types.MethodType(fmt, owner)

    # -- attributes ------------------------------------------------------------------------
    def check_name(self, obj: object, name: object, action: str) -> str:
        if type(name) is not str:
            if isinstance(name, str):
                name = str.__str__(name)
            else:
                raise TypeError(f"attribute name must be string, not {type(name).__name__!r}")
        assert isinstance(name, str)
        if is_dunder(name):
            if action == "read" and name in READABLE_DUNDERS:
                return name
            raise SecurityError(f"{action} of dunder attribute {name!r} is not allowed")
        if not name.isidentifier():
            raise SecurityError(f"attribute name {name!r} is not allowed")
        if (
            name[0] == "_"
            or name.startswith(_INTROSPECTION_PREFIXES)
            or name in _INTROSPECTION_NAMES
        ) and not is_user_owned(obj):
            raise SecurityError(
                f"{action} of attribute {name!r} of {type(obj).__name__} objects is not allowed"
            )
        return name

    def get_attr(self, obj: Any, name: Any) -> Any:
        name = self.check_name(obj, name, "read")
        if name in ("format", "format_map"):
            owner = obj if isinstance(obj, type) else type(obj)
            # str's own format (not a user override in a str subclass) gets the safe version
            if issubclass(owner, str) and getattr(owner, name) is getattr(str, name):
                return self.safe_str_method(name, None if isinstance(obj, type) else obj)
        value = getattr(obj, name)
        tv = type(value)
        if tv in PLAIN_TYPES:
            return self.plain_hook(obj, value, tv) if tv in WATCHED_PLAIN else value
        return self.guard_slow(value)

    def plain_hook(self, obj: Any, value: Any, tv: type) -> Any:
        """Plain values that still need a look: bound methods of replaced functions, and the
        containers of library classes (shared with the host and every other sandbox)."""
        if tv is types.MethodType:
            func = value.__func__
            if type(func) is types.FunctionType and id(func.__code__) in USER_CODE_IDS:
                return value
            if _root(getattr(func, "__module__", None)) in HOST_ROOTS:
                err = host_callable_error(value)  # logger.info, thread.start as values
                if err is not None:
                    raise err
            repl = self.func_replacements.get(id(value.__func__))
            if repl is not None:  # Mapping.register -> the checked register
                return types.MethodType(repl, value.__self__)
            if getattr(value.__func__, "__name__", None) in LIB_NAMES:
                return self.lib.wrap(value, value.__func__.__name__)
        elif isinstance(obj, type) and not is_user_owned(obj):
            return copy.copy(value)
        return value

    def set_attr(self, obj: Any, name: Any, value: Any) -> None:
        name = self.check_name(obj, name, "assignment")
        self.check_writable(obj, name)
        if type(obj) in _WRITABLE_NATIVE_TYPES and isinstance(value, int) and abs(value) > 100_000:
            raise SizeLimitExceeded(f"decimal context {name}={value} is above the size budget")
        setattr(obj, name, value)

    def del_attr(self, obj: Any, name: Any) -> None:
        name = self.check_name(obj, name, "deletion")
        self.check_writable(obj, name)
        delattr(obj, name)

    def check_writable(self, obj: Any, name: str) -> None:
        if is_user_owned(obj):
            return
        if type(obj) in _WRITABLE_NATIVE_TYPES:
            return
        if isinstance(obj, BaseException) and not isinstance(obj, type):
            return
        raise SecurityError(
            f"cannot set or delete attribute {name!r} of {type(obj).__name__} objects "
            "(only objects created by the sandboxed code are writable)"
        )


functools_partial = __import__("functools").partial


def _host_root(module_name: str) -> str:
    root = _root(module_name)
    return {"posix": "os", "nt": "os", "_signal": "signal"}.get(root, root)


_WRITABLE_NATIVE_TYPES = (__import__("decimal").Context,)
_SHARED_MUTABLE = frozenset({dict, list, set, bytearray, *_WRITABLE_NATIVE_TYPES})
WATCHED_PLAIN = frozenset({dict, list, set, bytearray, types.MethodType})
_NAMED_CALLABLES = frozenset(
    {types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType}
)
_HOST_CHECKED = frozenset({
    types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
    types.ClassMethodDescriptorType, types.WrapperDescriptorType, types.MethodWrapperType,
    functools_partial,
})  # fmt: skip
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: classes made at run time (not static C types)
