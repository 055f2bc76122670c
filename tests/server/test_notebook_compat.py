"""Notebook compatibility, as E2B's Jupyter kernel offers it: syntax in cells (``!cmd``,
``%pip``, ``%%bash`` ...), the rewrite on its own and for real inside a sandbox; and
``IPython.display`` in an image without IPython."""

from __future__ import annotations

import ast

import httpx
import pytest

from sandbox_server.runner.magics import expand, transform
from tests.server.test_api import run


def test_plain_python_is_never_rewritten() -> None:
    for code in ("x = 5 % 2", "a != b", "print('!echo')", "s = '''\n!not a command\n'''"):
        assert transform(code) is None


def test_rewrites_keep_every_line_in_place() -> None:
    code = ("import os\nfor i in range(2):\n    !echo {i} \\\n      more\n"
            "files = !ls\n%cd /tmp\nprint(files)")
    rewritten = transform(code)
    assert rewritten is not None
    lines, original = rewritten.splitlines(), code.splitlines()
    assert len(lines) == len(original)
    assert lines[0] == "import os" and lines[-1] == "print(files)"
    assert lines[2].startswith("    __import__(") and "'echo {i}" in lines[2]
    assert lines[3] == ""  # the continued command's second line
    assert lines[4].startswith("files = __import__(") and ", True, " in lines[4]
    ast.parse(rewritten)


def test_a_cell_magic_takes_the_whole_cell() -> None:
    rewritten = transform("\n%%bash -x\necho a\necho b\n")
    assert rewritten is not None
    tree = ast.parse(rewritten)
    assert len(tree.body) == 1 and tree.body[0].lineno == 2
    assert "'echo a\\necho b\\n'" in rewritten and "'-x'" in rewritten


def test_expansion_like_ipython() -> None:
    namespace = {"x": 3, "name": "v"}
    assert expand("echo {x + 1} $x ${name} $HOME $$ {{a}}", namespace) == \
        "echo 4 3 v $HOME $ {a}"



@pytest.mark.docker
def test_shell_escapes_and_magics_run_in_the_sandbox(client: httpx.Client, sandbox: str) -> None:
    out = run(client, sandbox, "n = 3\n!echo hello $n {n * 2}\n!exit 4\ncode = _exit_code\n"
                               "listing = !printf 'a\\nb\\n'\nlisting")
    assert out["status"] == "ok", out
    assert out["stdout"] == "hello 3 6\n"
    assert out["results"][0]["data"]["text/plain"] == "['a', 'b']"
    assert run(client, sandbox, "code")["results"][0]["data"]["text/plain"] == "4"

    out = run(client, sandbox, "%%bash\necho from bash >&2\necho $((6 * 7))\n")
    assert (out["status"], out["stdout"], out["stderr"]) == ("ok", "42\n", "from bash\n")

    out = run(client, sandbox, "%%writefile notes.txt\nline one\n")
    assert out["stdout"] == "Writing notes.txt\n"
    out = run(client, sandbox, "%cd /tmp\nimport os\nos.getcwd()")
    assert out["stdout"] == "/tmp\n"
    # The working directory lasts, as in a notebook; the file was written in the old one.
    out = run(client, sandbox, "%matplotlib inline\nprint(os.getcwd())\n"
                               "print(open('/home/user/notes.txt').read())")
    assert out["stdout"] == "/tmp\nline one\n\n"


@pytest.mark.docker
def test_pip_of_an_installed_package_works_offline(client: httpx.Client, sandbox: str) -> None:
    out = run(client, sandbox, "%pip install numpy\n!pip install matplotlib")
    assert out["status"] == "ok", out
    assert "Requirement already satisfied: numpy" in out["stdout"]
    assert "Requirement already satisfied: matplotlib" in out["stdout"]


@pytest.mark.docker
def test_unknown_magics_and_real_syntax_errors_are_named(client: httpx.Client,
                                                          sandbox: str) -> None:
    out = run(client, sandbox, "%timeit 1 + 1")
    assert out["error"]["name"] == "UsageError"
    assert "%timeit" in out["error"]["value"] and "%pip" in out["error"]["value"]
    out = run(client, sandbox, "%%javascript\nalert(1)\n")
    assert out["error"]["name"] == "UsageError" and "%%javascript" in out["error"]["value"]
    # A typo beside a valid magic is reported on its own line.
    out = run(client, sandbox, "!echo fine\nx = (1,\n")
    assert out["error"]["name"] == "SyntaxError"
    assert "line 2" in out["error"]["traceback"]


@pytest.mark.docker
def test_ipython_display_works_without_ipython(client: httpx.Client, sandbox: str) -> None:
    out = run(client, sandbox, (
        "from IPython.display import display, HTML, Markdown, Image, JSON\n"
        "import IPython\n"
        "display(HTML('<b>hi</b>'), Markdown('# title'))\n"
        "display({'text/plain': 'raw', 'text/html': '<i>raw</i>'}, raw=True)\n"
        "display(JSON({'a': 1}))\n"
        "display(Image(data=b'\\x89PNG fake', format='png'))\n"
        "IPython.get_ipython() is None"))
    assert out["status"] == "ok", out
    data = [r["data"] for r in out["results"]]
    assert data[0]["text/html"] == "<b>hi</b>"
    assert data[1]["text/markdown"] == "# title"
    assert data[2] == {"text/plain": "raw", "text/html": "<i>raw</i>"}
    assert data[3]["application/json"] == {"a": 1}
    assert data[4]["image/png"] == "iVBORyBmYWtl"  # base64 of the bytes
    assert data[5]["text/plain"] == "True" and out["results"][5]["is_main_result"]
    # The built-in display takes several values too.
    out = run(client, sandbox, "display(1, 2)")
    assert [r["data"]["text/plain"] for r in out["results"]] == ["1", "2"]


@pytest.mark.docker
def test_pip_installs_into_the_home_and_imports_without_a_restart(client: httpx.Client,
                                                                   sandbox: str) -> None:
    # Offline, from a local project: the same path a download from an index would take.
    out = run(client, sandbox, (
        "import os\n"
        "os.makedirs('/tmp/tiny/tinypkg', exist_ok=True)\n"
        "open('/tmp/tiny/tinypkg/__init__.py', 'w').write('VALUE = 42\\n')\n"
        "open('/tmp/tiny/pyproject.toml', 'w').write('[build-system]\\nrequires = []\\n"
        "build-backend = \"setuptools.build_meta\"\\n[project]\\nname = \"tinypkg\"\\n"
        "version = \"1.0\"\\n')\n"
        "%pip install --no-index --no-build-isolation /tmp/tiny\n"
        "import tinypkg\n"
        "tinypkg.VALUE, tinypkg.__file__.startswith('/home/user/.local/')"))
    assert out["status"] == "ok", out
    assert "Successfully installed tinypkg-1.0" in out["stdout"]
    assert out["results"][-1]["data"]["text/plain"] == "(42, True)"
