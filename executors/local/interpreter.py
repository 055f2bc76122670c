"""One sandboxed interpreter: source checks, parsing, compilation and a run's outcome."""

from __future__ import annotations

import ast
import contextlib
import contextvars
import ctypes
import decimal
import queue
import random
import re
import sys
import threading
import time
import tokenize
from collections.abc import Callable, Iterable, Mapping
from io import StringIO
from typing import Any

from ..models import Execution, ExecutionError, Result
from .budget import Budget, Limits
from .compiler import Compiler
from .errors import (
    UNCATCHABLE,
    FinalAnswerSignal,
    OutputLimitExceeded,
    SecurityError,
    SourceLimitExceeded,
    TimeoutExceeded,
)
from .formatting import format_traceback, safe_repr, safe_str, to_plain
from .frame import Frame
from .guards import Guards
from .host_audit import sandboxed, unsandboxed
from .natives import FinalAnswer, make_builtins
from .policy import Policy
from .rules import DEFAULT_AUTHORIZED_IMPORTS, PLAIN_TYPES
from .scope import analyze

__all__ = ["Interpreter"]

_MAX_HOST_RECURSION = 25_000
_SUSPICIOUS = re.compile(r"(?:[-+~]\s*){40,}|(?:\bnot\s+){40,}|[(\[{]{40,}")


