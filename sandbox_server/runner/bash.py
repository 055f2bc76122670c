"""Bash contexts: one long-lived bash per context, so variables, functions and the working
directory last between runs, as in E2B's bash kernel.

Each cell is written to a private file and ``source``d with stdin from /dev/null (so it cannot
read the commands that follow); its exit status comes back on a private pipe. The shell writes
straight into the runner's captured fds 1 and 2, so output streams as it is printed. An
interrupt returns from the cell (a trap), leaving the shell and its state in place; a cell that
ends the shell (``exit``) gets a fresh one.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import tempfile
import time

__all__ = ["BashExit", "BashSession"]

INTERRUPT_GRACE_S = 2.0


class BashExit(Exception):
    """The cell's last command failed: its exit status, like a notebook's bash kernel."""


class BashSession:
    def __init__(self, cwd: str) -> None:
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._status: int | None = None
        self._status_fd = -1
        self._cell: str | None = None  # the file each cell is written to, then sourced

    def _start(self) -> subprocess.Popen[bytes]:
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(
                ["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE, pass_fds=(write_end,),
                cwd=self.cwd if os.path.isdir(self.cwd) else None, start_new_session=True)
        finally:
            os.close(write_end)
        assert proc.stdin is not None
        # An interrupt ends the cell (a return from `source`), not the shell.
        proc.stdin.write(b"trap 'return 130 2>/dev/null' INT\n")
        proc.stdin.flush()
        self._proc, self._status, self._status_fd = proc, read_end, write_end
        return proc

    def run(self, code: str) -> None:
        """Run one cell; raises BashExit on a failing status, KeyboardInterrupt if interrupted."""
        proc = self._proc if self._proc is not None and self._proc.poll() is None else None
        proc = proc or self._start()
        assert proc.stdin is not None and self._status is not None
        if self._cell is None:
            fd, self._cell = tempfile.mkstemp(prefix="selfbox-cell-", suffix=".sh")
            os.close(fd)
        cell = self._cell
        with open(cell, "w", encoding="utf-8") as handle:
            handle.write(code if code.endswith("\n") else code + "\n")
        # The status pipe keeps its descriptor number in bash (pass_fds).
        proc.stdin.write(f"source {cell} </dev/null; printf '%s\\n' \"$?\" >&{self._status_fd}\n"
                         .encode())
        proc.stdin.flush()
        try:
            status = self._read_status()
        except KeyboardInterrupt:
            self._interrupt()
            raise
        if status is None:
            self.close()
            raise BashExit("the shell exited (its variables are gone; the next run starts a "
                           "new one)")
        if status != 0:
            raise BashExit(f"exit code {status}")

    def _read_status(self, timeout_s: float | None = None) -> int | None:
        """The cell's status; None if the shell is gone. Polls, because a background job
        the cell started may hold the pipe open after the shell itself exited."""
        assert self._status is not None and self._proc is not None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        line = b""
        while not line.endswith(b"\n"):
            wait_s = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if wait_s <= 0:
                raise TimeoutError
            if select.select([self._status], [], [], wait_s)[0]:
                chunk = os.read(self._status, 64)
                if not chunk:
                    return None
                line += chunk
            elif self._proc.poll() is not None:
                return None
        try:
            return int(line.strip().splitlines()[-1])
        except ValueError:
            return 1

    def _interrupt(self) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            if self._read_status(INTERRUPT_GRACE_S) is not None:
                return  # the cell returned; the shell and its state remain
        except (TimeoutError, KeyboardInterrupt):
            pass
        self.close()  # it would not stop: a fresh shell next time

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait(1)
        if self._status is not None:
            with contextlib.suppress(OSError):
                os.close(self._status)
            self._status = None
        if self._cell is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._cell)
            self._cell = None
