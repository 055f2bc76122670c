# ruff: noqa: E501 - attack payloads are kept verbatim on one line
"""Attacks on the interpreter: the reference sample (A-G) and many more of the same families.

BLOCK: status "error" with a security error and no side effect; LIMIT: a prompt budget error
or timeout; ALLOW: works.
"""

from __future__ import annotations

import time

import pytest

from executors import create_executor
from executors.models import Execution

SECURITY = {"SecurityError", "InterpreterError", "UnsupportedSyntaxError"}
BUDGET = {
    "OperationLimitExceeded", "IterationLimitExceeded", "TimeoutExceeded", "TimeoutError", "OutputLimitExceeded",
    "RecursionLimitExceeded", "MemoryLimitExceeded", "SizeLimitExceeded", "SourceLimitExceeded",
}  # fmt: skip


def run(code: str, imports: tuple[str, ...] = (), **kw: object) -> Execution:
    kw.setdefault("timeout_s", 5.0)
    with create_executor("local", additional_authorized_imports=list(imports), **kw) as ex:  # type: ignore[arg-type]
        return ex.run(code)


def blocked(result: Execution) -> None:
    assert result.status == "error", result
    assert result.error is not None and result.error.name in SECURITY, result.error


def limited(result: Execution, max_s: float = 6.0) -> None:
    assert result.error is not None, result
    assert result.status in ("timeout", "error", "output_truncated"), result
    assert result.error.name in BUDGET, result.error
    assert result.duration_s < max_s, result.duration_s


# -- A. imports and module reachability ------------------------------------------------------
IMPORT_ATTACKS = [
    "import os\nos.getcwd()",
    "from os import system",
    "__import__('os')",
    "import random\nrandom._os.system('true')",
    "import random\ngetattr(random, '_os')",
    "import subprocess",
    "import sys",
    "import importlib",
    "import os.path",
    "from . import x",
    "import builtins",
    "import ctypes",
    "import pickle",
    "import posix",
    "import io",
    "import collections\ncollections._sys",
    "import typing\ntyping.sys",
    "import re\nre.enum.sys",
    "import json\njson.decoder.re.enum.sys",
    "import functools\nfunctools.singledispatch",
    "import typing\ntyping.get_type_hints",
    "import string\nstring.Formatter.mro()[1]().format('{0.__class__}', 1)",
    "import random\nrandom.SystemRandom().choice",
    "import math\nmath.__loader__",
    "import math\nmath.__spec__",
    "import math\nmath.__dict__",
    "import datetime\ndatetime.sys",
    "import statistics\nstatistics.sys",
    "import textwrap\ntextwrap.re._compiler",
]


@pytest.mark.parametrize("code", IMPORT_ATTACKS)
def test_import_routes_blocked(code: str) -> None:
    blocked(run(code))


def test_module_reexport_requires_authorization() -> None:
    blocked(run("import queue\nqueue.threading._sys.modules['os']", imports=("queue",)))
    blocked(run("import queue\nqueue.threading._os.system(':')", imports=("queue",)))
    blocked(run("import warnings\nwarnings.sys", imports=("warnings",)))


def test_cve_2025_5120_native_higher_order_getattr() -> None:
    code = "import warnings, functools\nlist(map(getattr, [warnings], ['sys']))"
    blocked(run(code, imports=("warnings", "functools")))
    code = "import warnings, functools\nlist(filter(functools.partial(getattr, warnings), ['sys']))"
    blocked(run(code, imports=("warnings", "functools")))
    code = "import warnings, functools\nfunctools.reduce(getattr, ['sys'], warnings)"
    blocked(run(code, imports=("warnings", "functools")))
    code = "import warnings, itertools\nlist(itertools.starmap(getattr, [(warnings, 'sys')]))"
    blocked(run(code, imports=("warnings",)))


def test_os_is_consistently_blocked_even_when_listed_via_pattern() -> None:
    # os is importable only when explicitly authorized; its members then work consistently.
    r = run("import os\nf = os.getcwd\nf() == os.getcwd()", imports=("os",))
    assert r.status == "ok" and r.text == "True"
    blocked(run("import os\nos.system('true')"))


