"""Directory watching for the E2B data plane (``files.watch_dir``): Linux inotify through
ctypes (the runner is stdlib only). Events are named like E2B's (fsnotify's): create, write,
remove, rename, chmod, with the path relative to the watched directory.

A watcher either buffers its events (polled by the host: CreateWatcher / GetWatcherEvents) or
pushes them as ``{"type": "watch", "id": <key>, ...}`` messages (the WatchDir stream).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import secrets
import select
import struct
import threading
from typing import Any

from .channel import Channel
from .protocol import Msg

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x002, 0x004, 0x008
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x040, 0x080, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = (
    0x400, 0x800, 0x4000, 0x8000, 0x40000000)
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
MASK = (IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_DELETE_SELF | IN_MOVE_SELF)
_EVENT = struct.Struct("iIII")
MAX_BUFFERED = 10_000  # per polled watcher; older events are dropped beyond it
MAX_WATCHERS = 64
MAX_DIRS = 4096  # directories watched by one recursive watcher

_libc: Any = None


def _inotify() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _kinds(mask: int) -> list[str]:
    kinds = []
    if mask & (IN_CREATE | IN_MOVED_TO):
        kinds.append("EVENT_TYPE_CREATE")
    if mask & IN_MODIFY:
        kinds.append("EVENT_TYPE_WRITE")
    if mask & (IN_DELETE | IN_DELETE_SELF):
        kinds.append("EVENT_TYPE_REMOVE")
    if mask & (IN_MOVED_FROM | IN_MOVE_SELF):
        kinds.append("EVENT_TYPE_RENAME")
    if mask & IN_ATTRIB:
        kinds.append("EVENT_TYPE_CHMOD")
    return kinds


class Watcher:
    def __init__(self, channel: Channel, root: str, recursive: bool, key: str | None) -> None:
        libc = _inotify()
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self.fd = fd
        self.channel = channel
        self.root = root
        self.recursive = recursive
        self.key = key
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.dirs: dict[int, str] = {}  # watch descriptor -> directory
        self.closed = False
        self._r, self._w = os.pipe()  # wakes the reader up on close
        try:
            self._add(root)
            if recursive:
                for current, subdirs, _ in os.walk(root):
                    for name in subdirs:
                        self._add(os.path.join(current, name))
        except BaseException:
            self.closed = True
            self._close_fds()  # the reader thread never started
            raise
        threading.Thread(target=self._loop, name="watch", daemon=True).start()

    def _add(self, path: str) -> None:
        if len(self.dirs) >= MAX_DIRS:
            return
        wd = _inotify().inotify_add_watch(self.fd, os.fsencode(path), MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code == errno.ENOENT:
                raise FileNotFoundError(code, f"path {path} does not exist")
            if code == errno.ENOTDIR:
                raise NotADirectoryError(code, f"path {path} is not a directory")
            raise OSError(code, f"inotify_add_watch {path}: {os.strerror(code)}")
        self.dirs[wd] = path

    def _emit(self, name: str, kind: str) -> None:
        event = {"name": name, "type": kind}
        if self.key is not None:
            self.channel.send({"type": Msg.WATCH, "id": self.key, "event": event})
            return
        with self.lock:
            self.events.append(event)
            del self.events[:-MAX_BUFFERED]

    def _loop(self) -> None:
        try:
            while not self.closed:
                try:
                    ready, _, _ = select.select([self.fd, self._r], [], [])
                except (OSError, ValueError):
                    return
                if self._r in ready or self.closed:
                    return
                try:
                    data = os.read(self.fd, 64 * 1024)
                except BlockingIOError:
                    continue
                except OSError:
                    return
                self._parse(data)
        finally:
            self._close_fds()  # here, so no fd is closed under a select() that uses it

    def _parse(self, data: bytes) -> None:
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size:offset + _EVENT.size + size]
            offset += _EVENT.size + size
            if mask & (IN_IGNORED | IN_Q_OVERFLOW):
                self.dirs.pop(wd, None)
                continue
            directory = self.dirs.get(wd)
            if directory is None:
                continue
            name = os.fsdecode(raw.rstrip(b"\0"))
            full = os.path.join(directory, name) if name else directory
            relative = os.path.relpath(full, self.root)
            if not name:
                continue  # about a watched directory itself: its parent reports it
            for kind in _kinds(mask):
                self._emit(relative, kind)
            if self.recursive and mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                self._adopt(full)

    def _adopt(self, directory: str) -> None:
        """Watch a new subdirectory, and report what was made in it before the watch was in
        place (`mkdir d; touch d/x` is faster than us): a duplicate beats a lost event."""
        with contextlib.suppress(OSError):  # gone again already
            self._add(directory)
            for current, subdirs, files in os.walk(directory):
                for name in subdirs:
                    with contextlib.suppress(OSError):
                        self._add(os.path.join(current, name))
                for name in [*subdirs, *files]:
                    path = os.path.relpath(os.path.join(current, name), self.root)
                    self._emit(path, "EVENT_TYPE_CREATE")

    def drain(self) -> list[dict[str, Any]]:
        with self.lock:
            events, self.events = self.events, []
        return events

    def close(self) -> None:
        """Stop: wake the reader thread, which closes the descriptors on its way out."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            os.write(self._w, b"x")

    def _close_fds(self) -> None:
        for fd in (self.fd, self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


class Watchers:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._watchers: dict[str, Watcher] = {}
        self._lock = threading.Lock()

    def create(self, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if len(self._watchers) >= MAX_WATCHERS:
                raise OverflowError(f"more than {MAX_WATCHERS} directory watchers")
        root = str(message["path"])
        if not os.path.isdir(root):
            if not os.path.lexists(root):
                raise FileNotFoundError(f"path {root} does not exist")
            raise NotADirectoryError(f"path {root} is not a directory")
        key = message.get("key")
        watcher = Watcher(self.channel, root, bool(message.get("recursive")),
                          str(key) if key else None)
        watcher_id = secrets.token_hex(8)
        with self._lock:
            self._watchers[watcher_id] = watcher
        return {"watcherId": watcher_id}

    def _get(self, message: dict[str, Any]) -> Watcher:
        watcher = self._watchers.get(str(message.get("watcherId")))
        if watcher is None:
            raise KeyError(f"watcher {message.get('watcherId')!r} not found")
        return watcher

    def events(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"events": self._get(message).drain()}

    def remove(self, message: dict[str, Any]) -> None:
        watcher = self._get(message)
        with self._lock:
            self._watchers.pop(str(message.get("watcherId")), None)
        watcher.close()
