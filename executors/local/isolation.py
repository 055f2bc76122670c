"""``isolation="process"``: the interpreter in a child process that can really be stopped.

The child is a fresh ``python`` (not a fork of the host) speaking JSON lines over private pipe
descriptors: the host never unpickles anything from it. It runs with RLIMIT_AS/RLIMIT_CPU/
RLIMIT_FSIZE and is SIGKILLed when a run overstays its deadline (a C-level busy call, a
catastrophic regex). State (variables, functions, imports) lives in the child between runs; after
a kill the next run starts a fresh child and says so in ``stderr``. Tools stay in the host and are
called over the same channel (arguments and results cross as JSON).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..exceptions import ConfigurationError
from ..models import Execution, ExecutionError
from .budget import NO_TIMEOUT_S, Limits

__all__ = ["ProcessInterpreter", "child_main"]

_GRACE_S = 1.5  # the child stops itself at the deadline; the kill is the backstop
_RESTART_NOTE = (
    "note: the sandbox process was restarted because the previous run was killed "
    "({reason}); variables, functions and imports from earlier runs were lost.\n"
)


def _json_plain(value: Any) -> Any:
    """JSON-able copy of a host value; anything else becomes its repr."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError, OverflowError):
        return repr(value)


class ProcessInterpreter:
    """Host side of the child-process interpreter."""

    def __init__(self, imports: list[str], limits: Limits) -> None:
        self.imports = imports
        self.limits = limits
        self.tools: dict[str, Callable[..., Any]] = {}
        self.variables: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._note = ""

    # -- process management ----------------------------------------------------------------
    def _spawn(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        # The child sees the parent's import path, so that authorized third-party modules
        # (numpy, pandas, ...) import there too; -I keeps out PYTHON* variables and user site.
        path = [root, *(p for p in sys.path if p and p != root)]
        boot = f"import sys; sys.path[:] = {path!r}; from executors.local.isolation import child_main; child_main()"  # noqa: E501
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", boot],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0", "LANG": "C.UTF-8"},
        )
        self._buf = b""
        self._send({"op": "init", "imports": self.imports, "limits": self.limits.to_dict()})
        if self.tools:
            self._send({"op": "tools", "names": sorted(self.tools)})
        if self.variables:
            self._send({"op": "vars", "values": self.variables})

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    def close(self) -> None:
        self._kill()

    def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        self._proc.stdin.flush()

    def _recv(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None at the deadline. Raises EOFError if the child died."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        message = json.loads(line)
        if not isinstance(message, dict):
            raise EOFError
        return message

    # -- the executor surface --------------------------------------------------------------
    def send_tools(self, tools: Mapping[str, Callable[..., Any]]) -> None:
        self.tools.update(tools)
        if self._proc is not None:
            self._send({"op": "tools", "names": sorted(self.tools)})

    def send_variables(self, variables: Mapping[str, Any]) -> None:
        checked = {}
        for name, value in variables.items():
            try:
                checked[name] = json.loads(json.dumps(value))
            except (TypeError, ValueError, OverflowError) as exc:
                raise ConfigurationError(
                    f"variable {name!r} must be JSON-serializable with isolation='process' ({exc})",
                    argument="variables",
                ) from None
        self.variables.update(checked)
        if self._proc is not None:
            self._send({"op": "vars", "values": checked})

    def run(self, code: str, timeout_s: float) -> Execution:
        started = time.perf_counter()
        if self._proc is None or self._proc.poll() is not None:
            self._kill()
            self._spawn()
        note, self._note = self._note, ""
        self._send({"op": "run", "code": code, "timeout_s": timeout_s})
        deadline = time.monotonic() + timeout_s + _GRACE_S
        output: list[str] = []
        try:
            while True:
                message = self._recv(deadline)
                if message is None:
                    self._kill()
                    self._note = _RESTART_NOTE.format(reason="timeout")
                    return self._failure(
                        "timeout",
                        "TimeoutError",
                        f"execution exceeded the time budget (timeout_s={timeout_s:g}); the sandbox "  # noqa: E501
                        "process was killed and its state lost",
                        output,
                        note,
                        started,
                    )
                op = message.get("op")
                if op == "output":
                    output.append(str(message.get("text", "")))
                elif op == "tool_call":
                    self._answer_tool(message)
                elif op == "result":
                    execution = Execution.from_dict(message["execution"])
                    execution.stdout = "".join(output) + execution.stdout
                    execution.stderr = note + execution.stderr
                    execution.duration_s = time.perf_counter() - started
                    return execution
        except (EOFError, OSError, ValueError):
            self._kill()
            self._note = _RESTART_NOTE.format(reason="it died")
            return self._failure(
                "sandbox_died",
                "SandboxDied",
                "the sandbox process died (memory or CPU limit, or a crash); its state was lost",
                output,
                note,
                started,
            )

    def _failure(
        self, status: str, name: str, value: str, output: list[str], note: str, started: float
    ) -> Execution:
        return Execution(
            stdout="".join(output),
            stderr=note,
            status=status,  # type: ignore[arg-type]
            error=ExecutionError(name, value, f"{name}: {value}"),
            duration_s=time.perf_counter() - started,
        )

    def _answer_tool(self, message: dict[str, Any]) -> None:
        name = message.get("name")
        fn = self.tools.get(name) if isinstance(name, str) else None
        try:
            if fn is None:
                raise NameError(f"unknown tool {name!r}")
            args = message.get("args", [])
            kwargs = message.get("kwargs", {})
            reply: dict[str, Any] = {
                "op": "tool_result",
                "ok": True,
                "value": _json_plain(fn(*args, **kwargs)),
            }
        except Exception as exc:
            reply = {
                "op": "tool_result",
                "ok": False,
                "name": type(exc).__name__,
                "message": str(exc),
            }
        self._send(reply)


# -- the child ---------------------------------------------------------------------------------
def child_main() -> None:
    """Entry point of the child process (reads JSON lines, writes JSON lines)."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # stray writes to fd 1 can never forge protocol messages

    def send(message: dict[str, Any]) -> None:
        proto_out.write(json.dumps(message).encode() + b"\n")
        proto_out.flush()

    def recv() -> dict[str, Any]:
        line = proto_in.readline()
        if not line:
            raise SystemExit(0)
        message = json.loads(line)
        assert isinstance(message, dict)
        return message

    init = recv()
    from .interpreter import _BIG_STACK, _start_big_stack_thread

    limits = Limits(**init["limits"])
    # Serve from a thread with a 1 GiB C stack (see Interpreter.run), created before the
    # address-space limit, which then has to leave room for it.
    done: list[BaseException | None] = []

    def serve_thread() -> None:
        try:
            _serve(init, limits, send, recv)
        except BaseException as exc:
            done.append(exc)

    thread = _start_big_stack_thread(serve_thread)
    _apply_rlimits(limits, extra=_BIG_STACK if thread is not None else 0)
    if thread is None:
        _serve(init, limits, send, recv)
        return
    thread.join()


def _serve(
    init: dict[str, Any],
    limits: Limits,
    send: Callable[[dict[str, Any]], None],
    recv: Callable[[], dict[str, Any]],
) -> None:
    from .interpreter import Interpreter

    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(4300)
    interp = Interpreter(
        additional_authorized_imports=init["imports"], limits=limits, big_stack=False
    )
    interp.budget.on_output = lambda text: send({"op": "output", "text": text})

    def make_tool(tool_name: str) -> Callable[..., Any]:
        def call_tool(*args: Any, **kwargs: Any) -> Any:
            try:
                payload = json.loads(json.dumps({"args": list(args), "kwargs": kwargs}))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"arguments of tool {tool_name!r} must be JSON-serializable ({exc})"
                ) from None
            send({"op": "tool_call", "name": tool_name, **payload})
            reply = recv()
            if reply.get("ok"):
                return reply.get("value")
            exc_type = getattr(builtins, str(reply.get("name")), None)
            message = str(reply.get("message", ""))
            if isinstance(exc_type, type) and issubclass(exc_type, Exception):
                raise exc_type(message)
            raise RuntimeError(f"{reply.get('name')}: {message}")

        return call_tool

    while True:
        message = recv()
        op = message.get("op")
        if op == "tools":
            interp.send_tools({n: make_tool(n) for n in message.get("names", [])})
        elif op == "vars":
            interp.send_variables(message.get("values", {}))
        elif op == "run":
            execution = interp.run(
                str(message.get("code", "")), float(message.get("timeout_s", limits.timeout_s))
            )
            send({"op": "result", "execution": _json_plain(execution.to_dict())})


def _apply_rlimits(limits: Limits, extra: int = 0) -> None:
    try:
        import resource
    except ImportError:  # not on POSIX: the kill on timeout is still there
        return
    address_space = (limits.max_memory_mb + 512) * 2**20 + extra
    # without a wall-clock budget (timeout_s=None) the CPU time is still capped, at an hour
    cpu = 3600 if limits.timeout_s >= NO_TIMEOUT_S else int(max(60, limits.timeout_s * 20))
    for which, value in (
        (resource.RLIMIT_AS, address_space),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))