class Interpreter:
    """State (namespace, tools) and policy of one sandbox; :meth:`run` executes code in it."""

    def __init__(
        self,
        *,
        additional_authorized_imports: Iterable[str] = (),
        limits: Limits | None = None,
        big_stack: bool = True,
    ) -> None:
        self.limits = limits or Limits()
        self.budget = Budget(self.limits)
        self.policy = Policy([*DEFAULT_AUTHORIZED_IMPORTS, *additional_authorized_imports])
        self.guards = Guards(self.budget, self.policy)
        self.builtins = make_builtins(self.budget, self.policy, self.guards)
        self.globals: dict[str, Any] = {"__name__": "__main__"}
        self.protected: dict[str, Any] = {"final_answer": FinalAnswer()}
        self.policy.safe_ids.add(id(self.protected["final_answer"]))
        self.frame = Frame(self.globals, None, None)
        self.policy.lib.user_globals = self.globals
        # The audit-hook backstop costs a Python call per audit event of the process (id(),
        # __code__ reads): only where authorized libraries could reach files or programs.
        p = self.policy
        extra = p.allow_all or p.prefixes or p.exact - set(DEFAULT_AUTHORIZED_IMPORTS)
        self._backstop = sandboxed if extra else contextlib.nullcontext
        self.execution_count = 0
        self.big_stack = big_stack
        self._tool_requests: queue.SimpleQueue[Any] | None = None
        self._decimal_context = decimal.Context()
        self._context = contextvars.Context()
        self._context_entered = False
        self._random_state = random.Random().getstate()
        self._stuck: threading.Thread | None = None  # a worker left running native code

    # -- state -----------------------------------------------------------------------------
    def send_tools(self, tools: Mapping[str, Callable[..., Any]]) -> None:
        for name, fn in tools.items():
            tool = _make_tool(name, fn, self)
            self.policy.safe_ids.add(id(tool))
            self.protected[name] = tool
            self.globals.pop(name, None)

    def send_variables(self, variables: Mapping[str, Any]) -> None:
        for name, value in variables.items():
            self.globals[name] = self.deep_guard(value)

    def deep_guard(self, value: Any, depth: int = 0) -> Any:
        """Check a host value (tool result, variable) and what it contains."""
        value = self.policy.guard(value)
        if depth > 20:
            return value
        t = type(value)
        if t is list or t is tuple or t is set or t is frozenset:
            for item in value:
                self.deep_guard(item, depth + 1)
        elif t is dict:
            for k, v in value.items():
                self.deep_guard(k, depth + 1)
                self.deep_guard(v, depth + 1)
        return value

    # -- compilation -----------------------------------------------------------------------
    def check_source(self, code: str) -> None:
        lim = self.limits
        if (
            len(code) > lim.max_source_bytes
            or len(code.encode("utf-8", "surrogatepass")) > lim.max_source_bytes
        ):
            raise SourceLimitExceeded(
                f"source is larger than max_source_bytes={lim.max_source_bytes}"
            )
        if _SUSPICIOUS.search(code) is None:
            return
        # Something looks deeply nested: measure it precisely (tokenize is iterative).
        depth = run = 0
        try:
            for tok in tokenize.generate_tokens(StringIO(code).readline):
                if tok.type == tokenize.OP and tok.string in "([{":
                    depth += 1
                    if depth > lim.max_nesting_depth:
                        raise SourceLimitExceeded(
                            f"source nesting is deeper than max_nesting_depth={lim.max_nesting_depth}"  # noqa: E501
                        )
                elif tok.type == tokenize.OP and tok.string in ")]}":
                    depth -= 1
                if (tok.type == tokenize.OP and tok.string in ("-", "+", "~")) or (
                    tok.type == tokenize.NAME and tok.string == "not"
                ):
                    run += 1
                    if run > lim.max_nesting_depth:
                        raise SourceLimitExceeded(
                            f"source nesting is deeper than max_nesting_depth={lim.max_nesting_depth}"  # noqa: E501
                        )
                elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
                    run = 0
        except (tokenize.TokenError, SyntaxError, IndentationError):
            return  # ast.parse reports the syntax error itself

    def compile(self, code: str) -> tuple[Callable[[Frame], Any], bool]:
        if not isinstance(code, str):
            raise TypeError("code must be a string")
        self.check_source(code)
        try:
            tree = ast.parse(code, "<code>")
        except (RecursionError, MemoryError):
            raise SourceLimitExceeded("source is too deeply nested to parse") from None
        _check_depth(tree, self.limits.max_nesting_depth * 5)
        if "break" in code or "continue" in code:  # else the tree has no Break/Continue
            _check_loops(tree)
        module_scope, scopes = analyze(tree)
        compiler = Compiler(
            budget=self.budget,
            policy=self.policy,
            guards=self.guards,
            globals_=self.globals,
            builtins_=self.builtins,
            protected=self.protected,
            scopes=scopes,
        )
        body = tree.body
        last_is_expr = bool(body) and isinstance(body[-1], ast.Expr)
        fns = [compiler.stmt(s, module_scope) for s in (body[:-1] if last_is_expr else body)]
        if last_is_expr:
            last = body[-1]
            assert isinstance(last, ast.Expr)
            value = compiler.expr(last.value, module_scope)

            def last_expr(f: Frame) -> None:
                f.ret = value(f)

            last_expr.sb_pos = (last.lineno, last.col_offset, "<module>")  # type: ignore[attr-defined]
            fns.append(last_expr)
        return compiler.make_block(fns), last_is_expr

    # -- running ---------------------------------------------------------------------------
    def run(self, code: str, timeout_s: float | None = None) -> Execution:
        """Run ``code``; by default on a worker thread with a very large C stack.

        Some native recursion has no depth guard in CPython (hashing a tuple nested 150,000
        levels deep overflows an 8 MB stack and kills the process). With a 1 GiB stack such a
        structure would need more loop iterations than the budgets allow.
        """
        if not self.big_stack:
            return self._run(code, timeout_s)
        stuck = self._stuck
        if stuck is not None and stuck.is_alive():
            return _busy_execution(self)
        self._stuck = None
        box: list[Execution] = []
        requests: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def target() -> None:
            try:
                box.append(self._run(code, timeout_s))
            finally:
                requests.put(_DONE)

        self._tool_requests = requests
        limit = self.limits.timeout_s if timeout_s is None else timeout_s
        give_up = time.monotonic() + limit + _GRACE_S
        try:
            thread = _start_big_stack_thread(target)
            if thread is None:  # the system refused the stack: run here (8 MB main stack)
                self._tool_requests = None
                return self._run(code, timeout_s)
            try:
                # Tools run here, on the caller's thread (they may hold thread-bound state such
                # as SQLite connections); the sandboxed code waits for them.
                while True:
                    try:
                        item = requests.get(timeout=max(give_up - time.monotonic(), 0.01))
                    except queue.Empty:
                        # Stuck in native code past the deadline (a catastrophic regex, a huge
                        # native loop): stop what can be stopped, and give control back anyway.
                        if self._abandon(thread):
                            return _timeout_execution(self, limit)
                        continue
                    if item is _DONE:
                        break
                    fn, args, kwargs, reply = item
                    try:
                        reply.put((True, fn(*args, **kwargs)))
                    except BaseException as exc:  # delivered to the sandboxed caller
                        reply.put((False, exc))
            except BaseException:  # e.g. KeyboardInterrupt in the caller: stop the code, leave
                self.budget.abort()
                thread.join()
                raise
            thread.join()
        finally:
            self._tool_requests = None
        return box[0]

    def _abandon(self, thread: threading.Thread) -> bool:
        """Past the deadline: trip the budget and raise in the worker (interrupts Python-level
        library loops); if it is still running native code after a grace, leave it behind."""
        self.budget.abort()
        if thread.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread.ident), ctypes.py_object(TimeoutExceeded)
            )
        thread.join(_GRACE_S)
        if thread.is_alive():
            self._stuck = thread
            return True
        return False

    def call_tool(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        requests = self._tool_requests
        if requests is None:
            with unsandboxed():  # a tool is host code: its own rights
                return fn(*args, **kwargs)
        reply: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        requests.put((fn, args, kwargs, reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value

    def _run(self, code: str, timeout_s: float | None = None) -> Execution:
        started = time.perf_counter()
        self.execution_count += 1
        b = self.budget
        old_limit = sys.getrecursionlimit()
        # Enough host frames for the allowed depth, but few enough that nested native recursion
        # (repr of a deeply nested list, generator chains) ends in RecursionError, not a crash.
        wanted = min(self.limits.max_recursion_depth * 20 + 3000, _MAX_HOST_RECURSION)
        if wanted > old_limit:
            sys.setrecursionlimit(wanted)
        execution = Execution(execution_count=self.execution_count)
        # Module-global state the sandbox may touch (decimal context, random stream) is swapped
        # in and out, so the host's own state is left as it was.
        host_decimal = decimal.getcontext()
        decimal.setcontext(self._decimal_context)
        host_random = random.getstate()
        random.setstate(self._random_state)
        b.start(timeout_s)
        try:
            try:
                fn, last_is_expr = self.compile(code)
                self.frame.ret = None
                with self._backstop():  # file/process/network audit events refused meanwhile
                    # The sandbox's own context: settings libraries keep in context variables
                    # (numpy's printoptions/errcall, decimal...) never reach the host's threads.
                    if self._context_entered:  # a nested run (from a tool): already inside
                        fn(self.frame)
                    else:
                        self._context_entered = True
                        try:
                            self._context.run(fn, self.frame)
                        finally:
                            self._context_entered = False
                value = self.frame.ret if last_is_expr else None
                self.frame.ret = None
                if value is not None:
                    self.guards.check_text_size("the result", 0, value)
                    execution.results = [
                        Result({"text/plain": safe_repr(value)}, is_main_result=True)
                    ]
            except FinalAnswerSignal as signal:
                self.guards.check_text_size("the final answer", 0, signal.value)
                execution.is_final_answer = True
                execution.final_answer = to_plain(signal.value)
        except BaseException as exc:  # user errors are data; interpreter errors are data too
            self._describe_error(execution, exc, code)
        finally:
            execution.stdout = b.take_output()
            b.stop()
            sys.setrecursionlimit(old_limit)
            self._decimal_context = decimal.getcontext()
            decimal.setcontext(host_decimal)
            self._random_state = random.getstate()
            random.setstate(host_random)
        execution.duration_s = time.perf_counter() - started
        return execution

    def _describe_error(self, execution: Execution, exc: BaseException, code: str) -> None:
        if isinstance(exc, TimeoutExceeded):
            execution.status = "timeout"
        elif isinstance(exc, OutputLimitExceeded):
            execution.status = "output_truncated"
        else:
            execution.status = "error"
        try:
            tb = format_traceback(exc, code)
        except UNCATCHABLE:
            tb = f"{type(exc).__name__}: {safe_str(exc)}"
        # Every back end names a timeout the same way (the docker and e2b ones say TimeoutError).
        name = "TimeoutError" if isinstance(exc, TimeoutExceeded) else type(exc).__name__
        execution.error = ExecutionError(name, safe_str(exc), tb)


_DONE = object()
_GRACE_S = 1.0


def _timeout_execution(interp: Interpreter, limit: float) -> Execution:
    interp.execution_count += 1
    msg = (
        f"execution exceeded the time budget (timeout_s={limit:g}) inside a native call that "
        "cannot be interrupted in-process; use isolation='process' for a hard stop"
    )
    return Execution(
        execution_count=interp.execution_count,
        status="timeout",
        error=ExecutionError("TimeoutError", msg, f"TimeoutError: {msg}"),
    )


def _busy_execution(interp: Interpreter) -> Execution:
    interp.execution_count += 1
    msg = "the previous run is still stuck in a native call; this interpreter cannot run code"
    return Execution(
        execution_count=interp.execution_count,
        status="error",
        error=ExecutionError("TimeoutError", msg, f"TimeoutError: {msg}"),
    )


_STACK_LOCK = threading.Lock()
_BIG_STACK = 1 << 30


def _start_big_stack_thread(target: Callable[[], None]) -> threading.Thread | None:
    with _STACK_LOCK:  # threading.stack_size() is process-wide: set it only around start()
        try:
            old = threading.stack_size(_BIG_STACK)
        except (ValueError, RuntimeError):
            return None
        try:
            thread = threading.Thread(target=target, name="selfbox-local", daemon=True)
            thread.start()
        except RuntimeError:
            return None
        finally:
            threading.stack_size(old)
    return thread


def _check_loops(tree: ast.AST) -> None:
    """``break``/``continue`` outside a loop are SyntaxErrors in CPython (ast.parse allows them)."""
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, in_loop = stack.pop()
        if isinstance(node, (ast.Break, ast.Continue)) and not in_loop:
            word = "break" if isinstance(node, ast.Break) else "continue"
            err = SyntaxError(f"'{word}' outside loop")
            err.lineno, err.offset = node.lineno, node.col_offset + 1
            raise err
        for field, value in ast.iter_fields(node):
            children = value if isinstance(value, list) else [value]
            for child in children:
                if not isinstance(child, ast.AST):
                    continue
                if isinstance(
                    node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
                ):
                    stack.append((child, False))
                elif isinstance(node, (ast.For, ast.While, ast.AsyncFor)) and field == "body":
                    stack.append((child, True))
                else:
                    stack.append((child, in_loop))


def _check_depth(tree: ast.AST, limit: int) -> None:
    # ast.iter_child_nodes, written out (two generators per node were most of the cost)
    stack = [(tree, 0)]
    pop, push, node_type = stack.pop, stack.append, ast.AST
    while stack:
        node, d = pop()
        if d > limit:
            raise SourceLimitExceeded(f"syntax tree deeper than {limit} levels (max_nesting_depth)")
        d += 1
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, node_type):
                push((value, d))
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, node_type):
                        push((item, d))


def _make_tool(name: str, fn: Callable[..., Any], interp: Interpreter) -> Any:
    """Wrap a host callable: only calling it is possible; its results are checked deeply."""
    deep_guard = interp.deep_guard
    call_tool = interp.call_tool

    class _Tool:
        __slots__ = ()

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return deep_guard(call_tool(fn, args, kwargs))

        def __repr__(self) -> str:
            return f"<tool {name}>"

        def __reduce__(self) -> Any:
            raise TypeError("tools cannot be copied")

    _Tool.__name__ = _Tool.__qualname__ = "tool"
    return _Tool()


_ = (SecurityError, PLAIN_TYPES)
