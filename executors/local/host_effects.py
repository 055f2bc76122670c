"""Callables with host effects: never kept by the sandbox, never handed to code that keeps them.

The audit hook (:mod:`.host_audit`) and the policy stop a file, process or network effect while
sandboxed code runs, on the run's thread. A callable *stored* for the host to call later (a fork
hook, ``atexit``, a signal handler, a thread, a finalizer, a logging filter, a ``defaultdict``
factory, an implicit dunder of a class, a lazy ``map`` handed to a tool...) would run outside
that window. Rather than list the storing APIs, two class-level rules make the whole family
harmless:

1. **No host-effect callable is ever a value.** A callable whose home is a host-runtime module
   (``os``, ``sys``, ``signal``, ``threading``, ``atexit``, ``weakref``, ``codecs``,
   ``logging``, ... :data:`HOST_ROOTS`), or a bound method of such a module's object, may be
   called where it is looked up (``os.listdir(".")``, ``logger.info(...)``) but never stored,
   passed or returned (:class:`CallOnly`); a short list of read-only helpers is exempt
   (:data:`_VALUE_OK`). Process control (``os.system``, ``popen``, ``exec*``, ``spawn*``,
   ``fork``, ``kill``, ``register_at_fork``, signal handlers...) is not reachable at all
   (:func:`never_reachable`). So every callable the sandbox can hold is either its own (inert
   outside a run: :class:`~.errors.InterpreterNotRunning`) or free of host effects.
2. **Host-runtime code is never handed a callable or a sandbox object** (positional, keyword,
   inside a container, or as the bound ``self``), and host-runtime classes are handed to no
   native code but ``isinstance``/``issubclass`` (:func:`check_host_call`). This closes the
   registrars themselves (``atexit.register(f)``, ``signal.signal``, ``sys.settrace``,
   ``threading.Thread(target=f)``, ``weakref.finalize``, ``codecs.register``,
   ``copyreg.pickle``, ``logger.addFilter``, ``setLoggerClass``...) whatever their name, and
   the native higher-order routes to them (``map(weakref.finalize, ...)``, ``partial``).

Module-level containers (``sys.meta_path``, ``gc.callbacks``, ``copyreg.dispatch_table``) are
handed out as copies and module attributes are read-only (:mod:`.policy`), so appending to or
assigning a hook (``sys.excepthook = f``) changes nothing in the host.
"""

from __future__ import annotations

import io
import re
import types
from functools import partial
from typing import Any

from .errors import SecurityError

__all__ = [
    "HOST_ROOTS",
    "CallOnly",
    "RefusedAttribute",
    "check_host_call",
    "home_root",
    "host_callable_error",
    "never_reachable",
]


class RefusedAttribute(SecurityError, AttributeError):
    """A policy refusal raised by a module proxy's attribute lookup: sandboxed code cannot catch
    it (a :class:`SecurityError`), host code inspecting the proxy after a run sees an ordinary
    ``AttributeError`` (``hasattr`` is false, ``getattr(m, name, default)`` gives the default)."""


class CallOnly(RefusedAttribute):
    """A host-effect callable looked up as a value; a call site looking it up to call it at
    once takes :attr:`value` from the error."""

    def __init__(self, message: str, value: Any) -> None:
        super().__init__(message)
        self.value = value


# Reported under the policy's one name (they are SecurityErrors to the sandbox).
for _cls in (RefusedAttribute, CallOnly):
    _cls.__name__ = _cls.__qualname__ = "SecurityError"

