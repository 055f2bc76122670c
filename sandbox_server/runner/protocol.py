"""The runner protocol, shared by both ends: op names, message types, error codes, versions.

The host writes one JSON object per line to the runner (an *op*); the runner writes JSON
objects back (*messages*). Ops that the runner answers carry a ``req`` and get one ``reply``;
keyed ops (an execution, a process stream, a directory watch) carry an ``id``/``key`` under
which the runner pushes messages until a terminal one.

Stdlib only: this directory is copied into the runtime image as the package
``selfbox_runner``; the server imports it as ``sandbox_server.runner.protocol``.
"""

from __future__ import annotations

import errno
from enum import StrEnum
from typing import Any, Final, NotRequired, TypedDict

__all__ = [
    "HEARTBEAT_LINE",
    "PROTOCOL_VERSION",
    "ErrorCode",
    "ErrorInfo",
    "Msg",
    "Op",
    "Ready",
    "Reply",
    "error_code_of",
    "error_reply",
    "major",
]

# "major.minor": a server talks only to runners of its own major version.
# 1.1: heartbeat, state_put, resync, ack (re-adoption); a "done" carries the token of its
# execute op (the hello says ``done_token``); a replied op the runner cannot even start is
# answered ``busy``.
# 1.2: ``fence`` (an interrupted run's grace is counted at the runner; an older runner
# ignores it, and the server then waits one more grace before it kills).
PROTOCOL_VERSION: Final = "1.2"
# The one line the watchdog relay (relay.py) consumes instead of passing it to the runner.
HEARTBEAT_LINE: Final = b'{"op":"heartbeat"}'


def major(version: object) -> int | None:
    """The major number of a protocol version string, None if it is not one."""
    head = str(version).split(".", 1)[0] if version is not None else ""
    return int(head) if head.isdigit() else None


class Op(StrEnum):
    """What the host asks of the runner (the ``op`` field)."""

    # keyed, no reply: messages under the execution's id until ``done``
    EXECUTE = "execute"
    INTERRUPT = "interrupt"
    TOOL_REPLY = "tool_reply"
    HEARTBEAT = "heartbeat"  # every few seconds; eaten by the relay (the server is alive)
    ACK = "ack"  # the server delivered this execution: the outbox may forget it
    # answered at once by the control thread with a ``fence`` message under the same id,
    # behind everything the runner wrote before
    FENCE = "fence"
    # answered with a reply
    PING = "ping"
    SET_ENV = "set_env"
    SET_DEADLINE = "set_deadline"
    SET_TOOLS = "set_tools"
    SET_VARIABLES = "set_variables"
    CONTEXT_CREATE = "context_create"
    CONTEXT_RESTART = "context_restart"
    CONTEXT_REMOVE = "context_remove"
    CONTEXT_LIST = "context_list"
    ENV_APPLY = "env_apply"
    FS_STAT = "fs_stat"
    FS_LIST = "fs_list"
    FS_MKDIR = "fs_mkdir"
    FS_REMOVE = "fs_remove"
    FS_MOVE = "fs_move"
    FS_READ = "fs_read"
    FS_WRITE = "fs_write"
    FS_USAGE = "fs_usage"
    PROC_START = "proc_start"  # replied, then ``proc`` messages under its key until ``end``
    PROC_SUBSCRIBE = "proc_subscribe"  # likewise, for a running process
    PROC_UNSUBSCRIBE = "proc_unsubscribe"
    PROC_SIGNAL = "proc_signal"
    PROC_INPUT = "proc_input"
    PROC_CLOSE_STDIN = "proc_close_stdin"
    PROC_RESIZE = "proc_resize"
    PROC_LIST = "proc_list"
    WATCH_CREATE = "watch_create"  # replied; with a key, ``watch`` messages under it
    WATCH_EVENTS = "watch_events"
    WATCH_REMOVE = "watch_remove"
    STATE_PUT = "state_put"  # the server's signed record, kept for the next server
    RESYNC = "resync"  # record, contexts, and the latest run's messages after ``since``
    # ingress (portforward.py): replied; ``pf`` messages under the key until ``eof``
    PF_OPEN = "pf_open"
    PF_WRITE = "pf_write"
    PF_ACK = "pf_ack"  # sent without a reply wanted: credit for more data
    PF_CLOSE = "pf_close"


class Msg(StrEnum):
    """What the runner sends (the ``type`` field)."""

    READY = "ready"  # the hello, once, with the protocol version
    REPLY = "reply"  # the answer to an op with a ``req``
    LOG = "log"  # the runner's own diagnostics
    # under an execution's id
    STREAM = "stream"
    RESULT = "result"
    ERROR = "error"
    TOOL_CALL = "tool_call"
    FINAL_ANSWER = "final_answer"
    DONE = "done"  # terminal
    FENCE = "fence"  # the answer to the ``fence`` op
    # under a process or watch key
    PROC = "proc"  # terminal when its ``event`` is ``end``
    WATCH = "watch"
    PF = "pf"  # data from a forwarded connection; terminal when its ``event`` is ``eof``
    # made by the host's channel, never sent by the runner: the channel closed
    EOF = "eof"


