"""Fixtures for the agent tests: a fake executor, and agents over every executor type."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from executors.base import Executor, validate_tools, validate_variables
from executors.models import Execution, ExecutionError, Result


class _FinalAnswer(BaseException):
    # BaseException, so that the code's own ``except Exception`` cannot swallow it.
    def __init__(self, value: object) -> None:
        self.value = value


class FakeExecutor(Executor):
    """Runs code with plain ``exec`` in one namespace: the protocol, without any isolation.

    Good enough to drive the agent loop; the real back ends are tested through
    ``agent_factory`` below.
    """

    executor_type = "fake"

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"__name__": "__main__", "final_answer": self._final}
        self.codes: list[str] = []
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
        started = time.monotonic()
        out = io.StringIO()
        execution = Execution()
        try:
            tree = ast.parse(code)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            with contextlib.redirect_stdout(out):
                exec(compile(tree, "<agent>", "exec"), self.namespace)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), "<agent>", "eval"),
                                 self.namespace)
                    if value is not None:
                        execution.results.append(Result({"text/plain": repr(value)}))
        except _FinalAnswer as final:
            execution.is_final_answer = True
            execution.final_answer = final.value
        except Exception as exc:
            execution.error = ExecutionError(type(exc).__name__, str(exc), traceback.format_exc())
            execution.status = "error"
        execution.stdout = out.getvalue()
        execution.duration_s = time.monotonic() - started
        return execution


@pytest.fixture
def fake_executor() -> Iterator[FakeExecutor]:
    executor = FakeExecutor()
    yield executor
    executor.close()


def _local_available() -> bool:
    # Transitional: executors.local is being written in the same checkout. Once LocalExecutor
    # exists these tests run (and any other failure to import it is an error, not a skip).
    if importlib.util.find_spec("executors.local") is None:
        return False
    try:
        from executors.local import LocalExecutor  # noqa: F401
    except ImportError:
        return False
    return True


# Every executor type the agent is tested against: "fake" (plain exec, always available) and
# the real back ends. Docker and e2b use the root conftest's live ``server`` fixture (a selfbox
# server on real Docker sandboxes) and carry its markers, so `-m "not docker"` deselects them.
# To add a back end: append a param with its marker, and build its kwargs in
# _executor_kwargs below.
EXECUTOR_TYPES = [
    "fake",
    pytest.param(
        "local",
        marks=pytest.mark.skipif(not _local_available(), reason="executors.local not merged yet"),
    ),
    pytest.param(
        "local-process",
        marks=pytest.mark.skipif(not _local_available(), reason="executors.local not merged yet"),
    ),
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("e2b", marks=[pytest.mark.docker, pytest.mark.e2b]),
]


def _executor_kwargs(executor_type: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if executor_type == "local":
        return {}
    if executor_type == "local-process":
        return {"isolation": "process"}  # the interpreter in a killable child process
    from tests.conftest import API_KEYS

    server = request.getfixturevalue("server")
    if executor_type == "docker":
        return {"base_url": server.url, "api_key": API_KEYS[0], "memory_mb": 256}
    if executor_type == "e2b":
        return {"api_url": server.url, "sandbox_url": server.url, "api_key": API_KEYS[0]}
    raise AssertionError(f"no kwargs known for executor type {executor_type!r}")


@pytest.fixture(params=EXECUTOR_TYPES)
def executor_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def agent_factory(
    executor_type: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """Build CodeAgents on the parametrised executor type; closes them after the test."""
    from agent import CodeAgent

    made: list[Any] = []

    def make(tools: Any, model: Any, **kwargs: Any) -> Any:
        if executor_type == "fake":
            kwargs.setdefault("executor", FakeExecutor())
        else:
            kwargs.setdefault("executor_type", executor_type.split("-")[0])
            kwargs.setdefault("executor_kwargs", _executor_kwargs(executor_type, request))
        agent = CodeAgent(tools, model, **kwargs)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()
        if agent._executor is not None and not agent._owns_executor:
            agent._executor.close()
