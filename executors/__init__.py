"""selfbox executors: run agent-written Python locally, in Docker sandboxes, or on E2B.

    from executors import create_executor
    with create_executor("local") as ex:
        print(ex.run("1 + 1").text)
"""

from . import exceptions
from .base import AsyncExecutor, Executor
from .exceptions import SandboxError
from .factory import EXECUTOR_TYPES, create_async_executor, create_executor
from .models import STATUSES, Execution, ExecutionError, ExecutionStatus, Result, SandboxSpec

__all__ = [
    "EXECUTOR_TYPES",
    "STATUSES",
    "AsyncExecutor",
    "Execution",
    "ExecutionError",
    "ExecutionStatus",
    "Executor",
    "Result",
    "SandboxError",
    "SandboxSpec",
    "create_async_executor",
    "create_executor",
    "exceptions",
]
