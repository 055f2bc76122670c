# ruff: noqa: E501 - code snippets are kept on one line
"""One test per language feature and per piece of the executor contract."""

from __future__ import annotations

import pytest

from executors import create_executor
from executors.base import Executor
from executors.exceptions import ConfigurationError, ExecutorClosedError
from executors.local import LocalExecutor


def value(ex: Executor, code: str) -> str | None:
    r = ex.run(code)
    assert r.error is None, r.error and r.error.traceback
    return r.text


def test_factory_and_exports() -> None:
    import executors.local as local

    ex = create_executor("local")
    assert isinstance(ex, LocalExecutor) and ex.executor_type == "local"
    for name in local.__all__:
        assert hasattr(local, name)


def test_state_persists_between_runs(ex: Executor) -> None:
    ex.run("import math\nx = 2\ndef sq(v):\n    return v * v\nclass K:\n    pass")
    assert value(ex, "sq(x) + math.floor(2.5), K.__name__") == "(6, 'K')"


def test_execution_fields(ex: Executor) -> None:
    r = ex.run("print('a')\n1 + 1")
    assert (r.stdout, r.text, r.status, r.error) == ("a\n", "2", "ok", None)
    assert r.duration_s > 0 and r.execution_count == 1
    assert ex.run("x = 1").results == []
    assert ex.run("None").results == []
    assert ex.run("print(2)").execution_count == 4


def test_traceback_points_at_user_line_and_column(ex: Executor) -> None:
    r = ex.run("a = 1\nb = 0\nif a:\n    c = a / b")
    assert r.error is not None and r.error.name == "ZeroDivisionError"
    assert r.error.value == "division by zero"
    assert 'File "<code>", line 4, col 5' in r.error.traceback
    assert "c = a / b" in r.error.traceback
    r = ex.run("def f(x):\n    return x[5]\n\nf([1])")
    tb = r.error.traceback  # type: ignore[union-attr]
    assert "line 4, col 1, in <module>" in tb and "line 2, col 5, in f" in tb
    assert tb.index("line 4") < tb.index("line 2")


def test_syntax_error_reported(ex: Executor) -> None:
    r = ex.run("x = (1,\nprint(x")
    assert r.status == "error" and r.error is not None and r.error.name == "SyntaxError"


def test_final_answer(ex: Executor) -> None:
    r = ex.run("print('before')\nfinal_answer([1, {'a': 2.5}])\nprint('after')")
    assert r.is_final_answer and r.final_answer == [1, {"a": 2.5}]
    assert r.stdout == "before\n" and r.status == "ok"
    r = ex.run("import datetime\nfinal_answer(datetime.date(2024, 1, 2))")
    assert r.final_answer == "datetime.date(2024, 1, 2)"
    r = ex.run("def f():\n    final_answer('deep')\nf()")
    assert r.final_answer == "deep"
    assert not ex.run("1").is_final_answer


def test_name_error_suggestion(ex: Executor) -> None:
    ex.run("result_value = 5")
    r = ex.run("result_valeu + 1")
    assert r.error is not None and r.error.name == "NameError"
    assert r.error.value == "name 'result_valeu' is not defined. Did you mean: 'result_value'?"


