"""isolation="process": a killable child process, JSON-only channel, state kept between runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from executors import create_executor
from executors.base import Executor
from executors.exceptions import ConfigurationError


@pytest.fixture(scope="module")
def pex() -> Iterator[Executor]:
    with create_executor("local", isolation="process", timeout_s=5.0) as executor:
        yield executor


def test_state_persists_in_child(pex: Executor) -> None:
    assert pex.run(
        "counter = 1\ndef bump():\n    global counter\n    counter += 1\n    return counter"
    ).ok
    assert pex.run("bump()").text == "2"
    assert pex.run("bump()").text == "3"
    r = pex.run("print('out')\nimport math\nmath.sqrt(49)")
    assert r.stdout == "out\n" and r.text == "7.0"


def test_python_level_infinite_loop_stopped_state_kept(pex: Executor) -> None:
    pex.run("kept = 'yes'")
    start = time.perf_counter()
    r = pex.run("while True:\n    pass", timeout_s=0.5)
    assert r.status == "timeout"
    assert time.perf_counter() - start < 2.5
    assert pex.run("kept").text == "'yes'"


def test_c_level_busy_call_is_killed_and_restart_is_announced() -> None:
    with create_executor("local", isolation="process", timeout_s=5.0) as ex:
        ex.run("before = 1")
        start = time.perf_counter()
        r = ex.run("import re\nre.match(r'(a+)+$', 'a' * 40 + 'b')", timeout_s=0.5)
        elapsed = time.perf_counter() - start
        assert r.status == "timeout" and r.error is not None
        assert "killed" in r.error.value
        assert elapsed < 4
        r = ex.run("before")
        assert r.error is not None and r.error.name == "NameError"
        assert "restarted" in r.stderr
        assert ex.run("1 + 1").text == "2" and ex.run("1").stderr == ""


def test_huge_native_sum_is_stopped(pex: Executor) -> None:
    start = time.perf_counter()
    r = pex.run("sum(range(10**10))", timeout_s=0.5)
    assert r.status in ("timeout", "error") and r.error is not None
    assert time.perf_counter() - start < 3


def test_memory_limit_in_child() -> None:
    with create_executor("local", isolation="process", timeout_s=10.0, max_memory_mb=256) as ex:
        r = ex.run("x = [bytes(10**6) for i in range(2000)]")
        assert r.status in ("error", "sandbox_died"), r
        assert r.error is not None and r.error.name in (
            "MemoryError",
            "MemoryLimitExceeded",
            "SandboxDied",
        )


def test_tools_cross_as_json() -> None:
    calls = []

    def add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    with create_executor("local", isolation="process") as ex:
        ex.send_tools({"add": add, "obj": lambda: object(), "boom": lambda: 1 / 0})
        ex.send_variables({"data": {"xs": [1, 2, 3]}})
        assert ex.run("add(2, 3) + sum(data['xs'])").text == "11"
        assert calls == [(2, 3)]
        assert ex.run("obj()").text.startswith("'<object object")  # type: ignore[union-attr]
        r = ex.run("try:\n    boom()\nexcept ZeroDivisionError as e:\n    r = 'tool failed'\nr")
        assert r.text == "'tool failed'"
        r = ex.run("add(object(), 1)")
        assert r.error is not None and r.error.name == "TypeError"
        blocked = ex.run("add = 1")
        assert blocked.error is not None and blocked.error.name == "SecurityError"
        with pytest.raises(ConfigurationError):
            ex.send_variables({"bad": object()})


def test_final_answer_and_security_in_child(pex: Executor) -> None:
    r = pex.run("final_answer({'a': [1, 2]})")
    assert r.is_final_answer and r.final_answer == {"a": [1, 2]}
    r = pex.run("import os")
    assert r.error is not None and r.error.name == "SecurityError"
    r = pex.run(
        "class FinalAnswerException(BaseException):\n    pass\nraise FinalAnswerException('x')"
    )
    assert not r.is_final_answer


def test_output_streams_before_a_kill() -> None:
    with create_executor("local", isolation="process") as ex:
        code = "for i in range(3000):\n    print(i)\nimport re\nre.match(r'(a+)+$', 'a' * 40 + 'b')"
        r = ex.run(code, timeout_s=0.5)
        assert r.status == "timeout"
        assert r.stdout.startswith("0\n1\n2\n")


def test_child_death_is_reported_and_recovered() -> None:
    import threading

    with create_executor("local", isolation="process", timeout_s=10.0) as ex:
        ex.run("state = 1")
        proc = ex._interp._proc  # type: ignore[attr-defined]
        threading.Timer(0.3, proc.kill).start()
        r = ex.run("while True:\n    pass")
        assert r.status == "sandbox_died" and r.error is not None
        r = ex.run("1 + 1")
        assert r.text == "2" and "restarted" in r.stderr
        assert ex.run("state").error.name == "NameError"  # type: ignore[union-attr]
