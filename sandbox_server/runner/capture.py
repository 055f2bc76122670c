"""Capture of fds 1 and 2: every byte user code (or a child process) writes is forwarded to
the host as ``stream`` messages, capped per execution."""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import select
import sys
import threading
import time
from collections.abc import Callable

_READ_SIZE = 1 << 16
DRAIN_TIMEOUT_S = 2.0
COALESCE_S = 0.005  # a stream that has just sent collects more for this long (see _coalesce)
_PREFIX = b"\x00selfbox-drain-"
_MARKER = re.compile(rb"\x00selfbox-drain-[0-9a-f]{16}\x00")
_MARKER_LEN = len(_PREFIX) + 17
_DRAINED = threading.Event()  # what a drain with nothing to drain returns
_DRAINED.set()


def _could_start_marker(tail: bytes) -> bool:
    """Whether ``tail`` (starting at a NUL) may be the first bytes of a drain marker."""
    if len(tail) <= len(_PREFIX):
        return _PREFIX.startswith(tail)
    return tail.startswith(_PREFIX) and re.fullmatch(rb"[0-9a-f]*\x00?", tail[len(_PREFIX):]) \
        is not None


class StreamCapture:
    """Redirect one standard fd into a pipe and forward what arrives through ``emit``."""

    def __init__(self, fd: int, name: str, emit: Callable[[str, str], None]) -> None:
        self.fd = fd
        self.name = name
        self._emit = emit
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, fd)
        # Keep a private copy of the write end, to restore the fd if user code closes it.
        self._write_fd = os.dup(write_fd)
        os.close(write_fd)
        self._read_fd = read_fd
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._marker = b""
        self._drained = threading.Event()
        self._lock = threading.Lock()
        # Held by the pump from a read until what it read is forwarded (or held back as a
        # possible marker start in ``_pending``): with it, an empty pipe means "drained".
        self._io_lock = threading.Lock()
        self._pending = b""
        threading.Thread(target=self._pump, name=f"capture-{name}", daemon=True).start()

    def text_stream(self) -> io.TextIOWrapper:
        raw = io.FileIO(self.fd, "w", closefd=False)
        return io.TextIOWrapper(
            raw, encoding="utf-8", errors="backslashreplace", line_buffering=True
        )

    def repair(self) -> None:
        """Point the fd at the capture pipe again if user code closed or replaced it."""
        try:
            if os.path.sameopenfile(self.fd, self._write_fd):
                return
        except OSError:
            pass
        os.dup2(self._write_fd, self.fd)

    def mark(self) -> threading.Event | None:
        """Start a drain: the returned event is set once everything written to the fd so far
        has been forwarded (None if the fd cannot be written).

        Most executions write nothing: then the pipe is empty and the pump holds nothing, and
        the drain is over at once. Otherwise a random marker goes through the pipe behind the
        pending data (one write below PIPE_BUF is atomic); when the pump sees it, all earlier
        bytes have been emitted. A pump busy with a chunk has something to drain: no waiting
        for its lock, which a pump that reads a flood takes again at once (an unfair lock kept
        an interrupted flood's ``done`` back for the whole drain timeout).
        """
        if self._io_lock.acquire(blocking=False):
            try:
                if not self._pending and not self._decoder.getstate()[0] \
                        and not select.select([self._read_fd], [], [], 0)[0]:
                    return _DRAINED
            finally:
                self._io_lock.release()
        marker = _PREFIX + os.urandom(8).hex().encode() + b"\x00"
        with self._lock:
            self._marker = marker
            self._drained.clear()
        try:
            os.write(self.fd, marker)
        except OSError:
            return None
        return self._drained

    def _pump(self) -> None:
        sent_at = 0.0
        while True:
            try:
                # Wait outside the lock: a drain may look at an idle pump at any time.
                select.select([self._read_fd], [], [])
            except InterruptedError:
                continue
            with self._io_lock:
                try:
                    chunk = os.read(self._read_fd, _READ_SIZE)
                except InterruptedError:
                    continue
                if not chunk:
                    return
                if time.monotonic() - sent_at < COALESCE_S:
                    chunk = self._coalesce(chunk, sent_at + COALESCE_S)
                self._take(chunk)
                sent_at = time.monotonic()

    def _coalesce(self, chunk: bytes, until: float) -> bytes:
        """More of what follows ``chunk`` in the pipe, until ``until`` (monotonic), a full read
        or a NUL (maybe a drain marker: the drain should not wait). Output that comes fast (a
        loop of small writes) thus goes as a few hundred messages a second, not one per write,
        which the server's read budget per sandbox would make wait. A first write after a
        pause goes at once."""
        chunks = [chunk]
        size = len(chunk)
        while size < _READ_SIZE and b"\x00" not in chunks[-1]:
            left = until - time.monotonic()
            if left <= 0 or not select.select([self._read_fd], [], [], left)[0]:
                break
            more = os.read(self._read_fd, _READ_SIZE - size)
            if not more:
                break
            chunks.append(more)
            size += len(more)
        return b"".join(chunks)

    def _take(self, chunk: bytes) -> None:
        pending = self._pending + chunk
        # Every drain marker is taken out, the current one and stale ones alike: a marker
        # whose drain timed out (a busy sandbox: a fork bomb) arrives later, and must not
        # reach the user's output then.
        while True:
            found = _MARKER.search(pending)
            if found is None:
                break
            self._forward(pending[:found.start()], final=True)
            pending = pending[found.end():]
            with self._lock:
                current = self._marker
            if found.group(0) == current:
                with self._lock:
                    self._marker = b""
                self._drained.set()
        # Hold back a tail that could be the start of a marker split across reads.
        hold = pending.rfind(b"\x00", max(len(pending) - _MARKER_LEN, 0))
        if hold != -1 and _could_start_marker(pending[hold:]):
            self._forward(pending[:hold])
            self._pending = pending[hold:]
        else:
            self._forward(pending)
            self._pending = b""

    def _forward(self, data: bytes, final: bool = False) -> None:
        text = self._decoder.decode(data, final=final)
        if text:
            # The pump must outlive one failed send: if it stopped, the fd's pipe would fill
            # and every later write in the sandbox would block.
            with contextlib.suppress(Exception):
                self._emit(self.name, text)


class Captures:
    """Both standard streams, and the Python-level ``sys.stdout``/``sys.stderr`` on them."""

    def __init__(self, emit: Callable[[str, str], None]) -> None:
        self.out = StreamCapture(1, "stdout", emit)
        self.err = StreamCapture(2, "stderr", emit)
        self.stdout = self.out.text_stream()
        self.stderr = self.err.text_stream()
        self.restore()

    def restore(self) -> None:
        """Before each execution: undo what the previous one did to the streams
        (``sys.stdout = None``, ``os.close(1)``, ...), so the sandbox stays usable."""
        for capture in (self.out, self.err):
            capture.repair()
        sys.stdout, sys.stderr = self.stdout, self.stderr

    def flush(self) -> None:
        for stream in (sys.stdout, sys.stderr, self.stdout, self.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # a user's replacement stream may be anything
                pass
        # Both markers first, then both waits: the two pumps drain in parallel.
        pending = [capture.mark() for capture in (self.out, self.err)]
        for event in pending:
            if event is not None:
                event.wait(DRAIN_TIMEOUT_S)