# Roots of the modules whose callables act on the host process (files, processes, threads,
# signals, interpreter hooks, registries the host consults later).
HOST_ROOTS = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "_posixsubprocess", "importlib", "io", "_io",
    "shutil", "socket", "_socket", "ctypes", "_ctypes", "pickle", "_pickle", "marshal", "gc",
    "inspect", "threading", "_thread", "multiprocessing", "_multiprocessing", "signal",
    "_signal", "pty", "code", "codeop", "runpy", "weakref", "_weakref", "pathlib", "tempfile",
    "glob", "asyncio", "_asyncio", "concurrent", "selectors", "select", "mmap", "resource",
    "fcntl", "ssl", "_ssl", "http", "urllib", "ftplib", "smtplib", "webbrowser", "zipimport",
    "pkgutil", "site", "sysconfig", "platform", "pydoc", "trace", "tracemalloc",
    "_tracemalloc", "faulthandler", "sqlite3", "_sqlite3", "dbm", "shelve", "logging",
    "linecache", "traceback", "warnings", "_warnings", "atexit", "copyreg", "_imp",
    "_frozen_importlib", "_frozen_importlib_external", "zipfile", "tarfile", "cffi", "codecs",
    "_codecs", "readline", "tkinter", "_tkinter", "unittest", "sched", "contextvars",
    "_contextvars",
})  # fmt: skip
_ALIASES = {"posix": "os", "nt": "os", "_signal": "signal", "_io": "io", "_codecs": "codecs"}

# Read-only helpers of host modules that are harmless to keep (``key=os.path.getsize``...);
# os.path itself (posixpath/genericpath) is not a host root.
_VALUE_OK: dict[str, frozenset[str]] = {
    "os": frozenset({
        "getcwd", "getcwdb", "listdir", "scandir", "stat", "lstat", "fspath", "fsencode",
        "fsdecode", "getenv", "cpu_count", "getpid", "getppid", "urandom", "get_terminal_size",
        "strerror", "walk", "access", "uname", "times", "getloadavg", "get_exec_path",
        "device_encoding", "getlogin", "getuid", "getgid", "geteuid", "getegid",
    }),
    "sys": frozenset({
        "getsizeof", "getrecursionlimit", "getdefaultencoding", "getfilesystemencoding",
        "intern", "is_finalizing",
    }),
    "platform": frozenset({
        "system", "machine", "release", "version", "python_version", "python_version_tuple",
        "platform", "node", "processor", "architecture", "uname", "python_implementation",
    }),
    "threading": frozenset({"current_thread", "get_ident", "active_count", "main_thread"}),
    "shutil": frozenset({"which", "disk_usage", "get_terminal_size"}),
}  # fmt: skip

# Process control, signal handling and process-wide settings: not reachable at all, even
# where called.
_NEVER: dict[str, re.Pattern[str]] = {
    "os": re.compile(
        r"(system|popen|startfile|exec[lv]p?e?|spawn[lv]p?e?|posix_spawnp?|fork|forkpty|vfork"
        r"|kill|killpg|abort|register_at_fork|plock|_exit|set\w+|umask|nice|chdir|fchdir"
        r"|chroot|putenv|unsetenv|sched_set\w+)"
    ),
    "pty": re.compile(r"(spawn|fork)"),
    # process-wide settings of the host (not callbacks, but they outlive the run the same way)
    "sys": re.compile(r"(set\w*|_\w*|activate_stack_trampoline)"),
    "gc": re.compile(r"(disable|enable|freeze|unfreeze|set_threshold|set_debug)"),
    "tracemalloc": re.compile(r"(start|stop|clear_traces)"),
    "faulthandler": re.compile(r"(?!is_enabled$)\w+"),
    "logging": re.compile(
        r"(disable|basicConfig|captureWarnings|setLoggerClass|setLogRecordFactory"
        r"|addLevelName|shutdown)"
    ),
    "threading": re.compile(r"(settrace\w*|setprofile\w*|stack_size|excepthook)"),
    "signal": re.compile(
        r"(signal|setitimer|alarm|pthread_kill|raise_signal|set_wakeup_fd|siginterrupt"
        r"|pthread_sigmask)"
    ),
}
# In-memory buffers of io: ordinary values.
_PLAIN_OWNERS = (io.StringIO, io.BytesIO)


def _root(module_name: object) -> str:
    if not isinstance(module_name, str):
        return ""
    root = module_name.partition(".")[0]
    return _ALIASES.get(root, root)