def test_star_import_of_authorized_module() -> None:
    r = run("from math import *\nsqrt(9)")
    assert r.text == "3.0"
    blocked(run("from os import *"))


# -- B. dunder and introspection routes ------------------------------------------------------
DUNDER_ATTACKS = [
    "for cls in ().__class__.__base__.__subclasses__():\n    pass",
    "().__class__",
    "getattr((), '__cl' + 'ass__')",
    "getattr((), '__class__')",
    "hasattr((), '__class__')",
    "setattr(print, '__doc__', 'x')",
    "delattr(print, '__doc__')",
    "def f(): pass\nf.__globals__['__builtins__']['__import__']('os')",
    "def f(): pass\ngetattr(f, '__glo' + 'bals__')",
    "globals()",
    "locals()",
    "vars()",
    "dir()",
    "eval('1')",
    "exec('x = 1')",
    "compile('1', 'f', 'eval')",
    "open('/etc/passwd')",
    "breakpoint()",
    "input()",
    "__builtins__",
    "__builtins__.__dict__",
    "__import__",
    "__loader__",
    "__spec__",
    "x = __build_class__",
    "'{0.__class__}'.format(1)",
    "'{0.__class__.__base__.__subclasses__}'.format(1)",
    "'{.__class__}'.format(1)",
    "'{x.__class__}'.format(x=1)",
    "'{0.__init__.__globals__}'.format(len)",
    "'{a.__class__}'.format_map({'a': 1})",
    "fmt = '{0.__class__}'.format\nfmt(1)",
    "f = str.format\nf('{0.__class__}', 1)",
    "f = getattr(str, 'format')\nf('{0.__class__}', 1)",
    "f = type('').format\nf('{0.__class__}', 1)",
    "class S(str):\n    pass\nS('{0.__class__}').format(1)",
    "import operator\noperator.attrgetter('__class__')(1)",
    "import operator\noperator.attrgetter('real.__class__')(1)",
    "import operator\noperator.methodcaller('__reduce__')(1)",
    "import operator\noperator.methodcaller('format', 1)('{0.__class__}')",
    "import string\nstring.Formatter().format('{0.__class__}', 1)",
    "def g():\n    yield 1\nx = g()\nx.gi_frame",
    "def g():\n    yield 1\nx = g()\nx.gi_frame.f_back.f_globals",
    "def g():\n    yield 1\ngetattr(g(), 'gi_' + 'frame')",
    "def g():\n    yield 1\ng().gi_code",
    "x = (i for i in [1])\nx.gi_frame.f_locals",
    "try:\n    1/0\nexcept Exception as e:\n    tb = e.__traceback__",
    "try:\n    1/0\nexcept Exception as e:\n    tb = getattr(e, '__traceback__')",
    "try:\n    1/0\nexcept Exception as e:\n    e.__traceback__.tb_frame.f_globals",
    "try:\n    1/0\nexcept Exception as e:\n    x = e.with_traceback(None).__traceback__",
    "def f():\n    x = 1\n    def g():\n        return x\n    return g\nf().__closure__[0].cell_contents",
    "def f(): pass\nf.__code__",
    "def f(): pass\nf.__code__.co_consts",
    "(lambda: 0).__code__",
    "print.__self__",
    "[].append.__self__",
    "type.__subclasses__(object)",
    "object.__subclasses__()",
    "int.__mro__",
    "type(1).__bases__",
    "x = 1\nx.__class__ = str",
    "class A:\n    pass\nA.__dict__",
    "class A:\n    pass\nvars(A)",
    "class A:\n    pass\nA().__dict__",
    "class A:\n    __slots__ = ('__class__',)",
    "class A:\n    def __del__(self):\n        pass",
    "class A:\n    def __getattribute__(self, n):\n        return 1",
    "class A:\n    __class__ = int",
    "class A:\n    __dict__ = {}",
    "super(int, 1).__getattribute__('__class__')",
    "super(int, 1).__class__",
    "class A:\n    def m(self):\n        return super().__getattribute__('__class__')\nA().m()",
    "class A:\n    def m(self):\n        return super().__reduce_ex__(2)\nA().m()",
    "s = super\ns().__init__",
    "object.__getattribute__(1, '__class__')",
    "type.__getattribute__(int, '__subclasses__')",
    "import functools\nfunctools.partial(getattr, 1)('__class__')",
    "list(map(getattr, [1], ['__class__']))",
    "sorted([1], key=lambda x: getattr(x, '__class__'))",
    "x = {}\nx.__class__",
    "a = 1\na.__init__",
    "a = []\na.__len__()",
    "'abc'.__len__()",
    "def f(): pass\nf.__dict__",
    "def f(): pass\nf.__defaults__",
    "def f(): pass\nf.__kwdefaults__",
    "def f(): pass\nf.__wrapped__ = 1",
    "with open('x') as f:\n    pass",
    "import random\nrandom.Random.__init__",
    "import random\nrandom._inst",
    "import math\ngetattr(math, '__name__').__class__",
    "(1).__add__(2)",
    "del [].__class__",
    "class A:\n    pass\na = A()\na.__dict__['x'] = 1",
    "class A:\n    pass\nsetattr(A, '__getattr__', lambda s, n: 1)",
    "class A:\n    pass\nA.__getattr__ = lambda s, n: 1",
    "class A:\n    pass\nA.__del__ = lambda s: None",
    "x = [1]\nx.__iadd__([2])",
    "type('X', (), {'__del__': lambda s: None})",
    "type('X', (), {})",
    "dir.__self__",
    "import typing\ntyping.ForwardRef('1')",
    "class A:\n    pass\nclass B:\n    x: '__import__(\"os\")' = 1\nimport typing\ntyping.get_type_hints(B)",
    "class C:\n    f_globals = 1\n(1).f_globals",
    "try:\n    getattr(1, 'x')\nexcept AttributeError as e:\n    e.obj.__class__",
    "import datetime\ndatetime.datetime.now().__reduce__()",
    "def f():\n    yield 1\nf().gi_yieldfrom",
    "print(1, file=None.__class__)",
    "x = 1\nx @= 1 if False else 0\n().__class__",
    "async def f():\n    pass",
    "lambda: (yield)",
]


