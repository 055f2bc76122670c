from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2b, pytest.mark.docker]


def test_reference_script(sbx) -> None:
    sbx.run_code("x = 1")
    assert sbx.run_code("x + 1").text == "2"
    sbx.files.write("/tmp/a.txt", "hi")
    assert sbx.files.read("/tmp/a.txt") == "hi"
    assert sbx.commands.run("echo hello").stdout == "hello\n"