def test_send_variables_and_tools(ex: Executor) -> None:
    ex.send_variables({"data": [3, 1, 2], "cfg": {"k": "v"}})
    ex.send_tools({"double": lambda v: v * 2})
    assert value(ex, "sorted(data), cfg['k'], double(21)") == "([1, 2, 3], 'v', 42)"
    with pytest.raises(ConfigurationError):
        ex.send_tools({"final_answer": print})
    with pytest.raises(ConfigurationError):
        ex.send_variables({"__builtins__": {}})
    with pytest.raises(ConfigurationError):
        ex.send_tools({"x": 1})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": "1"}, "timeout_s"),
        ({"isolation": "thread"}, "isolation"),
        ({"max_operations": -1}, "max_operations"),
        ({"max_output_bytes": 1.5}, "max_output_bytes"),
        ({"bogus": 1}, "bogus"),
        ({"additional_authorized_imports": "numpy"}, "additional_authorized_imports"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        create_executor("local", **kwargs)


def test_run_timeout_override_and_closed() -> None:
    ex = create_executor("local", timeout_s=30)
    r = ex.run("while True:\n    pass", timeout_s=0.2)
    assert r.status == "timeout" and r.duration_s < 2
    with pytest.raises(ConfigurationError):
        ex.run("1", timeout_s=-1)
    ex.close()
    ex.close()
    with pytest.raises(ExecutorClosedError):
        ex.run("1")


def test_authorized_import_patterns() -> None:
    with create_executor("local", additional_authorized_imports=["email.*"]) as ex:
        assert value(ex, "import email.utils\nemail.utils.quote('a')") == "'a'"
        assert ex.run("import xml").error.name == "SecurityError"  # type: ignore[union-attr]
    with create_executor("local", additional_authorized_imports=["*"]) as ex:
        assert value(ex, "import xml.dom\n1") == "1"
        # even with '*', dunders and introspection stay closed
        assert ex.run("import os\nos.__dict__").error.name == "SecurityError"  # type: ignore[union-attr]


def test_dataclasses_and_enums_when_authorized() -> None:
    with create_executor("local", additional_authorized_imports=["dataclasses", "enum"]) as ex:
        code = (
            "from dataclasses import dataclass, field\nimport enum\n"
            "class Color(enum.Enum):\n    RED = 1\n    BLUE = 2\n"
            "@dataclass(order=True)\nclass P:\n    x: int\n    tags: list = field(default_factory=list)\n"
            "sorted([P(2), P(1)]), Color(2).name"
        )
        assert value(ex, code) == "([P(x=1, tags=[]), P(x=2, tags=[])], 'BLUE')"
    with create_executor("local") as ex:
        assert ex.run("import dataclasses").error.name == "SecurityError"  # type: ignore[union-attr]


def test_generator_protocol(ex: Executor) -> None:
    code = (
        "def g():\n    try:\n        while True:\n            x = yield\n            print('got', x)\n"
        "    except GeneratorExit:\n        print('closed')\n        raise\n"
        "it = g()\nnext(it)\nit.send(1)\nit.close()\n"
        "def h():\n    try:\n        yield 1\n    except KeyError:\n        yield 'handled'\n"
        "k = h()\nnext(k), k.throw(KeyError)"
    )
    r = ex.run(code)
    assert r.error is None, r.error
    assert r.stdout == "got 1\nclosed\n" and r.text == "(1, 'handled')"


def test_closures_see_late_binding_and_nonlocal(ex: Executor) -> None:
    code = (
        "def outer():\n    v = 1\n    def get():\n        return v\n    v = 2\n"
        "    def set_(n):\n        nonlocal v\n        v = n\n    return get, set_\n"
        "get, set_ = outer()\na = get()\nset_(9)\na, get()"
    )
    assert value(ex, code) == "(2, 9)"


def test_unbound_local(ex: Executor) -> None:
    r = ex.run("x = 1\ndef f():\n    print(x)\n    x = 2\nf()")
    assert r.error is not None and r.error.name == "UnboundLocalError"


def test_argument_errors_match_python(ex: Executor) -> None:
    ex.run("def f(a, b=1, *, c):\n    pass")
    assert ex.run("f()").error.value == "f() missing 1 required positional argument: 'a'"  # type: ignore[union-attr]
    assert (
        ex.run("f(1, 2, 3, c=1)").error.value == "f() takes 2 positional arguments but 3 were given"
    )  # type: ignore[union-attr]
    assert ex.run("f(1)").error.value == "f() missing 1 required keyword-only argument: 'c'"  # type: ignore[union-attr]
    assert ex.run("f(1, c=1, d=2)").error.value == "f() got an unexpected keyword argument 'd'"  # type: ignore[union-attr]


def test_with_statement_exits_and_suppresses(ex: Executor) -> None:
    code = (
        "log = []\nclass CM:\n    def __init__(self, s):\n        self.s = s\n"
        "    def __enter__(self):\n        log.append('in')\n        return self\n"
        "    def __exit__(self, *exc):\n        log.append(exc[0].__name__ if exc[0] else 'ok')\n"
        "        return self.s\n"
        "with CM(True):\n    raise KeyError\nwith CM(False), CM(False):\n    pass\nlog"
    )
    assert value(ex, code) == "['in', 'KeyError', 'in', 'in', 'ok', 'ok']"


def test_deep_legit_recursion(ex: Executor) -> None:
    assert (
        value(ex, "def s(n):\n    if n == 0:\n        return 0\n    return n + s(n - 1)\ns(950)")
        == "451725"
    )


def test_print_captured_not_leaked(ex: Executor, capsys: pytest.CaptureFixture[str]) -> None:
    ex.run("print('secret')")
    assert "secret" not in capsys.readouterr().out


def test_host_global_state_isolated(ex: Executor) -> None:
    import decimal
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    ex.run("import random, decimal\nrandom.seed(0)\ndecimal.getcontext().prec = 3")
    assert random.random() == expected
    assert decimal.getcontext().prec == 28
    assert value(ex, "decimal.getcontext().prec") == "3"


def test_traceback_inside_loops(ex: Executor) -> None:
    r = ex.run(
        "def gen():\n    yield 1\n    raise ValueError('in gen')\nfor v in gen():\n    w = v\n"
    )
    tb = r.error.traceback  # type: ignore[union-attr]
    assert "line 4, col 1" in tb and "line 3, col 5, in gen" in tb and "line 5" not in tb
    r = ex.run("for i in range(3):\n    x = 1\n    y = 1 / (i - 2)\n")
    assert "line 3, col 5" in r.error.traceback  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "code",
    [
        "break",
        "continue",
        "def f():\n    break",
        "for i in range(2):\n    def g():\n        continue",
        "while False:\n    pass\nelse:\n    break",
        "return 1",
        "class A:\n    return 1",
    ],
)
def test_misplaced_control_flow_is_a_syntax_error(ex: Executor, code: str) -> None:
    r = ex.run(code)
    assert r.error is not None and r.error.name == "SyntaxError", r


