"""Differential tests: the interpreter must agree with CPython on output and last value."""

from __future__ import annotations

import ast
import contextlib
import io
from typing import Any

import pytest

from executors.local import Interpreter

from .snippets import NUMPY_SNIPPETS, SNIPPETS


def run_cpython(code: str) -> tuple[str, str | None, str | None]:
    tree = ast.parse(code)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    ns: dict[str, Any] = {"__name__": "__main__"}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(tree, "<code>", "exec"), ns)
            value = eval(compile(last, "<code>", "eval"), ns) if last is not None else None
    except Exception as exc:
        return out.getvalue(), None, type(exc).__name__
    return out.getvalue(), None if value is None else repr(value), None


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"s{i:03d}" for i in range(len(SNIPPETS))])
def test_matches_cpython(code: str) -> None:
    expected_out, expected_value, expected_error = run_cpython(code)
    result = Interpreter().run(code)
    if expected_error is not None:
        assert result.error is not None and result.error.name == expected_error, result
        return
    assert result.error is None, result.error and result.error.traceback
    assert result.stdout == expected_out
    assert result.text == expected_value


@pytest.mark.parametrize(
    "code", NUMPY_SNIPPETS, ids=[f"np{i:02d}" for i in range(len(NUMPY_SNIPPETS))]
)
def test_numpy_matches_cpython(code: str) -> None:
    pytest.importorskip("numpy")
    expected_out, expected_value, expected_error = run_cpython(code)
    result = Interpreter(additional_authorized_imports=["numpy"]).run(code)
    assert expected_error is None
    assert result.error is None, result.error and result.error.traceback
    assert (result.stdout, result.text) == (expected_out, expected_value)


def test_snippet_count() -> None:
    assert len(SNIPPETS) >= 150
