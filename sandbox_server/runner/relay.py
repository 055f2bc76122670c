"""The orphan watchdog: a tiny process between the container's stdin and the runner.

``python3 -m selfbox_runner.relay --orphan-grace-s 60 --module selfbox_runner`` runs as the
direct child of docker-init (``-- COMMAND ...`` runs a command instead of a module). It owns
the container's stdin (the server's attached channel) and passes every line to the runner
through a pipe, except the server's heartbeats, which it consumes. When no line at all has
arrived for the grace period, the server is gone: it SIGKILLs every process it may signal
(``kill(-1)``: the runner and everything user code started) and exits, so the container stops.

Why a process and not a thread of the runner: user code shares the runner's interpreter and can
hold the GIL in C code, block signals or ignore SIGINT; none of that reaches this process. The
runner's output does not pass through here (it writes the container's stdout itself), so the
extra hop costs only the server-to-runner direction, one ``read`` and one ``write`` per batch.

The runner module starts in a fork of this interpreter, not a second one: a cold start no
longer waits for two interpreters and their imports in a row (about 25 ms of ~150), and the
pages of the interpreter are shared by both processes. Nothing in here imports what the runner
would not import anyway.

Standard library only, imported by nothing else in the runner, and deliberately small.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import sys
import time

from .protocol import HEARTBEAT_LINE

MAX_PENDING_BYTES = 64 * 1024 * 1024  # stop reading stdin while the runner lags this far
TICK_S = 1.0
ORPHAN_EXIT_CODE = 70


USAGE = ("usage: python3 -m selfbox_runner.relay [--orphan-grace-s S] [--wait-for-server] "
         "(--module NAME | -- COMMAND ...)")


def _spawn(argv: list[str], module: str | None = None) -> tuple[int, int]:
    """Start the runner (``module`` in a fork of this interpreter, else the command ``argv``)
    with a fresh pipe as its stdin; return ``(pid, write end)``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        code = 127
        try:
            os.dup2(read_end, 0)
            os.close(read_end)
            os.close(write_end)
            if module is None:
                os.execvp(argv[0], argv)
            code = _run_module(module)
        finally:
            os._exit(code)
    os.close(read_end)
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    return pid, write_end


def _run_module(name: str) -> int:  # pragma: no cover - runs in the forked child
    """Run ``name`` as ``python3 -m name`` would, in this process; its exit code."""
    import runpy

    try:
        runpy.run_module(name, run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # nothing left to report it to
                stream.flush()


def _filter(chunk: bytes) -> bytes:
    """The complete lines of ``chunk`` without the heartbeats."""
    if HEARTBEAT_LINE not in chunk:
        return chunk
    lines = chunk.split(b"\n")
    return b"".join(line + b"\n" for line in lines[:-1] if line.strip() != HEARTBEAT_LINE)


def _orphaned(grace_s: float, child: int) -> None:
    sys.stderr.write(f"selfbox relay: no word from the server for {grace_s:g} s "
                     "(SELFBOX_ORPHAN_GRACE_S); stopping the sandbox\n")
    sys.stderr.flush()
    try:
        if os.getppid() == 1:
            # In the container (our parent is docker-init): every process of this sandbox
            # but init and ourselves, whatever user code started and however.
            os.kill(-1, signal.SIGKILL)
        else:  # anywhere else (a test on a host): only what we started
            os.kill(child, signal.SIGKILL)
    finally:
        os._exit(ORPHAN_EXIT_CODE)


def _first_word(grace_s: float) -> bytes:
    """Wait for the server's first line (a heartbeat) before the runner may write: where the
    orchestrator starts the container before anyone attaches (Swarm), the runner's hello would
    otherwise go nowhere. Exits as an orphan if no server comes within the grace period."""
    deadline = time.monotonic() + grace_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.stderr.write(f"selfbox relay: no server attached within {grace_s:g} s\n")
            sys.stderr.flush()
            os._exit(ORPHAN_EXIT_CODE)
        try:
            ready = select.select([0], [], [], min(TICK_S, left))[0]
        except InterruptedError:
            continue
        if ready:
            data = os.read(0, 1 << 16)
            if not data:
                os._exit(ORPHAN_EXIT_CODE)
            return data


def relay(grace_s: float, argv: list[str], wait_for_server: bool = False,
          module: str | None = None) -> int:
    early = _first_word(grace_s) if wait_for_server else b""
    pid, pipe = _spawn(argv, module)
    stdin = 0
    reading = True
    cut = early.rfind(b"\n") + 1
    partial = early[cut:]
    pending = bytearray(_filter(early[:cut]))
    last_word = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        now = time.monotonic()
        readable = [stdin] if reading and len(pending) < MAX_PENDING_BYTES else []
        writable = [pipe] if pending else []
        timeout = min(TICK_S, max(last_word + grace_s - now, 0.0))
        try:
            ready_r, ready_w, _ = select.select(readable, writable, [], timeout)
        except InterruptedError:
            continue
        done, status = os.waitpid(pid, os.WNOHANG)  # an exit during the select wins
        if done:
            return os.waitstatus_to_exitcode(status)
        if not ready_r and time.monotonic() - last_word > grace_s:
            # Only after a fresh look at stdin: a container thawed after a long pause (the
            # freeze may have caught us inside that select) finds the heartbeats the server
            # sent meanwhile waiting there.
            ready_r = select.select(readable, [], [], 0)[0] if readable else []
            if not ready_r:
                _orphaned(grace_s, pid)
        if ready_r:
            data = os.read(stdin, 1 << 16)
            if not data:
                reading = False  # stdin closed for good: only the grace period is left
            else:
                last_word = time.monotonic()
                data = partial + data
                cut = data.rfind(b"\n") + 1
                partial = data[cut:]
                pending += _filter(data[:cut])
                if len(partial) > MAX_PENDING_BYTES:  # no newline in sight: pass it on
                    pending += partial
                    partial = b""
        if pending and (ready_w or ready_r):
            try:
                written = os.write(pipe, pending)
                del pending[:written]
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno != errno.EPIPE:
                    raise
                pending.clear()  # the runner is gone; waitpid tells at the next turn


def _parse(argv: list[str]) -> tuple[float, bool, str | None, list[str]]:
    """``(grace_s, wait_for_server, module, command)``; no argparse: its import alone was a
    tenth of this process's start-up, on every cold start."""
    grace_s, wait, module = 60.0, False, None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            break
        if arg == "--wait-for-server":
            wait = True
        elif arg in ("--orphan-grace-s", "--module") and args:
            value = args.pop(0)
            if arg == "--module":
                module = value
            else:
                grace_s = float(value)
        else:
            raise ValueError(f"unexpected argument {arg!r}")
    if (module is None) == (not args):
        raise ValueError("give either --module NAME or -- COMMAND ...")
    return grace_s, wait, module, args


def main(argv: list[str] | None = None) -> None:
    try:
        grace_s, wait, module, command = _parse(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        sys.stderr.write(f"{USAGE}\nselfbox relay: {exc}\n")
        sys.exit(2)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    code = relay(grace_s, command, wait, module)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