@pytest.mark.parametrize("code", DUNDER_ATTACKS)
def test_dunder_and_introspection_routes_blocked(code: str) -> None:
    r = run(code)
    assert r.status == "error", r
    assert r.error is not None
    # Some entries are refused by Python itself first (NameError for missing builtins).
    assert r.error.name in SECURITY | {"NameError"}, r.error


@pytest.mark.parametrize(
    "name",
    [
        "globals",
        "locals",
        "vars",
        "eval",
        "exec",
        "compile",
        "open",
        "breakpoint",
        "input",
        "help",
        "exit",
        "quit",
        "memoryview",
    ],
)
def test_dangerous_builtins_are_absent(name: str) -> None:
    r = run(f"{name}")
    assert r.error is not None and r.error.name == "NameError", r


def test_no_side_effect_before_block(tmp_path: object) -> None:
    r = run("print('side effect')\nimport os")
    # Imports are checked at run time, but the statement before it printed only to our buffer.
    blocked(r)
    r = run("print('before')\n().__class__")
    blocked(r)
    assert r.stdout == "", "static dunder checks must refuse the program before it runs"


# -- E. state, integrity and policy bypasses ----------------------------------------------------
def test_security_error_not_catchable() -> None:
    code = "try:\n    import os\nexcept Exception as e:\n    r = 'caught: ' + str(e)[:40]\nr"
    blocked(run(code))
    for handler in (
        "except BaseException:",
        "except:",
        "except Exception:",
        "except (ImportError, BaseException):",
    ):
        blocked(run(f"try:\n    import os\n{handler}\n    pass\n'escaped'"))
        blocked(run(f"try:\n    getattr(1, '__class__')\n{handler}\n    pass\n'escaped'"))


def test_security_error_skips_finally_and_exit() -> None:
    r = run("try:\n    import os\nfinally:\n    print('finally ran')")
    blocked(r)
    assert "finally ran" not in r.stdout
    code = (
        "class C:\n    def __enter__(self):\n        return self\n"
        "    def __exit__(self, *a):\n        print('swallow')\n        return True\n"
        "with C():\n    import os\n'escaped'"
    )
    r = run(code)
    blocked(r)
    assert "swallow" not in r.stdout