class ErrorCode(StrEnum):
    """Why a replied op failed; the host translates this code, never the message text."""

    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    INVALID_ARGUMENT = "invalid_argument"
    NO_SPACE = "no_space"  # the sandbox's disk (tmpfs) is full
    LIMIT_REACHED = "limit_reached"  # a runner-side cap (processes, watchers)
    NOT_WRITABLE = "not_writable"  # a process without stdin or PTY
    BUSY = "busy"  # the runner cannot start on the op (no thread: the pids are exhausted)
    INTERNAL = "internal"


class ErrorInfo(TypedDict):
    code: str
    name: str  # the exception class, for people reading logs
    value: str


class Reply(TypedDict, total=False):
    type: str
    req: str
    ok: bool
    error: ErrorInfo


class Ready(TypedDict):
    type: str
    protocol: str
    pid: int
    python: NotRequired[str]
    done_token: NotRequired[bool]  # "done" echoes the execute op's token (1.1)


# Order matters: subclasses before their bases (all but the first rows are OSErrors).
_BY_TYPE: Final[tuple[tuple[type[BaseException], ErrorCode], ...]] = (
    (BrokenPipeError, ErrorCode.NOT_WRITABLE),
    (FileNotFoundError, ErrorCode.NOT_FOUND),
    (ProcessLookupError, ErrorCode.NOT_FOUND),
    (KeyError, ErrorCode.NOT_FOUND),
    (FileExistsError, ErrorCode.ALREADY_EXISTS),
    (PermissionError, ErrorCode.PERMISSION_DENIED),
    (NotADirectoryError, ErrorCode.INVALID_ARGUMENT),
    (IsADirectoryError, ErrorCode.INVALID_ARGUMENT),
    (ValueError, ErrorCode.INVALID_ARGUMENT),  # binascii.Error (bad base64) included
    (TypeError, ErrorCode.INVALID_ARGUMENT),
    (OverflowError, ErrorCode.LIMIT_REACHED),
)
_NO_SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
# An OSError whose class says nothing (EROFS is a plain OSError): its errno does.
_BY_ERRNO: Final[dict[int, ErrorCode]] = {
    errno.EROFS: ErrorCode.PERMISSION_DENIED,
    errno.EACCES: ErrorCode.PERMISSION_DENIED,
    errno.EPERM: ErrorCode.PERMISSION_DENIED,
    errno.ENOENT: ErrorCode.NOT_FOUND,
    errno.EEXIST: ErrorCode.ALREADY_EXISTS,
    errno.ENOTDIR: ErrorCode.INVALID_ARGUMENT,
    errno.EISDIR: ErrorCode.INVALID_ARGUMENT,
    errno.EINVAL: ErrorCode.INVALID_ARGUMENT,
    errno.ENAMETOOLONG: ErrorCode.INVALID_ARGUMENT,
    errno.ELOOP: ErrorCode.INVALID_ARGUMENT,
    errno.EXDEV: ErrorCode.INVALID_ARGUMENT,
    errno.ENOTEMPTY: ErrorCode.INVALID_ARGUMENT,
    errno.EBUSY: ErrorCode.INVALID_ARGUMENT,
    errno.ETXTBSY: ErrorCode.INVALID_ARGUMENT,
    errno.EFBIG: ErrorCode.LIMIT_REACHED,
    errno.EMFILE: ErrorCode.LIMIT_REACHED,
    errno.ENFILE: ErrorCode.LIMIT_REACHED,
    errno.ENOMEM: ErrorCode.LIMIT_REACHED,
    errno.EAGAIN: ErrorCode.LIMIT_REACHED,
}


def error_code_of(exc: BaseException) -> ErrorCode:
    """The code of an op's failure, from the exception's type and errno."""
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS:
        return ErrorCode.NO_SPACE
    if type(exc) is OSError and isinstance(exc.errno, int) and exc.errno in _BY_ERRNO:
        return _BY_ERRNO[exc.errno]
    for kind, code in _BY_TYPE:
        if isinstance(exc, kind):
            return code
    return ErrorCode.INTERNAL


def error_reply(exc: BaseException) -> dict[str, Any]:
    """The reply fields of a failed op."""
    info: ErrorInfo = {"code": error_code_of(exc), "name": type(exc).__name__,
                       "value": str(exc)}
    return {"ok": False, "error": info}
