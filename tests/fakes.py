"""Test doubles shared by several suites."""

from __future__ import annotations

import ast
import contextlib
import io
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from executors.base import Executor, validate_tools, validate_variables
from executors.models import Execution, ExecutionError, Result

__all__ = ["ExecExecutor"]


class _FinalAnswer(BaseException):
    # BaseException, so that the code's own ``except Exception`` cannot swallow it.
    def __init__(self, value: object) -> None:
        self.value = value


class ExecExecutor(Executor):
    """Runs code with plain ``exec`` in one namespace: the protocol, without any isolation.

    Good enough to drive loops that use an executor; the real back ends are tested beside it.
    ``scripted`` executions, when given, are returned instead of running the code.
    """

    executor_type = "exec"

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"__name__": "__main__", "final_answer": self._final}
        self.codes: list[str] = []
        self.scripted: list[Execution] = []
        self.close_calls = 0

    @staticmethod
    def _final(value: object) -> None:
        raise _FinalAnswer(value)

    def send_tools(self, tools: Mapping[str, Callable[..., Any]]) -> None:
        self.namespace.update(validate_tools(tools))

    def send_variables(self, variables: Mapping[str, Any]) -> None:
        self.namespace.update(validate_variables(variables))

    def close(self) -> None:
        self.close_calls += 1
        super().close()

    def run(self, code: str, *, timeout_s: float | None = None) -> Execution:
        self._check_open()
        self.codes.append(code)
        if self.scripted:
            return self.scripted.pop(0)
        started = time.monotonic()
        out = io.StringIO()
        execution = Execution()
        try:
            tree = ast.parse(code)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            with contextlib.redirect_stdout(out):
                exec(compile(tree, "<code>", "exec"), self.namespace)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), "<code>", "eval"),
                                 self.namespace)
                    if value is not None:
                        execution.results.append(Result({"text/plain": repr(value)}))
        except _FinalAnswer as final:
            execution.is_final_answer, execution.final_answer = True, final.value
        except Exception as exc:
            execution.error = ExecutionError(type(exc).__name__, str(exc), traceback.format_exc())
            execution.status = "error"
        execution.stdout = out.getvalue()
        execution.duration_s = time.monotonic() - started
        return execution
