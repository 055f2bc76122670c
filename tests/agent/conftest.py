"""Fixtures for the agent tests: a fake executor, and agents over every executor type."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes import ExecExecutor


class FakeExecutor(ExecExecutor):
    executor_type = "fake"


@pytest.fixture
def fake_executor() -> Iterator[FakeExecutor]:
    executor = FakeExecutor()
    yield executor
    executor.close()


# Every executor type the agent is tested against: "fake" (plain exec, always available) and
# the real back ends. Docker and e2b use the root conftest's live ``server`` fixture (a selfbox
# server on real Docker sandboxes) and carry its markers, so `-m "not docker"` deselects them.
# To add a back end: append a param with its marker, and build its kwargs in
# _executor_kwargs below.
EXECUTOR_TYPES = [
    "fake",
    "local",
    "local-process",
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