def test_tools_run_on_the_callers_thread(ex: Executor) -> None:
    import threading

    seen = []
    ex.send_tools({"where": lambda: seen.append(threading.current_thread()) or len(seen)})
    assert ex.run("where() + where()").text == "3"
    assert seen == [threading.current_thread()] * 2


def test_tool_exceptions_reach_the_code(ex: Executor) -> None:
    def boom() -> None:
        raise KeyError("missing")

    ex.send_tools({"boom": boom})
    r = ex.run("try:\n    boom()\nexcept KeyError as e:\n    r = 'caught ' + str(e)\nr")
    assert r.text == "\"caught 'missing'\""


def test_unsafe_variables_are_a_configuration_error(ex: Executor) -> None:
    import os

    with pytest.raises(ConfigurationError, match="variables"):
        ex.send_variables({"mod": os})
    with pytest.raises(ConfigurationError):
        ex.send_variables({"nested": {"k": [os]}})


# Legitimate uses next to the guards added for tests/local/test_attacks_more.py.
LEGIT_AFTER_HARDENING = [
    (
        "import fractions\nF = fractions.Fraction\nx = F(1, 3) - F(1, 5) + F(2, 7) * F(3, 4) / F(5, 6)\nx",
        "Fraction(41, 105)",
    ),
    (
        "def g():\n    yield from range(5)\n(3 in g(), 9 in g(), 2 not in g())",
        "(True, False, False)",
    ),
    ("x = [1, 2, 3]\nx[1:2] = (i * 10 for i in range(3))\nx", "[1, 0, 10, 20, 3]"),
    (
        "import dataclasses\n@dataclasses.dataclass(frozen=True)\nclass P:\n    a: int\n    b: int = 2\nP(1)",
        "P(a=1, b=2)",
    ),
    (
        "import dataclasses\nP = dataclasses.make_dataclass('P', ['a', ('b', int, dataclasses.field(default=0))])\nP(1)",
        "P(a=1, b=0)",
    ),
    (
        "import functools\n@functools.total_ordering\nclass V:\n    def __init__(self, v):\n        self.v = v\n    def __eq__(self, o):\n        return self.v == o.v\n    def __lt__(self, o):\n        return self.v < o.v\nV(2) >= V(1)",
        "True",
    ),
    (
        "import collections.abc as c\nclass Bag:\n    pass\nc.Sized.register(Bag)\nisinstance(Bag(), c.Sized)",
        "True",
    ),
    ("import enum\nE = enum.Enum('E', 'A B')\n[e.name for e in E]", "['A', 'B']"),
    (
        "(round(2.675, 2), round(12345, -2), divmod(17, 5), pow(3, 200, 7))",
        "(2.67, 12300, (3, 2), 2)",
    ),
    (
        "import operator, functools, math\n(functools.reduce(operator.mul, range(1, 10)), operator.pow(2, 10), math.prod([2, 3, 4]), math.lcm(4, 6))",
        "(362880, 1024, 24, 12)",
    ),
    ("import re\nre.sub(r'(\\d+)', lambda m: str(int(m.group(1)) * 2), 'a1 b22')", "'a2 b44'"),
    ("'hello'.translate({ord('l'): 'L'}) + str.translate('ab', {97: 'x'})", "'heLLoxb'"),
    ("print([1, 'a'] * 3, {'k': (1, 2)})\nf'{[1, 2]}' + '{}'.format({1})", "'[1, 2]{1}'"),
    (
        "import decimal, fractions\n(decimal.Decimal('1.5e10'), fractions.Fraction('2.5e3'), int(decimal.Decimal('7.9')))",
        "(Decimal('1.5E+10'), Fraction(2500, 1), 7)",
    ),
    (
        "import copy, decimal\n(len(copy.dispatch_table) > 0, decimal.DefaultContext.prec)",
        "(True, 28)",
    ),
    (
        "import random\nr = random.Random(3)\n(len(r.choices([1, 2], k=5)), len(r.sample(range(100), 10)), r.getrandbits(8) < 256)",
        "(5, 10, True)",
    ),
    (
        "import abc\nclass Base(abc.ABC):\n    @abc.abstractmethod\n    def f(self):\n        ...\nclass Impl(Base):\n    def f(self):\n        return 1\nImpl().f()",
        "1",
    ),
    (
        "class M(type):\n    def __new__(m, n, b, ns):\n        ns['tag'] = n.lower()\n        return super().__new__(m, n, b, ns)\nclass Thing(metaclass=M):\n    pass\nThing.tag",
        "'thing'",
    ),
    ("x = 2**600_000\n(x // 3**100_000).bit_length() > 0 and (x % 7) >= 0", "True"),
    ("import itertools\nlist(itertools.tee(range(3), 2)[1])", "[0, 1, 2]"),
    ("(1024).to_bytes(2, 'big') + int.to_bytes(1, 1, 'little')", "b'\\x04\\x00\\x01'"),
    ("import string\nstring.Template('$a-$b').substitute(a='x', b='y')", "'x-y'"),
]


@pytest.mark.parametrize(("code", "expected"), LEGIT_AFTER_HARDENING)
def test_legitimate_code_after_hardening(code: str, expected: str) -> None:
    with create_executor("local", additional_authorized_imports=["dataclasses", "enum"]) as ex:
        assert value(ex, code) == expected
