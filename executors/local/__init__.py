"""The ``local`` back end: an in-process restricted interpreter for agent-written Python.

    from executors import create_executor
    with create_executor("local", additional_authorized_imports=["numpy"]) as ex:
        ex.run("import math\nmath.sqrt(16)").text   # '4.0'

``isolation="process"`` runs the interpreter in a child process with OS limits, killed on
timeout (hard guarantees); ``isolation="none"`` (default) runs it in the calling thread.
"""

from __future__ import annotations

from .budget import Limits
from .errors import (
    BudgetExceeded,
    InterpreterError,
    SecurityError,
    UnsupportedSyntaxError,
)
from .executor import LocalExecutor
from .interpreter import Interpreter
from .rules import DEFAULT_AUTHORIZED_IMPORTS

__all__ = [
    "DEFAULT_AUTHORIZED_IMPORTS",
    "BudgetExceeded",
    "Interpreter",
    "InterpreterError",
    "Limits",
    "LocalExecutor",
    "SecurityError",
    "UnsupportedSyntaxError",
]