def test_return_in_finally_cannot_swallow_security_error() -> None:
    r = run("def f():\n    try:\n        import os\n    finally:\n        return 'swallowed'\nf()")
    blocked(r)


def test_budget_error_not_catchable() -> None:
    r = run(
        "try:\n    while True:\n        pass\nexcept Exception:\n    pass\n'escaped'",
        max_operations=100_000,
    )
    limited(r)
    r = run(
        "n = 0\nwhile True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        n += 1",
        max_operations=100_000,
    )
    limited(r)
    r = run(
        "while True:\n    try:\n        while True:\n            pass\n    except:\n        pass",
        timeout_s=0.5,
    )
    limited(r, max_s=2)


def test_final_answer_cannot_be_swallowed() -> None:
    r = run("try:\n    final_answer('done')\nexcept Exception:\n    pass\nprint('after')")
    assert r.is_final_answer and r.final_answer == "done" and "after" not in r.stdout
    r = run("try:\n    final_answer('done')\nexcept BaseException:\n    final_answer('other')")
    assert r.final_answer == "done"
    r = run(
        "def f():\n    try:\n        final_answer('done')\n    finally:\n        return 'x'\nf()"
    )
    assert r.final_answer == "done"


PROTECTED = [
    "final_answer = 1",
    "del final_answer",
    "def final_answer(x):\n    return x",
    "class final_answer:\n    pass",
    "for final_answer in [1]:\n    pass",
    "import math as final_answer",
    "from math import sqrt as final_answer",
    "def f():\n    global final_answer\n    final_answer = 2\nf()",
    "(final_answer := 3)",
    "def f(final_answer):\n    pass",
    "with open as final_answer:\n    pass",
    "try:\n    pass\nexcept Exception as final_answer:\n    pass",
    "[final_answer for final_answer in range(2)]",
    "lambda final_answer: 1",
    "final_answer += 1",
    "final_answer: int = 3",
]


@pytest.mark.parametrize("code", PROTECTED)
def test_final_answer_is_protected(code: str) -> None:
    blocked(run(code))


def test_tools_are_protected_and_wrapped() -> None:
    import os

    with create_executor("local") as ex:
        ex.send_tools(
            {"search": lambda q: f"results for {q}", "leak": lambda: os, "leak_list": lambda: [os]}
        )
        assert ex.run("search('x')").text == "'results for x'"
        blocked(ex.run("search = 1"))
        blocked(ex.run("leak()"))
        blocked(ex.run("leak_list()"))
        blocked(ex.run("search._fn"))
        blocked(ex.run("search.__call__"))
        blocked(ex.run("search.__closure__"))


def test_forged_final_answer_is_just_an_exception() -> None:
    r = run(
        "class FinalAnswerException(BaseException):\n    pass\nraise FinalAnswerException('forged')"
    )
    assert not r.is_final_answer and r.status == "error"
    r = run("class FinalAnswerSignal(BaseException):\n    pass\nraise FinalAnswerSignal('forged')")
    assert not r.is_final_answer and r.final_answer is None


def test_interpreter_state_unreachable() -> None:
    for code in (
        "_budget",
        "budget",
        "print._policy",
        "final_answer._interp",
        "final_answer.__self__",
        "print.__globals__",
        "print.__closure__",
    ):
        r = run(code)
        assert r.error is not None and r.error.name in SECURITY | {"NameError", "AttributeError"}, (
            code,
            r,
        )


def test_name_error_never_resolved_to_close_match() -> None:
    r = run("result_value = 5\nresult_valeu")
    assert r.error is not None and r.error.name == "NameError"
    assert "Did you mean: 'result_value'?" in r.error.value


def test_user_dunders_do_not_run_in_host_after_run() -> None:
    code = "class Evil:\n    def __repr__(self):\n        while True:\n            pass\nEvil()"
    r = run(code, max_operations=200_000)
    assert r.status in ("ok", "error")
    assert r.text is None or "unrepresentable" in r.text or r.error is not None
    with create_executor("local") as ex:
        r = ex.run(
            "class E:\n    def __eq__(self, o):\n        print('eq')\n        return True\n    __hash__ = None\nkeep = [E()]\nfinal_answer(E())"
        )
        assert r.is_final_answer and isinstance(r.final_answer, str)


