"""The runner's main loop: contexts (namespaces), executions, interrupts, tool calls."""

from __future__ import annotations

import ast
import builtins
import contextlib
import itertools
import linecache
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import display, magics
from .bash import BashSession
from .capture import Captures
from .channel import Channel
from .outbox import Outbox
from .protocol import PROTOCOL_VERSION, ErrorCode, Msg, Op, error_reply

OpHandler = Callable[[dict[str, Any]], dict[str, Any] | None]
DEFAULT_OUTPUT_LIMIT = 1 << 20
DEFAULT_RESULT_LIMIT = 16 << 20
DEFAULT_MESSAGE_LIMIT = 8 << 20
MESSAGE_OVERHEAD = 64 << 10  # the frame around a bundle, and JSON escapes
HOME = os.environ.get("HOME", "/tmp")


class FinalAnswerSignal(BaseException):
    """Raised by ``final_answer``; recognised by identity, never by name."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


class ToolCallError(Exception):
    """A host tool failed (or could not be reached); raised in user code."""


@dataclass
class Context:
    id: str
    cwd: str
    namespace: dict[str, Any] = field(default_factory=dict)
    execution_count: int = 0
    language: str = "python"
    shell: BashSession | None = None  # for language "bash"


@dataclass
class Current:
    id: str
    limit: int
    result_limit: int = DEFAULT_RESULT_LIMIT
    message_limit: int = DEFAULT_MESSAGE_LIMIT
    token: str = ""  # the host's proof that a "done" is ours (see _finish)
    sent: int = 0
    result_sent: int = 0
    truncated: bool = False
    results_truncated: bool = False

    def room_for_result(self, data: dict[str, Any]) -> bool:
        """Spend the execution's result budget on one bundle, if it fits."""
        size = sum(len(v) if isinstance(v, str) else len(repr(v)) for v in data.values())
        # A bundle larger than one message would be dropped by the host unread.
        too_big = size > self.message_limit - MESSAGE_OVERHEAD
        if too_big or self.results_truncated or self.result_sent + size > self.result_limit:
            self.results_truncated = True
            return False
        self.result_sent += size
        return True


