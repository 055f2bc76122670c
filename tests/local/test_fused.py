"""Generated ("fused") code must behave exactly like the per-node closures it replaces.

Every snippet runs twice, with ``compiler.FUSE_DEFAULT`` on and off: same output, value, error
(class, message, traceback lines) and the same number of operations counted by the budget.
The snippets below aim at the fused shapes (names, operators, calls, method calls, stores,
loops with break/continue/else, comprehensions, user functions); each is also checked against
CPython.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from executors.local import Interpreter, Limits, compiler

from .snippets import SNIPPETS
from .test_differential import run_cpython

FUSED_SNIPPETS: list[str] = [
    # names: unbound locals, globals, builtins, NameError with a hint
    "def f(flag):\n    if flag:\n        v = 1\n    return v\nf(0)",
    "def f():\n    return undefined_thing + 1\nf()",
    "x = 5\ndef f():\n    return x + len('abc')\nf()",
    "len = lambda s: 42\nlen('abc')",
    "def f():\n    y = 1\n    def g():\n        return y + 1\n    return g()\nf()",
    # operators on every type the fast paths test for
    "[1 + 2, 1.5 + 2, 'a' + 'b', [1] + [2], (1,) + (2,), True + True, 2**70 + 1]",
    "[7 - 2, 7.5 - 2, 7 // 2, -7 // 2, 7 / 2, 7 % 3, -7 % 3, 7.5 % 2, 'a%sb' % 'x']",
    "[3 * 4, 3 * 0.5, 'ab' * 3, [0] * 3, 3 * 'x', 2**40 * 2**40, True * 3]",
    "[6 & 3, 6 | 3, 6 ^ 3, 6 >> 1, 6 << 2, -6, not 6, ~6, +6]",
    "from fractions import Fraction\n[Fraction(1, 3) - Fraction(1, 6), Fraction(1, 2) + 1]",
    "from decimal import Decimal\n[Decimal('1.1') + Decimal('2.2'), Decimal(3) * 2]",
    "1 + 'a'",
    "'a' + 1",
    "1 % 0",
    "x = 3\n[x < 5, 1 < x < 5, 1 < x > 5, x in [1, 3], x not in (3,), x is None, x is not None]",
    "xs = iter([1, 2, 3])\n[2 in xs, list(xs)]",
    "x = 0\n[x and 1/x, x or 'default', 1 and 2 and 3, 0 or '' or None, x if x else 'no']",
    "a, b = 1, 2\na, b = b, a + b\n[a, b]",
    "a, b = 'xy'\n[a, b]",
    "def f(x, y):\n    x, y = y, x\n    return (x, y)\nf(1, 2)",
    "def f(a, b):\n    for _ in range(3):\n        a, b = b, a + b\n    return a, b\nf(1, 2)",
    "def f(n):\n    n += 1\n    n = n * 2\n    return n\nf(3)",
    "def f(n):\n    del n\n    return n\nf(3)",
    "a, b = [1, 2, 3]",
    "a, b = (1,)",
    "(a, b), c = (1, 2), 3\n[a, b, c]",
    # calls: user functions, builtins, methods of builtins and of user objects
    "def f(a, b=2, *rest, **kw):\n    return (a, b, rest, kw)\n"
    "[f(1), f(1, 3), f(1, 2, 3), f(a=1, b=4)]",
    "def f(a, b):\n    return a - b\n[f(5, 3), f(b=5, a=3)]",
    "def f(a):\n    return a\nf()",
    "def f(a):\n    return a\nf(1, 2)",
    "[len('abc'), str(12), abs(-3), repr([1, 'a']), int('7'), round(2.5), isinstance(1, int)]",
    "s = ' Hello '\n[s.strip(), s.upper(), s.split(), ','.join(['a', 'b']), s.replace('l', 'L')]",
    "d = {}\nd['a'] = d.get('a', 0) + 1\nd.setdefault('b', []).append(2)\nd",
    "xs = [3, 1, 2]\nxs.sort()\nxs.append(4)\n[xs, xs.index(2), xs.pop(), xs.count(1)]",
    "class A:\n    def __init__(self, v):\n        self.v = v\n    def get(self, k=1):\n"
    "        return self.v * k\na = A(3)\n[a.get(), a.get(2), a.v]",
    "class A:\n    @property\n    def p(self):\n        print('read')\n        return 5\n"
    "a = A()\n[a.p, a.p + 1]",
    "class A:\n    def m(self):\n        return 1\na = A()\nm = a.m\n[m(), a.m()]",
    "class A:\n    pass\na = A()\na.missing()",
    "class A:\n    pass\nA().nothing",
    "class B:\n    def area(self):\n        return 0\n    def d(self):\n"
    "        return str(self.area())\n"
    "class C(B):\n    def area(self):\n        return 7\n[B().d(), C().d()]",
    "xs = [1, 2, 3]\nxs[0] = 9\nxs[1:] = (i * 2 for i in range(2))\nxs",
    "d = {}\nd['k'] = 1\nd['k'] += 2\nd",
    "class P:\n    pass\np = P()\np.x = 1\np.x += 5\np.x",
    "a = b = [1]\na.append(2)\n[a is b, b]",
    "class P:\n    pass\np = P()\np.a = p.b = 3\n[p.a, p.b]",
    "class P:\n    def __init__(self, xs, n=0):\n        self.xs = xs\n"
    "[P([1, 2]).xs, P((1,), n=2).xs]",
    "class M(type):\n    pass\nclass A(metaclass=M):\n    pass\ntype(A()).__name__",
    # loops: break, continue, else, nested, while, return from inside a loop
    "out = []\nfor i in range(10):\n    if i == 2:\n        continue\n    if i == 5:\n"
    "        break\n    out.append(i)\nelse:\n    out.append('else')\nout",
    "out = []\nfor i in range(3):\n    out.append(i)\nelse:\n    out.append('else')\nout",
    "i = 0\nwhile i < 10:\n    i += 1\n    if i % 2:\n        continue\n    if i > 6:\n"
    "        break\ni",
    "def f():\n    for i in range(5):\n        for j in range(5):\n            if i * j == 6:\n"
    "                return (i, j)\n    return None\nf()",
    "def f(n):\n    t = 0\n    while True:\n        n -= 1\n        if n < 0:\n"
    "            return t\n"
    "        t += n\nf(5)",
    "total = 0\nfor i, c in enumerate('abc'):\n    total += i\ntotal",
    "def gen():\n    yield 1\n    raise ValueError('inside')\nfor x in gen():\n    pass",
    "for x in 5:\n    pass",
    "def f():\n    try:\n        for i in range(3):\n            if i == 1:\n"
    "                return i\n"
    "    finally:\n        print('fin')\nf()",
    "def f(xs):\n    for x in xs:\n        try:\n            if x == 2:\n                continue\n"
    "            if x == 4:\n                break\n        finally:\n            print(x)\n"
    "    return 'done'\nf([1, 2, 3, 4, 5])",
    # comprehensions and generator expressions
    "[x * x for x in range(5) if x % 2]",
    "{x: x // 2 for x in range(6) if x > 1}",
    "{c for c in 'hello'}",
    "[(a, b) for a in range(3) for b in range(a) if a != b]",
    "sum(v for v in [1, 2, 3])",
    "x = 10\n[x for x in range(3)]\nx",
    "[(lambda: i)() for i in range(3)]",
    "[y for y in [1, 2] if undefined_in_comp]",
    "g = (x for x in range(3))\nnext(g), list(g)",
    "def f(n):\n    return [i * n for i in range(n)]\nf(4)",
    "[[j for j in range(i)] for i in range(4)]",
    # recursion, depth and errors inside nested calls
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(15)",
    "def f(n):\n    return f(n + 1)\nf(0)",
    "def f(x):\n    return 1 / x\ndef g(x):\n    y = x - 1\n    return f(y)\ng(1)",
    "def f():\n    x = 1\n    x = x + 'a'\n    return x\nf()",
    "count = 0\ndef bump():\n    global count\n    count += 1\nfor _ in range(5):\n    bump()\n"
    "count",
    "def outer():\n    n = 0\n    def inc():\n        nonlocal n\n        n += 1\n"
    "        return n\n"
    "    inc()\n    return inc()\nouter()",
    "class A:\n    def __init__(self):\n        super().__init__()\n        self.x = 1\nA().x",
]


@pytest.fixture
def fusing() -> Iterator[None]:
    saved = compiler.FUSE_DEFAULT
    yield
    compiler.FUSE_DEFAULT = saved


def _run(code: str, fuse: bool) -> tuple[Any, ...]:
    compiler.FUSE_DEFAULT = fuse
    interp = Interpreter(limits=Limits(max_recursion_depth=200), big_stack=False)
    r = interp.run(code)
    err = None if r.error is None else (r.error.name, r.error.value, r.error.traceback)
    return r.stdout, r.text, err, interp.budget.operations_used


CASES = FUSED_SNIPPETS + SNIPPETS


@pytest.mark.parametrize("code", CASES, ids=[f"f{i:03d}" for i in range(len(CASES))])
def test_fused_code_is_equivalent(code: str, fusing: None) -> None:
    assert _run(code, fuse=True) == _run(code, fuse=False)


@pytest.mark.parametrize(
    "code", FUSED_SNIPPETS, ids=[f"c{i:03d}" for i in range(len(FUSED_SNIPPETS))]
)
def test_fused_snippets_match_cpython(code: str) -> None:
    expected_out, expected_value, expected_error = run_cpython(code)
    result = Interpreter(limits=Limits(max_recursion_depth=200)).run(code)
    if expected_error is not None:
        # the interpreter's own depth budget stands for CPython's RecursionError
        names = {
            expected_error,
            "RecursionLimitExceeded" if expected_error == "RecursionError" else "",
        }
        assert result.error is not None and result.error.name in names, result
        return
    assert result.error is None, result.error and result.error.traceback
    assert (result.stdout, result.text) == (expected_out, expected_value)


def test_fusing_is_on_by_default() -> None:
    interp = Interpreter(big_stack=False)
    interp.run("def f(x):\n    return x + 1\n")
    assert interp.globals["f"].__code__.co_filename == "<fused>"


def test_large_bodies_keep_their_closures() -> None:
    # CPython compiles huge generated functions slowly: above the size bound, a body keeps the
    # closure template (its statements are still generated one by one) and works the same.
    body = "".join(f"    x{i} = {i} + 1\n" for i in range(400))
    interp = Interpreter(big_stack=False)
    interp.run("def f():\n" + body + "    return x399\ndef g():\n    return 1\n")
    assert interp.globals["f"].__code__.co_filename != "<fused>"
    assert interp.globals["g"].__code__.co_filename == "<fused>"
    assert interp.run("f()").text == "400"