def test_objects_kept_between_runs_cannot_run_outside_run() -> None:
    from executors.local import Interpreter
    from executors.local.errors import InterpreterNotRunning

    interp = Interpreter()
    interp.run("def f():\n    return 1\ng = (i for i in range(3))")
    with pytest.raises(InterpreterNotRunning):
        interp.globals["f"]()
    with pytest.raises(InterpreterNotRunning):
        next(interp.globals["g"])


# -- F. resource exhaustion -----------------------------------------------------------------
def test_infinite_loop_limited() -> None:
    limited(run("while True:\n    pass", max_operations=1_000_000))
    limited(run("while True:\n    pass", timeout_s=0.3), max_s=1.5)


def test_huge_for_loop_limited() -> None:
    limited(run("for i in range(10**12):\n    pass", max_iterations=100_000))


LARGE_ALLOCATIONS = [
    "'a' * 10**10",
    "[0] * 10**9",
    "'a'.center(4 * 10**9)",
    "'{:>2000000000}'.format(1)",
    "f'{1:>2000000000}'",
    "format(1, '>2000000000')",
    "'%2000000000d' % 1",
    "'%*d' % (2000000000, 1)",
    "import itertools\nlist(itertools.count())",
    "import itertools\nlist(map(abs, itertools.count()))",
    "import itertools\n''.join(map(str, itertools.count()))",
    "import itertools\nsum(itertools.count())",
    "sum(range(10**12))",
    "list(range(10**12))",
    "sorted(range(10**12))",
    "set(range(10**12))",
    "bytes(10**10)",
    "bytearray(10**10)",
    "2 ** 10**10",
    "pow(2, 10**10)",
    "10 ** 10 ** 8",
    "1 << 10**10",
    "import math\nmath.factorial(10**7)",
    "x = 'ab'\nwhile True:\n    x = x + x",
    "x = [1]\nwhile True:\n    x.extend(x)",
    "x = [1]\nwhile True:\n    x += x",
    "x = [1]\nwhile True:\n    x *= 2",
    "'x'.ljust(10**10)",
    "'x'.zfill(10**10)",
    "str.center('x', 10**10)",
    "'ab'.replace('', 'x' * 10**4) * 1 if False else ('ab' * 10**5).replace('', 'x' * 10**4)",
    "','.join(['x' * 10**6] * 10**3)",
    "'\\t'.expandtabs(10**10)",
    "import itertools\nlist(itertools.repeat(1, 10**12))",
    "import itertools\nlist(itertools.product(range(100), repeat=10))",
    "x = {}\nfor i in range(10**12):\n    x[i] = i",
    "[i for i in range(10**12)]",
    "list(i for i in range(10**12))",
    "a, *b = range(10**12)",
    "import collections\ncollections.deque(range(10**12))",
    "max(range(10**12))",
    "any(x < 0 for x in range(10**12))",
]


@pytest.mark.parametrize("code", LARGE_ALLOCATIONS)
def test_large_allocations_limited(code: str) -> None:
    limited(run(code, max_operations=2_000_000, timeout_s=5.0))


def test_print_flood_limited_linear() -> None:
    start = time.perf_counter()
    r = run("for i in range(200000):\n    print('x' * 100)", max_output_bytes=100_000)
    assert r.status == "output_truncated"
    assert r.error is not None and r.error.name == "OutputLimitExceeded"
    assert len(r.stdout.encode()) <= 100_000 and r.stdout.startswith("x" * 100)
    assert time.perf_counter() - start < 2


def test_deep_recursion_limited_and_legit_recursion_works() -> None:
    r = run("def f(n):\n    return f(n + 1)\nf(0)")
    assert r.error is not None and r.error.name in ("RecursionLimitExceeded", "RecursionError"), r
    r = run("def d(n):\n    return 0 if n == 0 else 1 + d(n - 1)\nd(900)")
    assert r.text == "900", r
    r = run("def f(n):\n    return f(n + 1)\nf(0)", max_recursion_depth=50)
    assert r.error is not None and r.error.name == "RecursionLimitExceeded"
    assert "max_recursion_depth=50" in r.error.value


