"""``LocalExecutor``: the executor protocol over the restricted interpreter."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ..base import Executor, Tool, validate_tools, validate_variables
from ..exceptions import ConfigurationError
from ..models import Execution
from .budget import NO_TIMEOUT_S, Limits
from .errors import InterpreterError
from .interpreter import Interpreter

__all__ = ["LocalExecutor"]

Isolation = Literal["none", "process"]
_INT_LIMITS = (
    "max_operations", "max_iterations", "max_output_bytes", "max_recursion_depth",
    "max_memory_mb", "max_source_bytes", "max_nesting_depth", "max_collection_size",
    "max_int_bits", "max_format_width",
)  # fmt: skip


def _check_timeout(name: str, value: Any, *, none_ok: bool = False) -> float:
    if value is None and none_ok:
        return NO_TIMEOUT_S
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(
            f"{name} must be a positive number of seconds"
            + (" or None" if none_ok else "")
            + f", got {value!r}",
            argument=name,
        )
    return float(value)


def _not_installed(imports: Iterable[str]) -> list[str]:
    """Authorized names whose top-level package cannot be found (nothing is imported)."""
    missing = []
    for pattern in imports:
        name = pattern[:-2] if pattern.endswith(".*") else pattern
        if name == "*" or not name:
            continue
        root = name.split(".", 1)[0]
        try:
            found = root in sys.modules or importlib.util.find_spec(root) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(pattern)
    return missing


class LocalExecutor(Executor):
    """Runs code in the restricted interpreter, in-process or in a killable child process.

    Args:
        additional_authorized_imports: module names (``"numpy"``), package patterns
            (``"numpy.*"``) or ``"*"`` (everything: only for trusted code) on top of
            :data:`~executors.local.DEFAULT_AUTHORIZED_IMPORTS`.
        timeout_s: default wall-clock budget of one :meth:`run`; ``None`` for none (the
            operation, iteration, memory and output budgets still bound every run; with
            ``isolation="process"`` the child's CPU time is capped at one hour).
        isolation: ``"none"`` (in-process, fastest) or ``"process"`` (child process with
            RLIMIT_AS/RLIMIT_CPU, killed on timeout; tools and variables cross as JSON).
        max_*: further budgets (see :class:`~executors.local.Limits`).
    """

    executor_type = "local"

    def __init__(
        self,
        *,
        additional_authorized_imports: Iterable[str] = (),
        timeout_s: float | None = 30.0,
        isolation: Isolation = "none",
        **limits: Any,
    ) -> None:
        if isinstance(additional_authorized_imports, str) or not all(
            isinstance(m, str) and m for m in additional_authorized_imports
        ):
            raise ConfigurationError(
                "additional_authorized_imports must be a list of module names",
                argument="additional_authorized_imports",
            )
        imports = list(additional_authorized_imports)
        missing = _not_installed(imports)
        if missing:  # said now, not at the first import inside a run (as smolagents does)
            raise ConfigurationError(
                f"additional_authorized_imports names modules that are not installed: "
                f"{', '.join(missing)}",
                argument="additional_authorized_imports",
            )
        if isolation not in ("none", "process"):
            raise ConfigurationError(
                f"isolation must be 'none' or 'process', got {isolation!r}", argument="isolation"
            )
        self.timeout_s = _check_timeout("timeout_s", timeout_s, none_ok=True)
        values: dict[str, Any] = {}
        for name, value in limits.items():
            if name not in _INT_LIMITS:
                raise ConfigurationError(
                    f"unknown argument {name!r} for the local executor", argument=name
                )
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigurationError(
                    f"{name} must be a positive integer, got {value!r}", argument=name
                )
            if name == "max_recursion_depth" and value > 2000:
                raise ConfigurationError(
                    "max_recursion_depth must be at most 2000 (deeper recursion would risk the "
                    "host's C stack)",
                    argument=name,
                )
            values[name] = value
        self.limits = Limits(timeout_s=self.timeout_s, **values)
        self.isolation: Isolation = isolation
        self.additional_authorized_imports = imports
        self._interp: Any
        if isolation == "process":
            from .isolation import ProcessInterpreter

            self._interp = ProcessInterpreter(imports, self.limits)
        else:
            self._interp = Interpreter(additional_authorized_imports=imports, limits=self.limits)

    def run(self, code: str, *, timeout_s: float | None = None) -> Execution:
        self._check_open()
        if not isinstance(code, str):
            raise ConfigurationError("code must be a string", argument="code")
        timeout = self.timeout_s if timeout_s is None else _check_timeout("timeout_s", timeout_s)
        result: Execution = self._interp.run(code, timeout)
        return result

    def send_tools(self, tools: Mapping[str, Tool]) -> None:
        self._check_open()
        self._interp.send_tools(validate_tools(tools))

    def send_variables(self, variables: Mapping[str, Any]) -> None:
        self._check_open()
        try:
            self._interp.send_variables(validate_variables(variables))
        except InterpreterError as exc:  # e.g. a module among the values
            raise ConfigurationError(
                f"variables cannot enter the sandbox: {exc}", argument="variables"
            ) from None

    def close(self) -> None:
        if not self._closed and self.isolation == "process":
            self._interp.close()
        super().close()
