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
        ("while True:\n    pass", {"timeout_s": 0.2}, "TimeoutError", "timeout_s"),
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
    expected = {"TimeoutError": "timeout", "OutputLimitExceeded": "output_truncated"}
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


@pytest.mark.parametrize(
    "code",
    [
        "def g(n):\n    yield from g(n + 1)\nnext(g(0))",
        "def g(n):\n    for x in g(n + 1):\n        yield x\nlist(g(0))",
        "def f(n):\n    return sorted([1, 2], key=lambda v: f(n + 1))\nf(0)",
        "x = []\nfor i in range(10**5):\n    x = [x]\nrepr(x)",
        "import json\nx = []\nfor i in range(10**5):\n    x = [x]\njson.dumps(x)",
        "class A:\n    def __eq__(self, o):\n        return [self] == [o]\nA() == A()",
    ],
)
@pytest.mark.parametrize("depth", [1000, 2000])
def test_deep_native_recursion_is_an_error_not_a_crash(code: str, depth: int) -> None:
    r = run(code, max_recursion_depth=depth)
    assert r.error is not None and r.error.name in ("RecursionLimitExceeded", "RecursionError")


def test_recursion_depth_configurable_up_to_2000() -> None:
    r = run(
        "def s(n):\n    return 0 if n == 0 else n + s(n - 1)\ns(1990)", max_recursion_depth=2000
    )
    assert r.text == str(sum(range(1991))), r.error
    with pytest.raises(Exception, match="max_recursion_depth"):
        run("1", max_recursion_depth=10_000)


def test_unguarded_native_recursion_does_not_crash_the_host() -> None:
    # CPython's tuple hash recurses without a depth check: 150k levels overflow an 8 MB stack.
    code = "x = ()\nfor i in range(300_000):\n    x = (x,)\nhash(x) == hash(x)"
    r = run(code, timeout_s=20)
    assert r.text == "True", r.error


def test_unguarded_native_recursion_in_child() -> None:
    code = "x = ()\nfor i in range(300_000):\n    x = (x,)\nhash(x) == hash(x)"
    r = run(code, timeout_s=20, isolation="process")
    assert r.text == "True" or r.status == "sandbox_died", r