class Kernel:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.contexts: dict[str, Context] = {}
        self.tools: dict[str, dict[str, Any]] = {}
        self.current: Current | None = None
        self._current_lock = threading.Lock()
        self._executions: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._replies: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._call_ids = itertools.count(1)
        self._executing = False
        self._main_ident = threading.main_thread().ident
        self._deadline: float | None = None
        self.capture = Captures(self._on_output)
        # The replied ops, by name: the kernel's own here, the data plane's merged in at start.
        self.outbox = Outbox()  # for a server that attaches again (after a restart, a drop)
        channel.tap = self.outbox.tap
        self.ops: dict[str, OpHandler] = self._kernel_ops()
        self.new_context("default", HOME)

    # -- output ---------------------------------------------------------------------------
    def _on_output(self, name: str, text: str) -> None:
        with self._current_lock:
            current = self.current
            if current is None or current.truncated:
                return
            size = len(text.encode("utf-8", "replace"))
            if current.sent + size > current.limit:
                room = max(current.limit - current.sent, 0)
                text = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
                current.truncated = True
            current.sent += size
        if text:
            self.channel.send({"type": Msg.STREAM, "id": current.id, "name": name, "text": text})

    def display(self, value: Any, *, main: bool = False) -> None:
        current = self.current
        if current is None:
            return
        data = display.bundle(value)
        if not current.room_for_result(data):
            return
        self.channel.send({"type": Msg.RESULT, "id": current.id, "data": data,
                           "is_main_result": main})

    def show(self, *values: Any, raw: bool = False, **_ignored: Any) -> None:
        """IPython's ``display()``: each value as a result (``raw``: each is a MIME bundle)."""
        for value in values:
            if raw and isinstance(value, dict):
                self.display_bundle(value)
            else:
                self.display(value)

    def display_bundle(self, data: dict[str, Any]) -> None:
        """A MIME bundle given as is (``display(..., raw=True)``); ``text/plain`` is required."""
        current = self.current
        if current is None:
            return
        bundle = {str(k): v for k, v in data.items() if isinstance(v, (str, dict, list))}
        bundle.setdefault("text/plain", "")
        if not current.room_for_result(bundle):
            return
        self.channel.send({"type": Msg.RESULT, "id": current.id, "data": bundle,
                           "is_main_result": False})

    # -- contexts -------------------------------------------------------------------------
    def new_context(self, context_id: str, cwd: str, language: str = "python") -> Context:
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        namespace["final_answer"] = self._final_answer
        namespace["display"] = self.show
        for name in self.tools:
            namespace[name] = self._tool_proxy(name)
        if language not in ("python", "bash"):
            raise ValueError(f"language {language!r} is not supported (python, bash)")
        context = Context(context_id, cwd, namespace, language=language)
        if language == "bash":
            context.shell = BashSession(cwd)
        self.drop_context(context_id)
        self.contexts[context_id] = context
        return context

    def drop_context(self, context_id: str) -> None:
        context = self.contexts.pop(context_id, None)
        if context is not None and context.shell is not None:
            context.shell.close()

    @staticmethod
    def _final_answer(answer: Any) -> None:
        """Finish the task with ``answer`` as the final answer."""
        raise FinalAnswerSignal(answer)

    def _tool_proxy(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self.call_tool(name, list(args), kwargs)

        call.__name__ = name
        call.__doc__ = self.tools.get(name, {}).get("description", "")
        return call

    def call_tool(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        current = self.current
        if current is None:
            raise ToolCallError(f"tool {name!r} can only be called while code runs")
        ok_args, json_args = display.plain_json(args)
        ok_kwargs, json_kwargs = display.plain_json(kwargs)
        if not (ok_args and ok_kwargs):
            raise TypeError(f"arguments of tool {name!r} must be JSON data "
                            "(str, numbers, lists, dicts)")
        call_id = f"{current.id}.{next(self._call_ids)}"
        event, slot = threading.Event(), list[dict[str, Any]]()
        self._replies[call_id] = (event, slot)
        self.channel.send({"type": Msg.TOOL_CALL, "id": current.id, "call_id": call_id,
                           "name": name, "args": json_args, "kwargs": json_kwargs})
        try:
            event.wait()
        finally:
            self._replies.pop(call_id, None)
        reply = slot[0]
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise ToolCallError(f"tool {name!r} failed: {error.get('name', 'Error')}: "
                                f"{error.get('value', '')}")
        return reply.get("value")

    # -- the control thread ---------------------------------------------------------------
    def control_loop(self) -> None:
        for message in self.channel.messages():
            op = message.get("op")
            try:
                if op == Op.EXECUTE:
                    self._executions.put(message)
                elif op == Op.INTERRUPT:
                    self.interrupt(message.get("id"))
                elif op == Op.FENCE:
                    # From this thread, not a new one: the answer must follow what was
                    # written before, and needs no free pid.
                    self.channel.send({"type": Msg.FENCE, "id": message.get("id")})
                elif op == Op.HEARTBEAT:
                    pass  # normally consumed by the relay; harmless without one
                elif op == Op.ACK:
                    self.outbox.ack(message.get("id"))
                elif op == Op.TOOL_REPLY:
                    waiter = self._replies.get(str(message.get("call_id")))
                    if waiter is not None:
                        waiter[1].append(message)
                        waiter[0].set()
                else:
                    self._start_op(message)
            except Exception as exc:  # one bad message never stops the runner
                self.channel.send({"type": Msg.LOG, "level": "error", "text": repr(exc)})
        self._executions.put(None)

    def _start_op(self, message: dict[str, Any]) -> None:
        try:
            threading.Thread(target=self._run_op, args=(message,), daemon=True).start()
        except RuntimeError as exc:
            # No thread (every pid of the sandbox is taken, by a fork bomb say): answer
            # now, so the host can tell its client instead of waiting for a reply.
            self.channel.send({"type": Msg.REPLY, "req": message.get("req"), "ok": False,
                               "error": {"code": ErrorCode.BUSY, "name": type(exc).__name__,
                                         "value": f"the sandbox cannot start a thread ({exc}); "
                                         "its processes may hold every pid (the pids limit)"}})

    def _run_op(self, message: dict[str, Any]) -> None:
        op, reply_to = str(message.get("op")), message.get("req")
        try:
            reply = self.handle_op(op, message) or {}
            reply.setdefault("ok", True)
        except Exception as exc:
            reply = error_reply(exc)
        self.channel.send({"type": Msg.REPLY, "req": reply_to, **reply})

    def handle_op(self, op: str, message: dict[str, Any]) -> dict[str, Any] | None:
        handler = self.ops.get(op)
        if handler is None:
            raise ValueError(f"unknown op {op!r}")
        return handler(message)

    # -- replied ops of the kernel itself (the data plane's are in :mod:`.envd`) ----------
    def _kernel_ops(self) -> dict[str, OpHandler]:
        return {
            Op.PING: lambda message: {"pid": os.getpid()},
            Op.SET_ENV: self._set_env,
            Op.SET_DEADLINE: self._set_deadline,
            Op.SET_TOOLS: self._set_tools,
            Op.SET_VARIABLES: self._set_variables,
            Op.CONTEXT_CREATE: self._context_create,
            Op.CONTEXT_RESTART: self._context_restart,
            Op.CONTEXT_REMOVE: self._context_remove,
            Op.STATE_PUT: lambda message: self.outbox.put_record(message.get("record")),
            Op.RESYNC: self._resync,
        }

    def _resync(self, message: dict[str, Any]) -> dict[str, Any]:
        """What a server that attaches again needs: the record, the latest run's messages it
        has not seen (``since``), contexts, pending tool calls."""
        since = message.get("since")
        return {**self.outbox.snapshot(since if isinstance(since, dict) else None),
                "protocol": PROTOCOL_VERSION, "pending_tool_calls": list(self._replies),
                "contexts": [{"id": c.id, "cwd": c.cwd, "language": c.language,
                              "execution_count": c.execution_count}
                             for c in list(self.contexts.values())]}

    @staticmethod
    def _set_env(message: dict[str, Any]) -> None:
        env = message.get("env") or {}
        os.environ.update({str(k): str(v) for k, v in env.items()})

    def _set_deadline(self, message: dict[str, Any]) -> None:
        self._deadline = float(message["unix"])

    def _set_tools(self, message: dict[str, Any]) -> None:
        self.tools = {str(t["name"]): t for t in message.get("tools", [])}
        for context in self.contexts.values():
            for name in self.tools:
                context.namespace[name] = self._tool_proxy(name)

    def _set_variables(self, message: dict[str, Any]) -> None:
        context = self.contexts[str(message.get("context") or "default")]
        context.namespace.update(message.get("variables") or {})

    def _context_create(self, message: dict[str, Any]) -> dict[str, Any]:
        context = self.new_context(str(message["context"]), str(message.get("cwd") or HOME),
                                   str(message.get("language") or "python"))
        return {"context": context.id, "cwd": context.cwd, "language": context.language}

    def _context_restart(self, message: dict[str, Any]) -> None:
        old = self.contexts[str(message["context"])]
        self.new_context(old.id, old.cwd, old.language)

    def _context_remove(self, message: dict[str, Any]) -> None:
        context_id = str(message["context"])
        if context_id not in self.contexts:
            raise KeyError(context_id)
        self.drop_context(context_id)

    def interrupt(self, execution_id: object) -> None:
        current = self.current
        if self._executing and current is not None and current.id == execution_id:
            # SIGINT at the main thread: KeyboardInterrupt even inside time.sleep().
            signal.pthread_kill(self._main_ident, signal.SIGINT)  # type: ignore[arg-type]

    def watchdog(self) -> None:
        """Exit once the lifetime is over, even if the server that should kill us is gone."""
        while True:
            time.sleep(1.0)
            if self._deadline is not None and time.time() > self._deadline:
                os._exit(3)

    # -- the main thread ------------------------------------------------------------------
    def serve(self) -> None:
        threading.Thread(target=self.control_loop, name="control", daemon=True).start()
        threading.Thread(target=self.watchdog, name="watchdog", daemon=True).start()
        self.channel.send({"type": Msg.READY, "protocol": PROTOCOL_VERSION, "pid": os.getpid(),
                           "python": sys.version.split()[0], "done_token": True})
        while True:
            try:
                message = self._executions.get()
                if message is None:
                    return
                self.execute(message)
            except KeyboardInterrupt:
                continue  # an interrupt that arrived between executions

    def execute(self, message: dict[str, Any]) -> None:
        execution_id = str(message.get("id"))
        context = self.contexts.get(str(message.get("context") or "default"))
        limit = int(message.get("output_limit_bytes") or DEFAULT_OUTPUT_LIMIT)
        result_limit = int(message.get("result_limit_bytes") or DEFAULT_RESULT_LIMIT)
        message_limit = int(message.get("max_message_bytes") or DEFAULT_MESSAGE_LIMIT)
        timeout = message.get("timeout_s")
        self.outbox.begin(execution_id, float(timeout) if isinstance(timeout, (int, float))
                          else None)
        with self._current_lock:
            self.current = Current(execution_id, limit, result_limit, message_limit,
                                   str(message.pop("token", "") or ""))
        if context is None:
            self._send_error(execution_id, "ContextNotFound",
                             f"no context {message.get('context')!r}", "")
            self._finish(execution_id, None, "error")
            return
        context.execution_count += 1
        self.capture.restore()
        with contextlib.suppress(OSError):
            os.chdir(context.cwd)
        try:
            status, interrupted = self._execute_in(context, execution_id,
                                                   str(message.get("code", "")))
        except BaseException as exc:  # an interrupt that landed in our own bookkeeping
            self._executing = False
            status, interrupted = "error", isinstance(exc, KeyboardInterrupt)
            self._send_error(execution_id, type(exc).__name__, _safe_str(exc), "")
        finally:
            self._executing = False
        with contextlib.suppress(OSError):
            context.cwd = os.getcwd()  # os.chdir and %cd last, as in a Jupyter kernel
        self._finish(execution_id, context, status, interrupted)

    def _execute_in(self, context: Context, execution_id: str, code: str) -> tuple[str, bool]:
        """Run the code and show its value; user code (``__repr__`` included) stays
        interruptible throughout. Returns ``(status, interrupted)``."""
        self._executing = True
        try:
            value = self._run_code(code, context)
            self._flush()
            self._emit_figures()
            if value is not None:
                context.namespace["_"] = value
                self.display(value, main=True)
        except FinalAnswerSignal as answer:
            self._flush()
            self._emit_figures()
            ok, value = display.plain_json(answer.value)
            data = display.bundle(answer.value)
            current = self.current
            if current is not None and not current.room_for_result(
                    {"value": repr(value) if ok else "", **data}):
                ok, value, data = False, None, {"text/plain": "<final answer over the result "
                                                "limit (result_limit_bytes)>"}
            self.channel.send({"type": Msg.FINAL_ANSWER, "id": execution_id,
                               "value": value if ok else None, "is_json": ok, "data": data})
        except BaseException as exc:
            self._executing = False
            self._flush()
            self._emit_figures()
            self._send_error(execution_id, type(exc).__name__, _safe_str(exc),
                             _format_traceback(exc))
            return "error", isinstance(exc, KeyboardInterrupt)
        finally:
            self._executing = False
        return "ok", False

    def _run_code(self, code: str, context: Context) -> Any:
        if context.shell is not None:
            context.shell.run(code)
            return None
        filename = f"<cell-{context.id}-{context.execution_count}>"
        tree = _parse(code, filename)
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        last: ast.expr | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body.pop().value  # type: ignore[attr-defined]
        namespace = context.namespace
        exec(compile(tree, filename, "exec"), namespace)
        if last is None:
            return None
        return eval(compile(ast.Expression(last), filename, "eval"), namespace)

    def _flush(self) -> None:
        self.capture.flush()

    def _emit_figures(self) -> None:
        try:
            for figure in display.open_figures():
                self.display(figure)
            display.close_figures()
        except Exception as exc:
            self.channel.send({"type": Msg.LOG, "level": "warning", "text": f"figure: {exc!r}"})

    def _send_error(self, execution_id: str, name: str, value: str, tb: str) -> None:
        self.channel.send({"type": Msg.ERROR, "id": execution_id, "name": name, "value": value,
                           "traceback": tb})

    def _finish(self, execution_id: str, context: Context | None, status: str,
                interrupted: bool = False) -> None:
        with self._current_lock:
            current, self.current = self.current, None
        # The token came with the execute op and is written nowhere else: a "done" that
        # other code in the sandbox forges (through /proc/1/fd/1, say) lacks it.
        self.channel.send({
            "type": Msg.DONE, "id": execution_id, "status": status, "interrupted": interrupted,
            "truncated": current.truncated if current else False,
            "results_truncated": current.results_truncated if current else False,
            "token": current.token if current else "",
            "execution_count": context.execution_count if context else None,
        })


def _parse(code: str, filename: str) -> ast.Module:
    """Plain Python first; a cell that does not parse may be notebook syntax (magics)."""
    try:
        return ast.parse(code, filename, "exec")
    except SyntaxError as error:
        rewritten = magics.transform(code)
        if rewritten is None:
            raise
        try:
            return ast.parse(rewritten, filename, "exec")
        except SyntaxError as second:
            # A mistake on a line of plain Python is reported there, not at the magic.
            original, changed = code.splitlines(), rewritten.splitlines()
            line = (second.lineno or 0) - 1
            if 0 <= line < min(len(original), len(changed)) and original[line] == changed[line]:
                raise second from None
            raise error from None


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} with an unprintable message>"


def _format_traceback(exc: BaseException) -> str:
    """The traceback without the runner's own frames: it starts at the user's cell."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    if isinstance(exc, SyntaxError):
        tb = None
    try:
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:
        return f"{type(exc).__name__}: {_safe_str(exc)}\n"
