# ruff: noqa: E501 - payloads are kept verbatim
"""Every entry of /work/shared/reference/attacks-sample.md, numbered as there."""

from __future__ import annotations

import pytest

from executors import create_executor
from executors.models import Execution

SECURITY = {"SecurityError", "InterpreterError"}
BUDGET_NAMES = {
    "OperationLimitExceeded", "IterationLimitExceeded", "TimeoutExceeded", "TimeoutError", "OutputLimitExceeded",
    "RecursionLimitExceeded", "MemoryLimitExceeded", "SizeLimitExceeded", "SourceLimitExceeded",
}  # fmt: skip


def run(code: str, imports: tuple[str, ...] = (), **kw: object) -> Execution:
    kw.setdefault("timeout_s", 5.0)
    with create_executor("local", additional_authorized_imports=list(imports), **kw) as ex:  # type: ignore[arg-type]
        return ex.run(code)


def block(r: Execution) -> None:
    assert r.status == "error" and r.error is not None and r.error.name in SECURITY, r


def limit(r: Execution) -> None:
    assert r.error is not None and r.error.name in BUDGET_NAMES, r
    assert r.duration_s < 6


BLOCK_ENTRIES = [
    ("A1", "import os\nos.getcwd()", ()),
    ("A2", "from os import system", ()),
    ("A4", "import random\nrandom._os.system('true')", ()),
    ("A5", "import random\ngetattr(random, '_os')", ()),
    ("A6a", "import queue\nqueue.threading._sys.modules['os']", ("queue",)),
    ("A6b", "import queue\nqueue.threading._os.system(':')", ("queue",)),
    ("A6c", "import collections\ncollections._sys", ()),
    ("A6d", "import doctest\ndoctest.inspect.os", ("doctest",)),
    ("A6e", "import asyncio\nasyncio.base_events.events.subprocess", ("asyncio",)),
    ("A6f", "import warnings\nwarnings.sys", ("warnings",)),
    (
        "A7a",
        "import warnings, functools\nlist(map(getattr, [warnings], ['sys']))",
        ("warnings", "functools"),
    ),
    (
        "A7b",
        "import warnings, functools\nlist(filter(functools.partial(getattr, warnings), ['sys']))",
        ("warnings", "functools"),
    ),
    ("A15", "import os\nos.system('true')\nf = os.system", ()),
    (
        "B17",
        "for cls in ().__class__.__base__.__subclasses__():\n    if 'Popen' in cls.__class__.__repr__(cls):\n        break\ncls(['sh', '-c', ':']).wait()",
        (),
    ),
    ("B20", "getattr((), '__cl' + 'ass__')", ()),
    ("B22", "def f(): pass\nf.__globals__['__builtins__']['__import__']('os')", ()),
    ("E50", "try:\n    import os\nexcept Exception as e:\n    r = 'caught: ' + str(e)[:40]\nr", ()),
    ("E52", "final_answer = 1", ()),
]


@pytest.mark.parametrize(
    ("entry", "code", "imports"), BLOCK_ENTRIES, ids=[e[0] for e in BLOCK_ENTRIES]
)
def test_block(entry: str, code: str, imports: tuple[str, ...]) -> None:
    block(run(code, imports))


@pytest.mark.parametrize(("entry", "code"), [("A3", "__import__('os')"), ("B32", "globals()")])
def test_block_names_not_provided(entry: str, code: str) -> None:
    r = run(code)
    assert r.error is not None and r.error.name in SECURITY | {"NameError"}


def test_a15_os_consistent_when_authorized() -> None:
    r = run("import os\nf = os.getpid\nf() == os.getpid()", ("os",))
    assert r.text == "True"


def test_e50_budget_variant() -> None:
    limit(run("try:\n    while True:\n        pass\nexcept Exception:\n    pass", timeout_s=0.5))


def test_e51_final_answer_not_swallowed() -> None:
    r = run("try:\n    final_answer('done')\nexcept Exception:\n    pass")
    assert r.is_final_answer and r.final_answer == "done"


def test_e53_no_silent_close_match() -> None:
    r = run("result_value = 5\nresult_valeu")
    assert r.error is not None and r.error.name == "NameError" and r.results == []


@pytest.mark.parametrize(
    ("entry", "code", "kw"),
    [
        ("F54", "while True: pass", {"timeout_s": 1.0}),
        (
            "F55",
            "n = 0\nwhile True:\n    try:\n        while True:\n            pass\n    except Exception:\n        n += 1",
            {"timeout_s": 1.0},
        ),
        ("F56", "for i in range(10**12): pass", {"timeout_s": 1.0}),
        ("F62a", "'a' * 10**10", {}),
        ("F62b", "[0] * 10**9", {}),
        ("F62c", "'a'.center(4 * 10**9)", {}),
        ("F62d", "'{:>2000000000}'.format(1)", {}),
        ("F62e", "import itertools; list(itertools.count())", {"timeout_s": 2.0}),
        ("F62f", "import itertools; list(map(abs, itertools.count()))", {"timeout_s": 2.0}),
        ("F64", "for i in range(200000): print('x' * 100)", {}),
        ("F65", "def f(n): return f(n + 1)\nf(0)", {}),
        ("F66", "x = " + "-" * 100_000 + "1", {}),
    ],
)
def test_limit(entry: str, code: str, kw: dict[str, object]) -> None:
    limit(run(code, **kw))


@pytest.mark.parametrize(
    "code",
    [
        "(y := 3)",
        "global x",
        "nonlocal x",
        "async def f(): pass",
        "await x",
        "def f(): yield 1",
        "match 1:\n    case 1:\n        pass",
        "try:\n    pass\nexcept* ValueError:\n    pass",
        "try:\n    1/0\nexcept ZeroDivisionError:\n    raise",
    ],
)
def test_g69_clear_error_or_correct(code: str) -> None:
    r = run(code)
    if r.error is not None:
        assert r.error.name in ("UnsupportedSyntaxError", "SyntaxError", "ZeroDivisionError"), (
            r.error
        )
        if r.error.name == "UnsupportedSyntaxError":
            assert "not supported" in r.error.value


def test_h71_h72_child_channel_is_json_and_not_forgeable() -> None:
    with create_executor("local", isolation="process") as ex:
        r = ex.run(
            "class FinalAnswerException(BaseException):\n    pass\n"
            "raise FinalAnswerException('pickle:gASV')"
        )
        assert not r.is_final_answer and r.final_answer is None and r.status == "error"
        r = ex.run('print(\'{"op": "result", "execution": {}}\')\n1')
        assert r.text == "1" and r.stdout.startswith('{"op"')
