"""Pick a back end by name. Back ends are imported lazily, so that ``import executors`` pulls in
no optional SDK."""

from __future__ import annotations

import importlib
from typing import Any

from .base import AsyncExecutor, Executor
from .exceptions import ConfigurationError, MissingDependencyError

__all__ = ["EXECUTOR_TYPES", "create_async_executor", "create_executor"]

# name -> (module, sync class, async class or None, the extra that provides its SDK)
_BACKENDS: dict[str, tuple[str, str, str | None, str | None]] = {
    "local": ("executors.local", "LocalExecutor", None, None),
    "docker": ("executors.docker", "DockerExecutor", "AsyncDockerExecutor", None),
    "e2b": ("executors.e2b", "E2BExecutor", "AsyncE2BExecutor", "e2b"),
}
EXECUTOR_TYPES: tuple[str, ...] = tuple(_BACKENDS)


def _load(executor_type: str, *, asynchronous: bool) -> type[Any]:
    try:
        module_name, sync_name, async_name, extra = _BACKENDS[executor_type]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"unknown executor_type {executor_type!r}; valid types: {', '.join(EXECUTOR_TYPES)}"
        ) from None
    class_name = async_name if asynchronous else sync_name
    if class_name is None:
        raise ConfigurationError(f"executor_type {executor_type!r} has no async variant")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:
            raise
        raise MissingDependencyError(
            f"executor_type {executor_type!r} needs an optional dependency ({exc.name}); "
            f"install it with: pip install 'selfbox[{extra}]'"
        ) from exc
    cls: type[Any] = getattr(module, class_name)
    return cls


def create_executor(executor_type: str = "local", **kwargs: Any) -> Executor:
    """Create a synchronous executor: ``"local"``, ``"docker"`` or ``"e2b"``.

    Keyword arguments go to the back end's constructor.
    """
    executor: Executor = _load(executor_type, asynchronous=False)(**kwargs)
    return executor


def create_async_executor(executor_type: str = "docker", **kwargs: Any) -> AsyncExecutor:
    """Create an asynchronous executor (``"docker"`` or ``"e2b"``)."""
    executor: AsyncExecutor = _load(executor_type, asynchronous=True)(**kwargs)
    return executor
