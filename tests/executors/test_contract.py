"""ONE contract, every back end: same code, same ``Execution`` fields, same error taxonomy,
same timeout semantics.

- ``local``: the restricted in-process interpreter (``create_executor("local")``).
- ``docker``: the selfbox server (live ``server`` fixture) and real Docker sandboxes; tools are
  answered by the host over the execute stream.
- ``e2b``: the real ``e2b-code-interpreter`` SDK against selfbox's own E2B-compatible API on the
  same live server; tools are shipped as source.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from executors import STATUSES, Execution, Executor, create_executor
from executors.exceptions import ConfigurationError, ExecutorClosedError
from tests.conftest import API_KEYS, LiveServer

BACKENDS = [
    pytest.param("local", id="local"),
    pytest.param("docker", id="docker", marks=pytest.mark.docker),
    pytest.param("e2b", id="e2b", marks=[pytest.mark.docker, pytest.mark.e2b]),
]

MakeExecutor = Callable[..., Executor]


def add_tax(amount: float) -> float:
    """Add 20% tax (self-contained, so every back end can run it)."""
    return round(amount * 1.2, 2)


def check_positive(amount: float) -> float:
    """Fail for a negative amount."""
    if amount < 0:
        raise ValueError("amount must be positive")
    return amount


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def make_executor(backend: str, request: pytest.FixtureRequest) -> Iterator[MakeExecutor]:
    created: list[Executor] = []

    def make(**kwargs: Any) -> Executor:
        if backend == "local":
            executor = create_executor("local", **kwargs)
        else:
            server: LiveServer = request.getfixturevalue("server")
            if backend == "docker":
                executor = create_executor("docker", base_url=server.url, api_key=API_KEYS[0],
                                           memory_mb=256, **kwargs)
            else:
                executor = create_executor("e2b", api_url=server.url, sandbox_url=server.url,
                                           api_key=API_KEYS[0], **kwargs)
        created.append(executor)
        return executor

    yield make
    for executor in created:
        executor.close()


@pytest.fixture
def ex(make_executor: MakeExecutor) -> Executor:
    return make_executor()


def assert_well_formed(execution: Execution) -> None:
    assert isinstance(execution, Execution)
    assert execution.status in STATUSES
    assert isinstance(execution.stdout, str) and isinstance(execution.stderr, str)
    assert isinstance(execution.duration_s, float) and execution.duration_s >= 0
    assert (execution.error is None) == (execution.status == "ok")
    assert Execution.from_dict(execution.to_dict()) == execution


def test_state_persists(ex: Executor) -> None:
    assert ex.run("x = 41\ndef inc(v):\n    return v + 1").ok
    execution = ex.run("inc(x)")
    assert_well_formed(execution)
    assert execution.text == "42"


def test_stdout_is_captured(ex: Executor) -> None:
    execution = ex.run("print('hello')\nprint('world', 2)")
    assert_well_formed(execution)
    assert execution.ok and execution.stdout == "hello\nworld 2\n"
    assert execution.error is None


def test_last_expression_value_is_text_plain(ex: Executor) -> None:
    execution = ex.run("a = [1, 'two']\na")
    assert_well_formed(execution)
    assert execution.text == "[1, 'two']"
    main = execution.main_result
    assert main is not None and main.is_main_result and main.data["text/plain"] == "[1, 'two']"
    statement = ex.run("b = 1")
    assert statement.ok and statement.text is None and statement.main_result is None
    assert ex.run("None").text is None


def test_user_error_is_data(ex: Executor) -> None:
    execution = ex.run("print('before')\ndef f():\n    raise ValueError('bad value')\nf()")
    assert_well_formed(execution)
    assert execution.status == "error"
    assert execution.error is not None
    assert execution.error.name == "ValueError"
    assert execution.error.value == "bad value"
    assert "line 3" in execution.error.traceback
    assert execution.stdout == "before\n"
    assert ex.run("1 + 1").text == "2"  # still usable


def test_syntax_error_is_data(ex: Executor) -> None:
    execution = ex.run("x = (")
    assert_well_formed(execution)
    assert execution.status == "error"
    assert execution.error is not None and execution.error.name == "SyntaxError"
    assert ex.run("2 + 2").text == "4"


def test_timeout_keeps_the_executor_usable(ex: Executor) -> None:
    # (No bare str as the last value: E2B's server strips the quotes of its repr.)
    assert ex.run("kept = ['state']").ok
    started = time.monotonic()
    # A loop that stays below every other budget for the second: a bare ``while True: pass``
    # reaches the local interpreter's iteration budget (10 million) first.
    execution = ex.run("import time\nwhile True:\n    time.sleep(0.01)", timeout_s=1)
    elapsed = time.monotonic() - started
    assert_well_formed(execution)
    assert execution.status == "timeout"
    assert execution.error is not None and execution.error.name == "TimeoutError"
    assert elapsed < 15
    after = ex.run("kept")
    assert after.ok and after.text == "['state']"


def test_final_answer(ex: Executor) -> None:
    execution = ex.run("print('working')\nfinal_answer({'answer': 42})\nprint('not reached')")
    assert_well_formed(execution)
    assert execution.ok and execution.is_final_answer
    assert execution.final_answer == {"answer": 42}
    assert execution.stdout == "working\n"
    plain = ex.run("1")
    assert not plain.is_final_answer and plain.final_answer is None


def test_forged_final_answer_is_an_error(ex: Executor) -> None:
    execution = ex.run(
        "class FinalAnswerException(Exception):\n    pass\n"
        "raise FinalAnswerException('forged')"
    )
    assert_well_formed(execution)
    assert not execution.is_final_answer and execution.final_answer is None
    assert execution.status == "error"
    assert execution.error is not None and execution.error.name == "FinalAnswerException"


def test_tools(ex: Executor) -> None:
    ex.send_tools({"add_tax": add_tax})
    execution = ex.run("total = add_tax(10)\ntotal")
    assert_well_formed(execution)
    assert execution.text == "12.0"
    with pytest.raises(ConfigurationError):
        ex.send_tools({"final_answer": add_tax})
    with pytest.raises(ConfigurationError):
        ex.send_tools({"not a name": add_tax})


def test_failing_tool_is_an_error_in_the_code(ex: Executor) -> None:
    ex.send_tools({"check_positive": check_positive})
    failed = ex.run("check_positive(-1)")
    assert_well_formed(failed)
    assert failed.status == "error" and failed.error is not None
    assert "amount must be positive" in failed.error.value
    caught = ex.run(
        "try:\n    check_positive(-2)\n    r = 'no'\nexcept Exception:\n    r = 'caught'\n[r]"
    )
    assert caught.text == "['caught']"
    assert ex.run("check_positive(3)").text == "3"


def test_send_variables(ex: Executor) -> None:
    ex.send_variables({"items": [1, 2, 3], "label": "sum", "options": {"strict": True}})
    execution = ex.run("label, sum(items), options['strict']")
    assert_well_formed(execution)
    assert execution.text == "('sum', 6, True)"
    with pytest.raises(ConfigurationError):
        ex.send_variables({"class": 1})


def test_close_is_idempotent_and_final(make_executor: MakeExecutor) -> None:
    ex = make_executor()
    assert ex.run("1").ok
    ex.close()
    ex.close()
    assert ex.closed
    with pytest.raises(ExecutorClosedError):
        ex.run("1")


def test_close_before_use(make_executor: MakeExecutor) -> None:
    ex = make_executor()
    ex.close()
    with pytest.raises(ExecutorClosedError):
        ex.run("1")


def test_context_manager(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        assert ex.run("6 * 7").text == "42"
    assert ex.closed
    with pytest.raises(ExecutorClosedError):
        ex.run("1")


def test_bad_arguments_are_configuration_errors(ex: Executor) -> None:
    with pytest.raises(ConfigurationError):
        ex.run("1", timeout_s=-1)
    with pytest.raises(ConfigurationError):
        ex.send_variables({"final_answer": 1})
    assert ex.run("1 + 2").text == "3"


def test_sleeping_code_times_out(ex: Executor) -> None:
    started = time.monotonic()
    execution = ex.run("import time\ntime.sleep(30)", timeout_s=1)
    assert_well_formed(execution)
    assert execution.status == "timeout" and execution.error is not None
    assert time.monotonic() - started < 15
    assert ex.run("import math\nmath.sqrt(16)").text == "4.0"
