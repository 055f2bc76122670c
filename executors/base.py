"""The executor protocol: one small base class per I/O style, like ``httpx.BaseTransport``.

A back end implements :meth:`Executor.run`; tools, variables and closing have sensible
defaults it may refine. The async twin has the same surface with coroutines and shares the
models (:mod:`executors.models`) and the I/O-free helpers below.
"""

from __future__ import annotations

import abc
import keyword
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

from .exceptions import ConfigurationError, ExecutorClosedError
from .models import Execution

__all__ = ["AsyncExecutor", "Executor", "validate_tools", "validate_variables"]

Tool = Callable[..., Any]

# Names an executor provides itself; a tool or variable may not take them.
RESERVED_NAMES = frozenset({"final_answer"})


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigurationError(f"{kind} name {name!r} is not a valid Python identifier")
    if name.startswith("__") and name.endswith("__"):
        raise ConfigurationError(f"{kind} name {name!r} is reserved (dunder names are not allowed)")
    return name


def validate_tools(tools: Mapping[str, Tool]) -> dict[str, Tool]:
    """Check tool names and callability; return a plain dict copy."""
    checked: dict[str, Tool] = {}
    for name, tool in tools.items():
        _check_name("tool", name)
        if name in RESERVED_NAMES:
            raise ConfigurationError(f"tool name {name!r} is provided by every executor")
        if not callable(tool):
            raise ConfigurationError(f"tool {name!r} is not callable: {type(tool).__name__}")
        checked[name] = tool
    return checked


def validate_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Check variable names; return a plain dict copy."""
    for name in variables:
        _check_name("variable", name)
        if name in RESERVED_NAMES:
            raise ConfigurationError(f"variable name {name!r} is reserved")
    return dict(variables)


class Executor(abc.ABC):
    """Runs Python code somewhere and reports an :class:`~executors.Execution`.

    State (variables, imports, functions) persists between :meth:`run` calls of one executor.
    Errors in the code are reported in ``Execution.error``; failures of the executor itself
    raise :class:`~executors.exceptions.SandboxError` subclasses.
    """

    executor_type: str = ""
    _closed: bool = False

    @abc.abstractmethod
    def run(self, code: str, *, timeout_s: float | None = None) -> Execution:
        """Run ``code``; return what it printed, its last expression's value and its error."""

    def send_tools(self, tools: Mapping[str, Tool]) -> None:
        """Make callables available to the code under their names."""
        raise NotImplementedError(f"{type(self).__name__} does not support tools")

    def send_variables(self, variables: Mapping[str, Any]) -> None:
        """Define variables in the code's namespace."""
        raise NotImplementedError(f"{type(self).__name__} does not support variables")

    def close(self) -> None:
        """Release the executor's resources (kill its sandbox). Idempotent."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ExecutorClosedError(f"this {self.executor_type or 'executor'} executor is closed")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.close()


class AsyncExecutor(abc.ABC):
    """The async twin of :class:`Executor`: same methods, as coroutines."""

    executor_type: str = ""
    _closed: bool = False

    @abc.abstractmethod
    async def run(self, code: str, *, timeout_s: float | None = None) -> Execution:
        """Run ``code``; see :meth:`Executor.run`."""

    async def send_tools(self, tools: Mapping[str, Tool]) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support tools")

    async def send_variables(self, variables: Mapping[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support variables")

    async def aclose(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ExecutorClosedError(f"this {self.executor_type or 'executor'} executor is closed")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()
