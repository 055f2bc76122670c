"""The runner's side of the protocol channel: NDJSON messages over private file descriptors.

At start the runner moves the protocol off fds 0 and 1 (to fresh, close-on-exec descriptors),
so that user code, and any process it starts, reads /dev/null and writes into capture pipes;
nothing it prints can be mistaken for a protocol message.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .protocol import Msg

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class Channel:
    def __init__(self) -> None:
        # os.dup returns non-inheritable descriptors: child processes never see the protocol.
        self._in = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
        self._out_fd = os.dup(1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        self._lock = threading.Lock()
        # Sees every message before it is written; numbers those of the latest run (the
        # outbox keeps them for a server that attaches again) and says the number.
        self.tap: Callable[[dict[str, Any]], int | None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        # Encoded outside the lock: ``default=repr`` may run user code (a tool call's
        # arguments), which may itself send. Numbered and written under it: the server drops
        # a number it has already passed, so two threads (the stdout and stderr pumps) must
        # write in the order they were numbered. The number goes last: the server judges a
        # large frame by its head (``{"type":...,"id":...``).
        payload = _encode(message)
        with self._lock:
            seq = self.tap(message) if self.tap is not None else None
            if seq is not None:
                payload = payload[:-2] + b',"seq":%d}\n' % seq
            view = memoryview(payload)
            while view:
                written = os.write(self._out_fd, view)
                view = view[written:]

    def messages(self) -> Iterator[dict[str, Any]]:
        """Yield the host's messages until it closes stdin; skip lines that are not JSON."""
        while True:
            line = self._in.readline(MAX_MESSAGE_BYTES)
            if not line:
                return
            try:
                message = json.loads(line)
            except ValueError:
                self.send({"type": Msg.LOG, "level": "warning", "text": "undecodable message"})
                continue
            if isinstance(message, dict):
                yield message


def _encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=repr)
    try:
        return data.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        # A lone surrogate (a non-UTF-8 file name from os.listdir, say): sent as the
        # visible text "\\udcff" rather than as a JSON escape the host cannot render.
        data = json.dumps(_escape_surrogates(message), ensure_ascii=False,
                          separators=(",", ":"), default=repr)
        return data.encode("utf-8", "backslashreplace") + b"\n"


def _escape_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_escape_surrogates(str(k)): _escape_surrogates(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape_surrogates(v) for v in value]
    return value