def test_deeply_nested_source_rejected() -> None:
    limited(run("x = " + "-" * 100_000 + "1"))
    limited(run("x = " + "(" * 100_000 + "1" + ")" * 100_000))
    limited(run("x = " + "not " * 50_000 + "1"))
    limited(run("x = " + "[" * 5000 + "]" * 5000))
    limited(run("x = 1" + " + 1" * 100_000))
    limited(run("x = 1\n" * 1_000_000))
    # literal dashes in strings are not nesting
    assert run("print('" + "-" * 200 + "')").status == "ok"


def test_sleep_cannot_outlive_deadline() -> None:
    limited(run("import time\ntime.sleep(10**9)", timeout_s=0.3), max_s=1.5)
    assert run("import time\ntime.sleep(0.01)\n'ok'").text == "'ok'"


# -- G. unsupported syntax fails cleanly ----------------------------------------------------
@pytest.mark.parametrize(
    "code",
    [
        "async def f():\n    pass",
        "async def f():\n    await x",
        "try:\n    pass\nexcept* ValueError:\n    pass",
        "def f():\n    print((yield 1))\nlist(f())",
        "x = lambda: (yield)",
    ],
)
def test_unsupported_syntax_is_a_clear_error(code: str) -> None:
    r = run(code)
    assert r.status == "error" and r.error is not None
    assert r.error.name in ("UnsupportedSyntaxError", "SyntaxError"), r.error
    if r.error.name == "UnsupportedSyntaxError":
        assert "not supported" in r.error.value


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("(y := 3)\ny", "3"),
        ("x = 0\ndef f():\n    global x\n    x = 5\nf()\nx", "5"),
        (
            "def f():\n    x = 1\n    def g():\n        nonlocal x\n        x = 2\n    g()\n    return x\nf()",
            "2",
        ),
        ("def f():\n    yield 1\nlist(f())", "[1]"),
        ("match 1:\n    case 1:\n        r = 'one'\nr", "'one'"),
        (
            "try:\n    try:\n        raise KeyError('k')\n    except KeyError:\n        raise\nexcept KeyError as e:\n    r = repr(e)\nr",
            "\"KeyError('k')\"",
        ),
    ],
)
def test_syntax_that_must_work(code: str, expected: str) -> None:
    r = run(code)
    assert r.error is None, r.error
    assert r.text == expected


def test_pickle_never_used_for_results() -> None:
    blocked(
        run(
            "class P:\n    def __reduce__(self):\n        return (print, ('pwned',))\nfinal_answer(P())"
        )
    )
    r = run("class P:\n    def __repr__(self):\n        return 'P!'\nfinal_answer({'k': [1, P()]})")
    assert r.is_final_answer and r.final_answer == "{'k': [1, P!]}"
    r = run("final_answer({'k': [1, 2.5, None, 'x', (3,)]})")
    assert r.final_answer == {"k": [1, 2.5, None, "x", [3]]}


def test_quadratic_native_folds_are_bounded() -> None:
    r = run(
        "import functools, operator\nfunctools.reduce(operator.add, [[1]] * 10**6)", timeout_s=1.0
    )
    limited(r, max_s=3)
    r = run("len(sum([[1]] * 10**6, []))", timeout_s=5.0)
    assert r.text == "1000000" and r.duration_s < 3


def test_sorted_with_user_key_is_budgeted() -> None:
    r = run("sorted(range(10**6), key=lambda v: -v)[0]", max_operations=100_000)
    limited(r)


@pytest.mark.parametrize(
    "code",
    [
        "import functools\nfunctools.partial(type, 'X', (), {'__del__': print})()",
        "list(map(type, ['X'], [()], [{'__getattribute__': print}]))",
        "import decimal\ndecimal.getcontext().prec = 10**9",
        "import decimal\ndecimal.Context(prec=10**9)",
        "import decimal\nwith decimal.localcontext(prec=10**9):\n    pass",
    ],
)
def test_native_class_and_context_factories_checked(code: str) -> None:
    r = run(code)
    assert r.error is not None and r.error.name in SECURITY | BUDGET, r