def home_root(fn: Any) -> str:
    """The (alias-resolved) root of the module a callable belongs to, or ``""``."""
    t = type(fn)
    if t is types.BuiltinFunctionType:  # builtin functions and bound builtin methods
        owner = fn.__self__
        if owner is None or isinstance(owner, types.ModuleType):
            return _root(getattr(owner, "__name__", None) or getattr(fn, "__module__", None))
        if isinstance(owner, _PLAIN_OWNERS):
            return ""
        if isinstance(owner, type):  # a classmethod of a builtin type
            return _root(owner.__module__)
        return _root(type(owner).__module__)
    if t is types.MethodType:
        if isinstance(fn.__self__, _PLAIN_OWNERS):
            return ""
        return _root(getattr(fn.__func__, "__module__", None))
    if t is partial:
        return home_root(fn.func)
    if t in (types.MethodDescriptorType, types.ClassMethodDescriptorType,
             types.WrapperDescriptorType, types.MethodWrapperType):  # fmt: skip
        owner_t = getattr(fn, "__objclass__", None) or type(getattr(fn, "__self__", None))
        if isinstance(owner_t, type) and issubclass(owner_t, _PLAIN_OWNERS):
            return ""
        return _root(getattr(owner_t, "__module__", None))
    if isinstance(fn, type):
        return _root(fn.__module__)
    return _root(getattr(fn, "__module__", None))


def never_reachable(root: str, name: object) -> bool:
    pattern = _NEVER.get(root)
    return pattern is not None and isinstance(name, str) and pattern.fullmatch(name) is not None


def host_callable_error(value: Any) -> SecurityError | None:
    """Rule 1 for one (non-class) callable: ``None`` if the sandbox may hold it, else the error
    to raise (a :class:`CallOnly` where calling it in place is fine)."""
    root = home_root(value)
    if root not in HOST_ROOTS:
        return None
    name = getattr(value, "__name__", None)
    if never_reachable(root, name):
        return SecurityError(f"{root}.{name} is not allowed in the sandbox")
    if type(value) is partial:
        return SecurityError(f"a partial of a {root} function cannot be used in the sandbox")
    ok = _VALUE_OK.get(root)
    if ok is not None and name in ok and type(value) is not types.MethodType:
        return None
    return CallOnly(
        f"{root}.{name} can only be called where it is looked up (e.g. {root}.{name}(...)), "
        "not stored or passed on: the host could call a stored reference later, outside the "
        "sandbox",
        value,
    )


def _is_host_class(x: Any) -> bool:
    return isinstance(x, type) and _root(x.__module__) in HOST_ROOTS


def _scan(x: Any, depth: int, user_owned: Any) -> str | None:
    """What in ``x`` host-runtime code must not be given (a callable, a sandbox object)."""
    t = type(x)
    if t in _SCALARS:
        return None
    if user_owned(x) or user_owned(t):
        return "an object of the sandbox"
    if callable(x):
        return "a callable"
    if depth > 0 and t in (list, tuple, set, frozenset):
        for item in x:
            found = _scan(item, depth - 1, user_owned)
            if found:
                return found
    elif depth > 0 and t is dict:
        for k, v in x.items():
            found = _scan(k, depth - 1, user_owned) or _scan(v, depth - 1, user_owned)
            if found:
                return found
    return None


_SCALARS = frozenset({int, float, str, bytes, bool, type(None), complex})
_TYPE_CHECKS = frozenset({id(isinstance), id(issubclass)})


def check_host_call(
    fn: Any, args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any] | None, user_owned: Any
) -> None:
    """Rule 2, before native code is called from the sandbox."""
    root = home_root(fn)
    if root in HOST_ROOTS:
        if never_reachable(root, getattr(fn, "__name__", None)):
            raise SecurityError(f"{root}.{getattr(fn, '__name__', '?')} is not allowed")
        parts: list[Any] = list(args)
        if kwargs:
            parts.extend(kwargs.values())
        owner = getattr(fn, "__self__", None)
        if type(fn) in (types.MethodType, types.BuiltinMethodType) and owner is not None:
            parts.append(owner)
        for a in parts:
            found = _scan(a, 3, user_owned)
            if found:
                name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "?")
                raise SecurityError(
                    f"{root}.{name} cannot be given {found}: the host could call it later, "
                    "outside the sandbox"
                )
        return
    if id(fn) in _TYPE_CHECKS:
        return
    for a in (*args, *(kwargs.values() if kwargs else ())):
        if _is_host_class(a):
            raise SecurityError(
                f"the class {a.__module__}.{a.__qualname__} can only be called or used in "
                "isinstance()/issubclass(), not handed to other native code"
            )
