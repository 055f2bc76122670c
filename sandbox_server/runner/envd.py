"""Runner ops behind selfbox's E2B-compatible data plane: files, processes (pipes or a PTY),
directory watchers (:mod:`.watch`), done INSIDE the sandbox (as the sandbox user, within its
limits). Stdlib only, like the rest of the runner.

Each op takes the host's message and returns the reply fields (or raises: the kernel turns the
exception into ``{"ok": false, "error": {"code": ..., ...}}`` with a
:class:`~.protocol.ErrorCode`, which the server maps to an E2B error code). Process output is
pushed to the host as ``{"type": "proc", "id": <subscription key>, ...}`` messages, which the
host's channel routes to whoever subscribed under that key.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import grp
import os
import pwd
import shutil
import signal
import stat
import struct
import subprocess
import termios
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .channel import Channel
from .protocol import Msg, Op
from .watch import Watchers

OpHandler = Callable[[dict[str, Any]], dict[str, Any] | None]

HOME = os.environ.get("HOME", "/home/user")
READ_CHUNK_MAX = 4 << 20  # one fs_read reply; the host asks for files chunk by chunk
PIPE_READ = 64 << 10
MAX_LIST_ENTRIES = 10_000  # bound one ListDir reply (and the time spent walking)
MAX_PROCESSES = 256
READER_GRACE_S = 1.0


def _path(message: dict[str, Any], key: str = "path") -> str:
    raw = str(message.get(key) or "")
    if not raw:
        raise ValueError(f"{key} is required")
    if "\x00" in raw:
        raise ValueError(f"{key} contains a NUL byte")
    # E2B resolves relative paths against the user's home, not the runner's cwd.
    return os.path.normpath(os.path.join(HOME, os.path.expanduser(raw)))


def _name_of(uid: int, lookup: Callable[[int], Any]) -> str:
    try:
        return str(lookup(uid)[0])
    except (KeyError, OverflowError):
        return str(uid)


def entry_info(path: str) -> dict[str, Any]:
    """One EntryInfo in proto3-JSON form (int64 as strings, enums by name)."""
    st = os.lstat(path)
    is_link = stat.S_ISLNK(st.st_mode)
    target_st = st
    entry: dict[str, Any] = {}
    if is_link:
        entry["isSymlink"] = True
        entry["symlinkTarget"] = os.readlink(path)
        try:
            target_st = os.stat(path)
        except OSError:
            target_st = st
    if stat.S_ISDIR(target_st.st_mode):
        kind = "FILE_TYPE_DIRECTORY"
    elif stat.S_ISREG(target_st.st_mode):
        kind = "FILE_TYPE_FILE"
    elif is_link:
        kind = "FILE_TYPE_SYMLINK"
    else:
        kind = "FILE_TYPE_UNSPECIFIED"  # sockets, fifos: the SDK skips them
    modified = datetime.fromtimestamp(st.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    entry.update({
        "name": os.path.basename(path) or path,
        "type": kind,
        "path": path,
        "size": str(target_st.st_size),
        "mode": stat.S_IMODE(target_st.st_mode),
        "permissions": stat.filemode(target_st.st_mode),
        "owner": _name_of(st.st_uid, pwd.getpwuid),
        "group": _name_of(st.st_gid, grp.getgrgid),
        "modifiedTime": modified,
    })
    return entry


# -- files --------------------------------------------------------------------------------
def fs_stat(message: dict[str, Any]) -> dict[str, Any]:
    return {"entry": entry_info(_path(message))}


def fs_list(message: dict[str, Any]) -> dict[str, Any]:
    root = _path(message)
    depth = max(int(message.get("depth") or 1), 1)
    if not os.path.isdir(root):
        if not os.path.lexists(root):
            raise FileNotFoundError(f"path {root} does not exist")
        raise NotADirectoryError(f"path {root} is not a directory")
    entries: list[dict[str, Any]] = []
    pending = [(root, 1)]
    while pending and len(entries) < MAX_LIST_ENTRIES:
        directory, level = pending.pop(0)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            full = os.path.join(directory, name)
            try:
                entry = entry_info(full)
            except OSError:
                continue  # vanished meanwhile
            entries.append(entry)
            if level < depth and entry["type"] == "FILE_TYPE_DIRECTORY" and not entry.get(
                    "isSymlink"):
                pending.append((full, level + 1))
    return {"entries": entries[:MAX_LIST_ENTRIES]}


def fs_mkdir(message: dict[str, Any]) -> dict[str, Any]:
    path = _path(message)
    if os.path.lexists(path):
        raise FileExistsError(f"path {path} already exists")
    os.makedirs(path)
    return {"entry": entry_info(path)}


def fs_remove(message: dict[str, Any]) -> dict[str, Any] | None:
    path = _path(message)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return None


def fs_move(message: dict[str, Any]) -> dict[str, Any]:
    source, destination = _path(message, "source"), _path(message, "destination")
    if not os.path.lexists(source):
        raise FileNotFoundError(f"path {source} does not exist")
    os.makedirs(os.path.dirname(destination) or "/", exist_ok=True)
    try:
        os.replace(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(source, destination)  # /tmp and the home are different file systems
    return {"entry": entry_info(destination)}


def _regular_file(path: str) -> None:
    # A FIFO or a device would block the op's thread in open() or read() for ever.
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"path {path} is a directory")
    if not stat.S_ISREG(mode):
        raise ValueError(f"path {path} is not a regular file")


def fs_read(message: dict[str, Any]) -> dict[str, Any]:
    path = _path(message)
    offset = max(int(message.get("offset") or 0), 0)
    length = min(max(int(message.get("length") or READ_CHUNK_MAX), 1), READ_CHUNK_MAX)
    _regular_file(path)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(offset)
        data = handle.read(length)
    return {"data": base64.b64encode(data).decode("ascii"), "size": size,
            "eof": offset + len(data) >= size or not data}


def fs_write(message: dict[str, Any]) -> dict[str, Any]:
    """Write one chunk; the first chunk (``append`` false) creates or truncates the file."""
    path = _path(message)
    data = base64.b64decode(str(message.get("data") or ""), validate=True)
    if os.path.exists(path):
        _regular_file(path)
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    with open(path, "ab" if message.get("append") else "wb") as handle:
        handle.write(data)
    return {"name": os.path.basename(path), "path": path}


def fs_usage(message: dict[str, Any]) -> dict[str, Any]:
    st = os.statvfs(HOME)
    return {"total": st.f_blocks * st.f_frsize, "used": (st.f_blocks - st.f_bfree) * st.f_frsize}


# -- processes ----------------------------------------------------------------------------
class _Process:
    def __init__(self, popen: subprocess.Popen[bytes], config: dict[str, Any],
                 tag: str | None, master: int | None = None) -> None:
        self.popen = popen
        self.config = config
        self.tag = tag
        self.master = master  # the PTY's master side, for a terminal session
        self.subscribers: set[str] = set()
        self.lock = threading.Lock()


def _set_size(fd: int, size: dict[str, Any]) -> None:
    rows, cols = int(size.get("rows") or 24), int(size.get("cols") or 80)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _controlling_tty() -> None:
    # Runs in the child after setsid(): make the PTY (its stdin) the controlling terminal,
    # so job control and Ctrl-C work in the shell.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Processes:
    """The commands started through the E2B API; output goes to the keys subscribed to it."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._procs: dict[int, _Process] = {}
        self._lock = threading.Lock()

    def _send(self, proc: _Process, event: dict[str, Any]) -> None:
        with proc.lock:
            keys = list(proc.subscribers)
        for key in keys:
            self.channel.send({"type": Msg.PROC, "id": key, **event})

    def _find(self, message: dict[str, Any]) -> tuple[int, _Process]:
        pid, tag = message.get("pid"), message.get("tag")
        with self._lock:
            for known_pid, proc in self._procs.items():
                if (pid is not None and known_pid == int(pid)) or (
                        tag is not None and proc.tag == tag):
                    return known_pid, proc
        raise ProcessLookupError(f"process with {'pid ' + str(pid) if pid else 'tag ' + str(tag)}"
                                 " not found")

    def start(self, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if len(self._procs) >= MAX_PROCESSES:
                raise OverflowError(f"more than {MAX_PROCESSES} running commands")
        cmd = str(message.get("cmd") or "")
        if not cmd:
            raise ValueError("process.cmd is required")
        args = [str(a) for a in message.get("args") or []]
        envs = {str(k): str(v) for k, v in (message.get("envs") or {}).items()}
        cwd = _path({"path": message.get("cwd") or HOME})
        if not os.path.isdir(cwd):
            raise FileNotFoundError(f"cwd {cwd} does not exist")
        size = message.get("pty")
        master: int | None = None
        if isinstance(size, dict):
            master, slave = os.openpty()
            try:
                _set_size(slave, size)
                popen = subprocess.Popen(
                    [cmd, *args], cwd=cwd, env={**os.environ, **envs},
                    stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                    preexec_fn=_controlling_tty,
                )
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
        else:
            popen = subprocess.Popen(
                [cmd, *args], cwd=cwd, env={**os.environ, **envs},
                stdin=subprocess.PIPE if message.get("stdin") else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a signal reaches its children
            )
        config = {"cmd": cmd, "args": args, "envs": envs, "cwd": cwd}
        proc = _Process(popen, config, message.get("tag"), master)
        key = message.get("key")
        if key:
            proc.subscribers.add(str(key))
        with self._lock:
            self._procs[popen.pid] = proc
        threading.Thread(target=self._pump, args=(popen.pid, proc), daemon=True).start()
        return {"pid": popen.pid}

    def _pump(self, pid: int, proc: _Process) -> None:
        readers = []
        sources = ([("pty", proc.master)] if proc.master is not None
                   else [("stdout", proc.popen.stdout), ("stderr", proc.popen.stderr)])
        for name, source in sources:
            thread = threading.Thread(target=self._read, args=(proc, name, source), daemon=True)
            thread.start()
            readers.append(thread)
        code = proc.popen.wait()
        for thread in readers:
            # A daemon it left behind (`server &`) may hold the pipes open for ever: report
            # the end anyway, shortly after the process itself exited.
            thread.join(READER_GRACE_S)
        if code < 0:
            status = f"signal: {signal.Signals(-code).name.lower().removeprefix('sig')}" \
                if -code in signal.valid_signals() else f"signal {-code}"
        else:
            status = f"exit status {code}"
        with self._lock:
            self._procs.pop(pid, None)
        self._send(proc, {"event": "end", "exitCode": code if code >= 0 else -1,
                          "exited": code >= 0, "status": status})

    def _read(self, proc: _Process, name: str, source: Any) -> None:
        fd = source if isinstance(source, int) else source.fileno()
        while True:
            try:
                chunk = os.read(fd, PIPE_READ)
            except OSError:  # EIO: a PTY whose last user closed it
                break
            if not chunk:
                break
            self._send(proc, {"event": "data", "stream": name,
                              "data": base64.b64encode(chunk).decode("ascii")})
        if isinstance(source, int):
            os.close(source)
        else:
            source.close()

    def subscribe(self, message: dict[str, Any]) -> dict[str, Any]:
        pid, proc = self._find(message)
        with proc.lock:
            proc.subscribers.add(str(message["key"]))
        return {"pid": pid}

    def unsubscribe(self, message: dict[str, Any]) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            with proc.lock:
                proc.subscribers.discard(str(message.get("key")))

    def signal(self, message: dict[str, Any]) -> None:
        pid, _ = self._find(message)
        number = int(message.get("signal") or signal.SIGKILL)
        if number not in (signal.SIGKILL, signal.SIGTERM):
            raise ValueError(f"signal {number} is not supported")
        try:
            os.killpg(pid, number)
        except ProcessLookupError:
            os.kill(pid, number)

    def send_input(self, message: dict[str, Any]) -> None:
        _, proc = self._find(message)
        if message.get("pty"):
            if proc.master is None:
                raise BrokenPipeError("the process has no PTY")
            os.write(proc.master, base64.b64decode(str(message.get("data") or "")))
            return
        stdin = proc.popen.stdin
        if stdin is None or stdin.closed:
            raise BrokenPipeError("the process was not started with stdin, or it is closed")
        stdin.write(base64.b64decode(str(message.get("data") or "")))
        stdin.flush()

    def resize(self, message: dict[str, Any]) -> None:
        _, proc = self._find(message)
        if proc.master is None:
            raise BrokenPipeError("the process has no PTY")
        _set_size(proc.master, message.get("size") or {})

    def close_stdin(self, message: dict[str, Any]) -> None:
        _, proc = self._find(message)
        if proc.popen.stdin is not None:
            proc.popen.stdin.close()

    def list(self, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            items = list(self._procs.items())
        processes = []
        for pid, proc in items:
            info: dict[str, Any] = {"pid": pid, "config": proc.config}
            if proc.tag:
                info["tag"] = proc.tag
            processes.append(info)
        return {"processes": processes}


def ops(kernel: Any) -> dict[str, OpHandler]:
    """The ops to merge into ``kernel.ops``."""
    procs = Processes(kernel.channel)
    watchers = Watchers(kernel.channel)

    def watch_create(message: dict[str, Any]) -> dict[str, Any]:
        return watchers.create({**message, "path": _path(message)})

    def env_apply(message: dict[str, Any]) -> dict[str, Any]:
        # Per-execution env vars (E2B's run_code(envs=...)): apply, hand back what to restore.
        previous: dict[str, str | None] = {}
        for key, value in (message.get("env") or {}).items():
            previous[str(key)] = os.environ.get(str(key))
            if value is None:
                os.environ.pop(str(key), None)
            else:
                os.environ[str(key)] = str(value)
        return {"previous": previous}

    def context_list(message: dict[str, Any]) -> dict[str, Any]:
        return {"contexts": [{"id": c.id, "cwd": c.cwd, "language": c.language}
                             for c in list(kernel.contexts.values())]}

    return {
        Op.FS_STAT: fs_stat, Op.FS_LIST: fs_list, Op.FS_MKDIR: fs_mkdir,
        Op.FS_REMOVE: fs_remove, Op.FS_MOVE: fs_move, Op.FS_READ: fs_read,
        Op.FS_WRITE: fs_write, Op.FS_USAGE: fs_usage,
        Op.PROC_START: procs.start, Op.PROC_SUBSCRIBE: procs.subscribe,
        Op.PROC_UNSUBSCRIBE: procs.unsubscribe, Op.PROC_SIGNAL: procs.signal,
        Op.PROC_INPUT: procs.send_input, Op.PROC_CLOSE_STDIN: procs.close_stdin,
        Op.PROC_RESIZE: procs.resize, Op.PROC_LIST: procs.list,
        Op.WATCH_CREATE: watch_create, Op.WATCH_EVENTS: watchers.events,
        Op.WATCH_REMOVE: watchers.remove,
        Op.ENV_APPLY: env_apply, Op.CONTEXT_LIST: context_list,
    }