def test_functional_namedtuple_is_adopted() -> None:
    r = run("import typing\nX = typing.NamedTuple('X', [('a', int)])\nX(1)._asdict()")
    assert r.text == "{'a': 1}"


CLASS_TRICKS = [
    # decorators returning builtins or dunder-bearing objects
    "def deco(f):\n    return getattr\n@deco\ndef g():\n    pass\ng(1, '__class__')",
    "def deco(c):\n    return c.__base__\n@deco\nclass A:\n    pass",
    "@property\ndef p(self):\n    return self.__class__\n",
    # class-body name tricks
    "class A:\n    __getattribute__ = lambda self, n: 1",
    "class A:\n    __reduce_ex__ = lambda self, p: (print, ('x',))",
    "class A:\n    __class_getitem__ = classmethod(lambda c, i: c.__mro__)\nA[0]",
    "class A:\n    x = __class__",
    "class A:\n    locals()",
    "class A:\n    __qualname__ = 'B'",
    "class A:\n    __module__ = 'os'",
    "class A:\n    __dict__ = 1",
    "class A:\n    __weakref__ = 1",
    "class A:\n    __init_subclass__ = print\n    __set_name__ = getattr\nA.__set_name__",
    # descriptors
    "class D:\n    def __get__(self, obj, owner):\n        return owner.__dict__\nclass A:\n    d = D()\nA.d",
    "class D:\n    def __get__(self, obj, owner):\n        return getattr(owner, '__dict__')\nclass A:\n    d = D()\nA().d",
    # super() tricks
    "class A:\n    def f(self):\n        return super().__getattribute__('__dict__')\nA().f()",
    "class A:\n    def f(self):\n        return super().__class__\nA().f()",
    "class A:\n    def f(self):\n        return super().__thisclass__\nA().f()",
    "class A:\n    def f(self):\n        return super().__self__\nA().f()",
    "class A:\n    def f(self):\n        s = super()\n        return s.__setattr__('__class__', int)\nA().f()",
    "super(type, int).__subclasses__()",
    # metaclasses
    "class M(type):\n    def __getattr__(cls, n):\n        return 1\nclass A(metaclass=M):\n    pass\nA.__dict__",
    "class M(type):\n    pass\nM('X', (), {'__del__': print})",
    "class M(type):\n    def __new__(m, n, b, ns):\n        ns['__del__'] = print\n        return super().__new__(m, n, b, ns)\nclass A(metaclass=M):\n    pass",
    "class A(metaclass=print):\n    pass",
    # format/str subclass tricks
    "class S(str):\n    pass\nS('{0.__class__}').format_map({'0': 1})",
    "'{0.__class__!r:>10}'.format(1)",
    "'{0:{1.__class__}}'.format(1, 2)",
    "'{0[0].__class__}'.format([1])",
    # protected names via routes other than assignment
    "import math as final_answer",
    "def f():\n    nonlocal final_answer",
    "for final_answer, x in [(1, 2)]:\n    pass",
    "with open('x') as (final_answer, y):\n    pass",
    "match 1:\n    case final_answer:\n        pass",
]


@pytest.mark.parametrize("code", CLASS_TRICKS)
def test_class_decorator_descriptor_super_tricks(code: str) -> None:
    r = run(code)
    assert r.status == "error", r
    assert r.error is not None and r.error.name in SECURITY | {"NameError", "SyntaxError"}, r.error


def test_str_subclass_may_override_format() -> None:
    r = run("class S(str):\n    def format(self, *a):\n        return 'own'\nS('x').format(1)")
    assert r.text == "'own'"


@pytest.mark.parametrize(
    "code",
    [
        "import functools\nclass H:\n    pass\nh = H()\nfunctools.update_wrapper(h, print, assigned=('__globals__',))",
        "import functools\ndef f():\n    pass\nfunctools.update_wrapper(print, f)",
        "import functools\ndef f():\n    pass\nfunctools.wraps(f, assigned=('__code__',))(lambda: 0)",
    ],
)
def test_update_wrapper_restricted(code: str) -> None:
    blocked(run(code))
