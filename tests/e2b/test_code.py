"""run_code through the real SDK: state, streaming callbacks, rich results, errors, contexts."""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2b import NotFoundException, TimeoutException

pytestmark = [pytest.mark.e2b, pytest.mark.docker]


def test_state_persists_between_runs(sbx: Any) -> None:
    first = sbx.run_code("x = 41")
    assert first.error is None and first.results == []
    execution = sbx.run_code("x + 1")
    assert execution.text == "42"
    assert execution.results[0].is_main_result is True
    assert execution.execution_count == 2


def test_callbacks_fire_in_order_with_timestamps(sbx: Any) -> None:
    seen: list[tuple[str, str]] = []
    execution = sbx.run_code(
        # stdout and stderr are separate pipes: only pauses make their interleaving certain.
        "import sys, time\nprint('one')\ntime.sleep(0.3)\nprint('two', file=sys.stderr)\n"
        "time.sleep(0.3)\nprint('three')\nprint('four')\n'done'",
        on_stdout=lambda m: seen.append(("stdout", m.line)),
        on_stderr=lambda m: seen.append(("stderr", m.line)),
        on_result=lambda r: seen.append(("result", r.text)),
        on_error=lambda e: seen.append(("error", e.name)),
    )
    # One callback per line, even when lines arrive together.
    assert seen == [("stdout", "one\n"), ("stderr", "two\n"), ("stdout", "three\n"),
                    ("stdout", "four\n"), ("result", "done")]
    assert execution.logs.stdout == ["one\n", "three\n", "four\n"]
    assert execution.logs.stderr == ["two\n"]


def test_stdout_streams_while_the_code_runs(sbx: Any) -> None:
    arrivals: list[float] = []
    start = time.monotonic()
    sbx.run_code("import time\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b')",
                 on_stdout=lambda m: arrivals.append(time.monotonic() - start))
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] > 1.0, arrivals


def test_matplotlib_figure_is_a_png_result(sbx: Any) -> None:
    execution = sbx.run_code(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()")
    assert execution.error is None, execution.error
    pngs = [r.png for r in execution.results if r.png]
    assert len(pngs) == 1
    import base64
    assert base64.b64decode(pngs[0]).startswith(b"\x89PNG")


def test_dataframe_is_an_html_result(sbx: Any) -> None:
    execution = sbx.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
    result = execution.results[0]
    assert result.is_main_result
    assert "<table" in result.html
    assert "a" in result.text and "b" in result.text


def test_json_and_extra_mime_types(sbx: Any) -> None:
    execution = sbx.run_code(
        "class R:\n"
        "    def _repr_json_(self): return {'k': [1, 2]}\n"
        "    def _repr_mimebundle_(self): return {'application/x-custom': 'c'}\n"
        "R()")
    result = execution.results[0]
    assert result.json == {"k": [1, 2]}
    assert result.extra == {"application/x-custom": "c"}


def test_error_in_user_code(sbx: Any) -> None:
    errors: list[Any] = []
    execution = sbx.run_code("print('before')\n1 / 0", on_error=errors.append)
    assert execution.error is not None
    assert execution.error.name == "ZeroDivisionError"
    assert execution.error.value == "division by zero"
    assert "ZeroDivisionError" in execution.error.traceback
    assert execution.logs.stdout == ["before\n"]
    assert errors and errors[0].name == "ZeroDivisionError"
    assert sbx.run_code("1 + 1").text == "2"  # the sandbox is fine afterwards


def test_syntax_error_is_an_execution_error(sbx: Any) -> None:
    execution = sbx.run_code("def (")
    assert execution.error is not None and execution.error.name == "SyntaxError"


def test_execution_timeout_raises_and_the_sandbox_recovers(sbx: Any) -> None:
    sbx.run_code("y = 7")
    with pytest.raises(TimeoutException):
        sbx.run_code("import time\ntime.sleep(30)", timeout=2)
    # The disconnect interrupted the code; state survives and the next run is not blocked.
    started = time.monotonic()
    assert sbx.run_code("y").text == "7"
    assert time.monotonic() - started < 10


def test_str_results_lose_their_quotes_like_on_e2b(sbx: Any) -> None:
    assert sbx.run_code("'abc'").text == "abc"
    assert sbx.run_code('"it\'s"').text == '"it\'s"'


def test_run_code_envs_apply_to_that_run_only(sbx: Any) -> None:
    code = "import os\nstr(os.environ.get('SELFBOX_E2B_VAR'))"
    assert sbx.run_code(code, envs={"SELFBOX_E2B_VAR": "v1"}).text == "v1"
    assert sbx.run_code(code).text == "None"


def test_envs_at_create_are_visible(e2b_env: Any) -> None:
    from e2b_code_interpreter import Sandbox

    sandbox = Sandbox.create(envs={"GREETING": "hej"})
    try:
        assert sandbox.run_code("import os\nos.environ['GREETING']").text == "hej"
        assert sandbox.commands.run("echo $GREETING").stdout == "hej\n"
    finally:
        sandbox.kill()


def test_contexts_are_independent_namespaces(sbx: Any) -> None:
    sbx.run_code("shared = 'default'")
    ctx = sbx.create_code_context(cwd="/tmp")
    assert ctx.language == "python" and ctx.cwd == "/tmp"
    sbx.run_code("shared = 'ctx'", context=ctx)
    assert sbx.run_code("shared").text == "default"
    assert sbx.run_code("shared", context=ctx).text == "ctx"
    assert sbx.run_code("import os\nos.getcwd()", context=ctx).text == "/tmp"
    assert ctx.id in [c.id for c in sbx.list_code_contexts()]

    sbx.restart_code_context(ctx)
    assert sbx.run_code("'shared' in dir()", context=ctx).text == "False"
    assert sbx.run_code("shared").text == "default"

    sbx.remove_code_context(ctx.id)
    assert ctx.id not in [c.id for c in sbx.list_code_contexts()]
    with pytest.raises(NotFoundException):
        sbx.run_code("1", context=ctx)
    with pytest.raises(NotFoundException):
        sbx.restart_code_context(ctx)
