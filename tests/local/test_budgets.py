# ruff: noqa: E501 - code snippets are kept on one line
"""Each budget stops work promptly and names itself."""

from __future__ import annotations

import time

import pytest

from executors import create_executor
from executors.models import Execution


def run(code: str, **kw: object) -> Execution:
    kw.setdefault("timeout_s", 5.0)
    with create_executor("local", **kw) as ex:  # type: ignore[arg-type]
        return ex.run(code)


@pytest.mark.parametrize(
    ("code", "kwargs", "name", "setting"),
    [
        (
            "while True:\n    x = 1",
            {"max_operations": 50_000},
            "OperationLimitExceeded",
            "max_operations",
        ),
        (
            "for i in range(10**9):\n    pass",
            {"max_iterations": 5_000},
            "IterationLimitExceeded",
            "max_iterations",
        ),
        (
            "[i for i in range(10**9)]",
            {"max_iterations": 5_000},
            "IterationLimitExceeded",
            "max_iterations",
        ),
        ("while True:\n    pass", {"timeout_s": 0.2}, "TimeoutExceeded", "timeout_s"),
        (
            "while True:\n    print('x' * 50)",
            {"max_output_bytes": 1000},
            "OutputLimitExceeded",
            "max_output_bytes",
        ),
        (
            "def f():\n    return f()\nf()",
            {"max_recursion_depth": 30},
            "RecursionLimitExceeded",
            "max_recursion_depth",
        ),
        ("'x' * 1001", {"max_collection_size": 1000}, "SizeLimitExceeded", "max_collection_size"),
        ("2 ** 20000", {"max_int_bits": 10_000}, "SizeLimitExceeded", "max_int_bits"),
        ("f'{1:>5000}'", {"max_format_width": 1000}, "SizeLimitExceeded", "max_format_width"),
        ("x = 1\n" * 200, {"max_source_bytes": 100}, "SourceLimitExceeded", "max_source_bytes"),
        (
            "x = " + "(" * 60 + "1" + ")" * 60,
            {"max_nesting_depth": 50},
            "SourceLimitExceeded",
            "max_nesting_depth",
        ),
    ],
)
def test_budget_named(code: str, kwargs: dict[str, object], name: str, setting: str) -> None:
    start = time.perf_counter()
    r = run(code, **kwargs)
    assert r.error is not None, r
    assert r.error.name == name, r.error
    assert setting in r.error.value
    assert time.perf_counter() - start < 3
    expected = {"TimeoutExceeded": "timeout", "OutputLimitExceeded": "output_truncated"}
    assert r.status == expected.get(name, "error")


def test_budgets_reset_between_runs() -> None:
    with create_executor("local", max_operations=20_000) as ex:
        for _ in range(5):
            r = ex.run("for i in range(2000):\n    x = i")
            assert r.ok, r.error


def test_memory_budget_in_process() -> None:
    r = run(
        "x = []\nfor i in range(10**6):\n    x.append(bytes(10**5))",
        max_memory_mb=100,
        timeout_s=10,
    )
    assert r.error is not None
    assert r.error.name in ("MemoryLimitExceeded", "MemoryError"), r.error


def test_budget_error_cannot_be_caught_in_generators_or_finally() -> None:
    code = "def g():\n    while True:\n        try:\n            yield 1\n        except BaseException:\n            pass\nfor v in g():\n    pass"
    r = run(code, max_operations=50_000)
    assert r.error is not None and r.error.name in (
        "OperationLimitExceeded",
        "IterationLimitExceeded",
    )
    code = "try:\n    while True:\n        pass\nfinally:\n    print('cleanup')\n    while True:\n        pass"
    r = run(code, timeout_s=0.3)
    assert r.status == "timeout" and r.duration_s < 2


def test_operation_budget_allows_legit_work() -> None:
    r = run("total = 0\nfor i in range(200_000):\n    total += i\ntotal")
    assert r.text == str(sum(range(200_000)))


@pytest.mark.parametrize(
    "code",
    [
        "x = [[0] * 10**6 for _ in range(10**4)]",
        "x = []\nfor i in range(10**4):\n    x.append('y' * 10**7)",
    ],
)
def test_memory_growth_stopped_in_process(code: str) -> None:
    r = run(code, max_memory_mb=300, timeout_s=10)
    assert r.error is not None and r.error.name in ("MemoryLimitExceeded", "MemoryError"), r.error
    assert r.duration_s < 5
