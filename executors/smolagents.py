"""Run smolagents' ``CodeAgent`` on any selfbox executor.

    from smolagents import CodeAgent
    from executors import create_executor
    from executors.smolagents import SelfboxPythonExecutor

    agent = CodeAgent(tools=[...], model=model,
                      executor=SelfboxPythonExecutor(create_executor("local")))

``CodeAgent`` accepts a ready ``executor=`` (any ``smolagents.PythonExecutor``); it then ignores
``executor_type``/``executor_kwargs`` and ``additional_authorized_imports`` affects only its
prompt: give the *executor* its imports (``create_executor("local",
additional_authorized_imports=[...])``, or ``SelfboxPythonExecutor("local", ...)``).

Mapping of the two protocols:

- ``__call__(code)`` runs the code and returns smolagents' ``CodeOutput``. Errors in the code
  (and timeouts, out-of-memory, a dead sandbox) are *raised* as smolagents'
  ``InterpreterError``, because ``CodeAgent`` records raised errors as the step's error and
  shows them to the model; the message carries the logs printed before the error.
- ``final_answer``: every selfbox executor has its own; smolagents' ``FinalAnswerTool`` is not
  sent. Its ``forward`` is applied on the host to the value, so a custom final-answer tool
  (validation, formatting) still takes effect.
- ``output``: the final answer keeps its value; any other result crosses as its MIME bundle, so
  the output is the ``text/plain`` form (a PIL image for ``image/png``/``jpeg`` when Pillow is
  installed), as with smolagents' own remote executors.
- Tools run on the host (the executor calls back), so back ends that can only ship tools as
  source (e2b) reject them with a :class:`~executors.exceptions.ToolError`; tool-free agents
  work on every back end.
- ``cleanup()`` (called by ``CodeAgent.cleanup()`` and its ``with`` block) closes the executor.

smolagents is imported only when an adapter is created: ``pip install 'selfbox[smolagents]'``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import importlib
import inspect
import io
from collections.abc import Callable, Mapping
from types import ModuleType, TracebackType
from typing import Any, Self

from .base import Executor
from .exceptions import MissingDependencyError, ToolError
from .factory import create_executor
from .models import Execution

__all__ = ["SelfboxPythonExecutor"]

_FINAL_ANSWER = "final_answer"
_TRACEBACK_LINES = 10
_STATUS_MESSAGES = {
    "timeout": "the code was stopped because it ran longer than the time limit",
    "oom_killed": "the code was stopped because it used more memory than allowed",
    "sandbox_died": "the sandbox running the code died; variables defined so far are lost",
    "interrupted": "the sandbox server restarted while the code ran; the output shown is what "
                   "the code produced, and the sandbox's state is kept",
}


def _import(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            "the smolagents adapter needs smolagents; install it with: "
            "pip install 'selfbox[smolagents]'"
        ) from exc


@functools.cache
def _register_virtual_subclass() -> None:
    # smolagents is optional, so the class cannot inherit from PythonExecutor at import time;
    # registering makes isinstance(adapter, PythonExecutor) true all the same.
    python_executor: Any = _import("smolagents.local_python_executor").PythonExecutor
    python_executor.register(SelfboxPythonExecutor)


def _host_callable(name: str, tool: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function calling a smolagents tool (or managed agent) on the host."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return tool(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(tool, "description", None) or inspect.getdoc(tool)
    with contextlib.suppress(TypeError, ValueError):
        # Executors that describe or check tool signatures see the tool's real parameters.
        call.__signature__ = _tool_signature(tool)  # type: ignore[attr-defined]
    return call


def _tool_signature(tool: Callable[..., Any]) -> inspect.Signature:
    inputs = getattr(tool, "inputs", None)
    if isinstance(inputs, Mapping):
        # smolagents tools declare their parameters in ``inputs``; nullable ones are optional.
        params = [
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None
                if isinstance(spec, Mapping) and spec.get("nullable")
                else inspect.Parameter.empty,
            )
            for name, spec in inputs.items()
        ]
        return inspect.Signature(params)
    return inspect.signature(tool)


class SelfboxPythonExecutor:
    """A smolagents ``PythonExecutor`` backed by a selfbox :class:`~executors.Executor`.

    Args:
        executor: A selfbox executor, or an executor type (``"local"``, ``"docker"``, ``"e2b"``)
            to create with ``executor_kwargs``.
        timeout_s: Time limit for each code run (the executor's default if ``None``).
        close_executor: Whether :meth:`cleanup` closes the executor. The adapter takes
            ownership by default, as smolagents' own executors do.
        **executor_kwargs: Constructor arguments when ``executor`` is a type name.
    """

    def __init__(
        self,
        executor: Executor | str = "local",
        *,
        timeout_s: float | None = None,
        close_executor: bool = True,
        **executor_kwargs: Any,
    ) -> None:
        self._smolagents = _import("smolagents.local_python_executor")
        _register_virtual_subclass()
        if isinstance(executor, str):
            executor = create_executor(executor, **executor_kwargs)
        elif executor_kwargs:
            raise TypeError("executor_kwargs are only used when executor is a type name")
        self.executor: Executor = executor
        self.timeout_s = timeout_s
        self.close_executor = close_executor
        self._final_answer_tool: Callable[..., Any] | None = None

    # -- the PythonExecutor interface -------------------------------------------------------

    def send_tools(self, tools: Mapping[str, Any]) -> None:
        """Send smolagents tools and managed agents; they run on the host when called."""
        self._final_answer_tool = tools.get(_FINAL_ANSWER)
        callables = {
            name: _host_callable(name, tool)
            for name, tool in tools.items()
            if name != _FINAL_ANSWER
        }
        if not callables:
            return
        try:
            self.executor.send_tools(callables)
        except ToolError as exc:
            # e2b ships tools as source; smolagents tools are objects that must run on the host.
            raise ToolError(
                f"the {self.executor.executor_type or 'selected'} executor cannot call "
                f"smolagents tools ({', '.join(callables)}): they run on the host, and this "
                f"back end needs self-contained plain functions; use the local or docker "
                f"executor for tools ({exc})"
            ) from exc

    def send_variables(self, variables: Mapping[str, Any]) -> None:
        if variables:
            self.executor.send_variables(dict(variables))

    def __call__(self, code_action: str) -> Any:
        execution = self.executor.run(code_action, timeout_s=self.timeout_s)
        logs = _logs(execution)
        if execution.error is not None or execution.status in _STATUS_MESSAGES:
            raise self._smolagents.InterpreterError(_error_message(execution, logs))
        if execution.is_final_answer:
            answer = execution.final_answer
            if self._final_answer_tool is not None:
                try:
                    answer = _apply_final_answer_tool(self._final_answer_tool, answer)
                except Exception as exc:
                    raise self._smolagents.InterpreterError(
                        f"{logs}final_answer rejected the answer: {type(exc).__name__}: {exc}"
                    ) from exc
            return self._smolagents.CodeOutput(output=answer, logs=logs, is_final_answer=True)
        return self._smolagents.CodeOutput(
            output=_output(execution), logs=logs, is_final_answer=False
        )

    # -- lifecycle ------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Close the executor (ending its sandbox), unless ``close_executor`` is false."""
        if self.close_executor:
            self.executor.close()

    close = cleanup

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.cleanup()


def _apply_final_answer_tool(tool: Callable[..., Any], answer: Any) -> Any:
    inputs = getattr(tool, "inputs", None)
    if isinstance(inputs, Mapping) and len(inputs) == 1:
        # By keyword: smolagents' Tool.__call__ would unpack a dict answer whose keys match
        # the tool's inputs.
        return tool(**{next(iter(inputs)): answer})
    return tool(answer)


def _logs(execution: Execution) -> str:
    logs = execution.stdout
    if execution.stderr:
        logs += ("" if not logs or logs.endswith("\n") else "\n") + execution.stderr
    return logs


def _error_message(execution: Execution, logs: str) -> str:
    parts = [logs.rstrip("\n")] if logs.strip() else []
    error = execution.error
    if error is not None:
        parts.append(f"Code execution failed: {error.name}: {error.value}")
        tail = [line for line in error.traceback.splitlines() if line.strip()][-_TRACEBACK_LINES:]
        if tail:
            parts.append("Traceback (tail):\n" + "\n".join(tail))
    status = _STATUS_MESSAGES.get(execution.status)
    if status:
        parts.append(f"Code execution failed: {status}")
    return "\n".join(parts)


def _output(execution: Execution) -> Any:
    main = execution.main_result
    if main is None:
        return None
    for mime in ("image/png", "image/jpeg"):
        data = main.data.get(mime)
        if data is not None:
            image = _decode_image(data)
            if image is not None:
                return image
    return main.data.get("text/plain")


def _decode_image(data: str) -> Any:
    try:
        from PIL import Image
    except ImportError:  # no Pillow: fall back to the text form
        return None
    return Image.open(io.BytesIO(base64.b64decode(data)))
