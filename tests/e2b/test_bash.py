"""run_code(language="bash") through the real SDK: a long-lived shell per context."""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2b import TimeoutException

pytestmark = [pytest.mark.e2b, pytest.mark.docker]


def test_bash_keeps_its_state_and_streams(sbx: Any) -> None:
    seen: list[str] = []
    first = sbx.run_code("X=5\ngreet() { echo \"hi $1\"; }\ncd /tmp\necho one; sleep 0.3; "
                         "echo two >&2", language="bash", on_stdout=lambda m: seen.append(m.line))
    assert first.error is None
    assert first.logs.stdout == ["one\n"] and first.logs.stderr == ["two\n"]
    assert seen == ["one\n"]
    later = sbx.run_code("greet $X; pwd", language="bash")
    assert later.logs.stdout == ["hi 5\n", "/tmp\n"]
    # Python's default context is a different world.
    assert sbx.run_code("import os\nos.environ.get('X'), os.getcwd()").text == \
        "(None, '/home/user')"


def test_a_failing_cell_is_an_error_and_exit_gets_a_new_shell(sbx: Any) -> None:
    failed = sbx.run_code("Y=1\necho before\nfalse", language="bash")
    assert failed.error is not None and failed.error.value == "exit code 1"
    assert failed.logs.stdout == ["before\n"]
    assert sbx.run_code("echo $Y", language="bash").logs.stdout == ["1\n"]
    ended = sbx.run_code("exit 3", language="bash")
    assert ended.error is not None and "shell exited" in ended.error.value
    assert sbx.run_code("echo \"[$Y]\"", language="bash").logs.stdout == ["[]\n"]


def test_an_interrupted_cell_leaves_the_shell_and_its_state(sbx: Any) -> None:
    sbx.run_code("Z=kept", language="bash")
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        sbx.run_code("sleep 60; echo not-reached", language="bash", timeout=2)
    assert time.monotonic() - started < 20
    after = sbx.run_code("echo $Z", language="bash")
    assert after.error is None and after.logs.stdout == ["kept\n"]


def test_bash_contexts_are_separate_shells(sbx: Any) -> None:
    one = sbx.create_code_context(language="bash", cwd="/tmp")
    two = sbx.create_code_context(language="bash")
    assert one.language == "bash"
    sbx.run_code("V=one", context=one)
    assert sbx.run_code("echo \"[$V] $(pwd)\"", context=one).logs.stdout == ["[one] /tmp\n"]
    assert sbx.run_code("echo \"[$V] $(pwd)\"", context=two).logs.stdout == ["[] /home/user\n"]
    listed = {c.id: c.language for c in sbx.list_code_contexts()}
    assert listed[one.id] == "bash" and listed["default"] == "python"
    sbx.restart_code_context(one)
    assert sbx.run_code("echo \"[$V]\"", context=one).logs.stdout == ["[]\n"]
    sbx.remove_code_context(two)
    assert two.id not in {c.id for c in sbx.list_code_contexts()}


def test_other_languages_are_refused_by_name(sbx: Any) -> None:
    from e2b import SandboxException

    with pytest.raises(SandboxException, match="language 'r' is not supported"):
        sbx.run_code("1", language="r")
