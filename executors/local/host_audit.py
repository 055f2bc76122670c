"""A process-level backstop while sandboxed code runs: audit events (PEP 578) on its thread.

Why: the explicit checks (:mod:`.library_guards`) name the readers and writers we know of; a
library route nobody listed still goes through ``open``, ``subprocess``, ``socket`` or
``pickle``'s ``find_class``, which CPython reports as audit events. On the thread of a run they
are refused (``PermissionError``, so libraries that tolerate a missing cache degrade
gracefully), except reads of the Python installation and fonts/time-zone data, and
matplotlib's own cache. Other threads (the host, tools) are untouched.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

__all__ = ["SandboxIOError", "sandboxed", "unsandboxed"]


class SandboxIOError(PermissionError):
    """File, process or network access refused while sandboxed code runs."""


_state = threading.local()
_installed = False
_lock = threading.Lock()
_REFUSED = frozenset({
    "subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
    "os.forkpty", "os.kill", "os.killpg", "os.remove", "os.rmdir", "os.rename", "os.symlink",
    "os.link", "os.truncate", "os.chmod", "os.chown", "os.utime",
    "os.chdir", "os.chflags", "os.mkfifo", "os.mknod", "os.setxattr", "os.removexattr",
    "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.rmtree",
    "shutil.move", "shutil.make_archive", "shutil.unpack_archive", "shutil.chown",
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "socket.gethostbyname", "ctypes.dlopen", "ctypes.dlsym", "webbrowser.open",
    "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect",
    "sqlite3.connect", "pickle.find_class",
})  # fmt: skip
_PATH_EVENTS = frozenset({"open"})
_WATCHED = _REFUSED | _PATH_EVENTS
_EXACT_READS = frozenset({"/proc/self/statm", "/etc/localtime", os.devnull})
_read_dirs: tuple[str, ...] | None = None


def _dirs() -> tuple[str, ...]:
    global _read_dirs
    if _read_dirs is None:
        found: set[str] = set()
        for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
            paths = sysconfig.get_paths(vars=scheme_vars or None)
            for key in ("stdlib", "platstdlib", "purelib", "platlib"):
                found.add(paths[key])
        try:
            found.update(site.getsitepackages())
            found.add(site.getusersitepackages())
        except AttributeError:  # pragma: no cover - virtualenv's old site
            pass
        home = os.path.expanduser("~")
        found.update({
            "/usr/share/fonts", "/usr/local/share/fonts", "/usr/share/zoneinfo",
            "/usr/lib/python3/dist-packages", f"{home}/.fonts", f"{home}/.local/share/fonts",
            "/Library/Fonts", "/System/Library/Fonts",
        })  # fmt: skip
        _read_dirs = tuple(os.path.realpath(d) + os.sep for d in found if d)
    return _read_dirs


def _mpl_dirs() -> tuple[str, ...]:
    mpl = sys.modules.get("matplotlib")
    out = []
    for fn in ("get_cachedir", "get_configdir"):
        get = getattr(mpl, fn, None)
        if get is not None:
            with suppress(Exception):
                out.append(os.path.realpath(get()) + os.sep)
    return tuple(out)


def _allowed(event: str, args: tuple[Any, ...]) -> bool:
    path = args[0] if args else None
    if isinstance(path, int):
        return event == "open"  # an already open descriptor (os.fdopen)
    if path is None:
        path = "."
    try:
        given = os.path.abspath(os.fsdecode(path))
        real = os.path.realpath(given)
    except (TypeError, ValueError):
        return False
    writes = event == "os.mkdir"
    if event == "open":
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
            flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC)
        )
    if given in _EXACT_READS and not writes:  # (/proc/self resolves to the pid)
        return True
    under = (real + os.sep).startswith
    if any(under(d) for d in _mpl_dirs()):
        return True  # matplotlib's font cache and config
    return not writes and any(under(d) for d in _dirs())


def _hook(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audit event of the process (id(), __code__ reads...): cheap first test.
    if event not in _WATCHED or not getattr(_state, "on", False) or getattr(_state, "busy", False):
        return
    if event in _REFUSED:
        raise SandboxIOError(f"{event} is not allowed in the sandbox")
    if event in _PATH_EVENTS:
        _state.busy = True  # realpath() and friends may raise events of their own
        try:
            ok = _allowed(event, args)
        finally:
            _state.busy = False
        if not ok:
            target = args[0] if args else "."
            raise SandboxIOError(f"{event}({target!r}) is not allowed in the sandbox")


def _install() -> None:
    global _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)  # permanent by design; a no-op off the sandbox's threads
            _installed = True


@contextmanager
def sandboxed() -> Iterator[None]:
    """Refuse file, process and network access on this thread for the duration."""
    _install()
    previous = getattr(_state, "on", False)
    _state.on = True
    try:
        yield
    finally:
        _state.on = previous


@contextmanager
def unsandboxed() -> Iterator[None]:
    """Host code called from a run (tools): its own rights."""
    previous = getattr(_state, "on", False)
    _state.on = False
    try:
        yield
    finally:
        _state.on = previous
