"""CPython semantics and API gaps of the local interpreter, in both isolation modes: in-place
operators, class docstrings, string.Formatter, timeout_s=None, authorized modules that are not
installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from executors import create_executor
from executors.base import Executor
from executors.exceptions import ConfigurationError


@pytest.fixture(scope="module", params=["none", "process"])
def nx(request: pytest.FixtureRequest) -> Iterator[Executor]:
    pytest.importorskip("numpy")
    with create_executor(
        "local", additional_authorized_imports=["numpy"], isolation=request.param, timeout_s=10
    ) as executor:
        yield executor


def _value(ex: Executor, code: str) -> str | None:
    r = ex.run(code)
    assert r.ok, r.error
    return r.text


def test_inplace_operators_alias_numpy_arrays(nx: Executor) -> None:
    assert _value(nx, "import numpy as np\na = np.array([1, 2])\nb = a\na *= 2\nb.tolist()") == (
        "[2, 4]"
    )
    code = (
        "import numpy as np\na = np.array([8, 9])\nb = a\n"
        "a //= 2\na %= 3\na **= 2\na <<= 2\na >>= 1\nb.tolist(), a is b"
    )
    assert _value(nx, code) == "([2, 2], True)"


def test_inplace_dunders_and_fallback(nx: Executor) -> None:
    methods = ["imul", "ifloordiv", "imod", "ipow", "ilshift", "irshift", "imatmul", "itruediv"]
    body = "".join(
        f"    def __{m}__(self, o):\n        self.log.append({m!r})\n        return self\n"
        for m in methods
    )
    code = (
        "class A:\n    def __init__(self):\n        self.log = []\n"
        "    def __mul__(self, o):\n        return 'binary'\n" + body + "a = A()\nb = a\n"
        "a *= 1\na //= 1\na %= 1\na **= 1\na <<= 1\na >>= 1\na @= 1\na /= 1\nb.log, a is b"
    )
    assert _value(nx, code) == repr((methods, True))
    only = (
        "class O:\n    v = 1\n    def __imul__(self, o):\n        self.v = o\n        return self\n"
    )
    assert _value(nx, only + "o = O()\no *= 5\no.v") == "5"
    fallback = (
        "class F:\n    def __init__(self, v):\n        self.v = v\n"
        "    def __imul__(self, o):\n        return NotImplemented\n"
        "    def __mul__(self, o):\n        return F(self.v * o)\n"
        "a = F(2)\nb = a\na *= 4\na.v, b.v"
    )
    assert _value(nx, fallback) == "(8, 2)"
    assert _value(nx, "a = [1]\nb = a\na *= 3\nb") == "[1, 1, 1]"
    r = nx.run("import collections\nd = collections.deque([1] * 1000)\nd *= 10**9")
    assert r.error is not None and r.error.name == "SizeLimitExceeded"


def test_class_docstring(nx: Executor) -> None:
    code = 'class A:\n    """the doc"""\nclass B:\n    x = 1\nA.__doc__, B.__doc__'
    assert _value(nx, code) == "('the doc', None)"


def test_string_formatter_allowed_dunder_fields_refused(nx: Executor) -> None:
    assert _value(nx, "import string\nstring.Formatter().format('{0}-{x:>3}', 1, x='a')") == (
        "'1-  a'"
    )
    sub = (
        "import string\nclass F(string.Formatter):\n"
        "    def get_value(self, key, args, kwargs):\n        return f'<{key}>'\n"
        "F().format('{a}{0}', 1)"
    )
    assert _value(nx, sub) == "'<a><0>'"
    assert _value(
        nx, "import string\nstring.Formatter().format('{0.real}{1[k]}', 1, {'k': 2})"
    ) == ("'12'")
    for code in (
        "import string\nstring.Formatter().format('{0.__class__}', 1)",
        "import string\ndef f(): pass\nstring.Formatter().vformat('{0.__globals__}', (f,), {})",
        "import string\nstring.Formatter.mro()[1]().format('{0.__class__}', 1)",
        "import string\nclass X(string.Formatter): pass\nX.mro()[1]().format('{0.__class__}', 1)",
        "import string\nf = string.Formatter()\n"
        "super(string.Formatter, f).get_field('0.__class__', (1,), {})",
        "import string\nstring.Formatter.get_field = 1",
    ):
        r = nx.run(code)
        assert r.error is not None and r.error.name == "SecurityError", (code, r)
    r = nx.run("import string\nstring.Formatter().format('{0:>999999999}', 1)")
    assert r.error is not None and r.error.name == "SizeLimitExceeded"


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_timeout_none_relies_on_the_other_budgets(isolation: str) -> None:
    with create_executor(
        "local", timeout_s=None, isolation=isolation, max_operations=200_000
    ) as ex:
        assert ex.run("sum(range(10))").text == "45"
        r = ex.run("while True:\n    pass")
        assert r.status == "error" and r.error is not None
        assert "max_operations" in r.error.value
    with pytest.raises(ConfigurationError, match="or None"):
        create_executor("local", timeout_s="10")


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_authorized_module_not_installed_is_reported_at_creation(isolation: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_executor(
            "local",
            additional_authorized_imports=["math", "no_such_module_l14", "nope_l14.*"],
            isolation=isolation,
        )
    message = str(info.value)
    assert "no_such_module_l14" in message and "nope_l14.*" in message
    assert "math" not in message.split(":")[-1]
    with create_executor(
        "local", additional_authorized_imports=["json.decoder", "email.*", "*"]
    ) as ex:
        assert ex.run("1").ok


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_inlined_builtin_method_calls_keep_the_size_budget(isolation: str) -> None:
    with create_executor("local", isolation=isolation, max_collection_size=1000) as ex:
        for code in (
            "xs = []\nfor k in range(5000):\n    xs.append(k)",
            "d = {}\nfor k in range(5000):\n    d.setdefault(k, 1)",
            "s = set()\nfor k in range(5000):\n    s.add(k)",
        ):
            r = ex.run(code)
            assert r.error is not None and r.error.name == "SizeLimitExceeded", (code, r)
        assert ex.run("d = {}\nd.get('k', 0) + len('a b'.split())").text == "2"
