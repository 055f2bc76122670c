"""Fast unit tests of the e2b back end, against an in-process fake of the SDK's sandbox.

The fake runs code with ``exec`` (trusted test code only) and answers with the SDK's own model
classes, so the mapping is tested against the real ``Execution``/``Result``/``Logs`` types.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import functools
import io
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

import pytest

e2b_models = pytest.importorskip("e2b_code_interpreter.models")
e2b_errors = pytest.importorskip("e2b.exceptions")

import executors.e2b as e2b_backend  # noqa: E402
from executors import create_async_executor, create_executor  # noqa: E402
from executors.e2b import (  # noqa: E402
    E2BExecutor,
    bootstrap_code,
    map_execution,
    map_result,
    parse_final_answer,
    tool_source,
    translate_error,
    variables_code,
)
from executors.exceptions import (  # noqa: E402
    AuthenticationError,
    ConfigurationError,
    ExecutorClosedError,
    InvalidRequestError,
    MissingDependencyError,
    RateLimitError,
    SandboxConnectionError,
    SandboxGoneError,
    SandboxNotFoundError,
    ServerError,
    ToolError,
)


class FakeSandbox:
    """Runs cells in one namespace, like a Jupyter kernel; answers with SDK models."""

    created: list[dict[str, Any]] = []

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.sandbox_id = f"fake-{len(self.created)}"
        self.namespace: dict[str, Any] = {"__name__": "__main__"}
        self.killed = False
        self.count = 0
        self.cells: list[str] = []

    @classmethod
    def create(cls, **options: Any) -> FakeSandbox:
        if options.get("api_key") == "bad":
            raise e2b_errors.AuthenticationException("Invalid API key")
        sandbox = cls(**options)
        cls.created.append(options)
        return sandbox

    def kill(self) -> None:
        self.killed = True

    def run_code(self, code: str, timeout: float | None = None,
                 on_stdout: Callable[[Any], None] | None = None,
                 on_stderr: Callable[[Any], None] | None = None,
                 on_result: Callable[[Any], None] | None = None, **_: Any) -> Any:
        if self.killed:
            raise e2b_errors.SandboxNotRunningException("sandbox is not running")
        self.cells.append(code)
        if "while True" in code:
            if timeout is not None:
                time.sleep(min(timeout, 0.2))
            raise e2b_errors.TimeoutException("Execution timed out — the 'timeout' option ...")
        self.count += 1
        execution = e2b_models.Execution(execution_count=self.count)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                tree = ast.parse(code)
                last = tree.body[-1] if tree.body else None
                if isinstance(last, ast.Expr):
                    tree.body.pop()
                exec(compile(tree, "<cell>", "exec"), self.namespace)
                if isinstance(last, ast.Expr):
                    value = eval(compile(ast.Expression(last.value), "<cell>", "eval"),
                                 self.namespace)
                    if value is not None:
                        execution.results.append(
                            e2b_models.Result(text=repr(value), is_main_result=True))
        except BaseException as exc:
            execution.error = e2b_models.ExecutionError(
                type(exc).__name__, str(exc), "".join(traceback.format_exception(exc)))
        finally:
            if out.getvalue():
                execution.logs.stdout.append(out.getvalue())
                if on_stdout is not None:
                    on_stdout(e2b_models.OutputMessage(out.getvalue(), 0, False))
        return execution


class AsyncFakeSandbox:
    def __init__(self, inner: FakeSandbox) -> None:
        self.inner = inner
        self.sandbox_id = inner.sandbox_id

    @classmethod
    async def create(cls, **options: Any) -> AsyncFakeSandbox:
        return cls(FakeSandbox.create(**options))

    async def run_code(self, code: str, **kwargs: Any) -> Any:
        return self.inner.run_code(code, **kwargs)

    async def kill(self) -> None:
        self.inner.kill()


@pytest.fixture
def fake_sdk(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    FakeSandbox.created = []
    sdk = types.SimpleNamespace(Sandbox=FakeSandbox, AsyncSandbox=AsyncFakeSandbox)
    monkeypatch.setattr(e2b_backend, "_sdk", lambda: sdk)
    return sdk


def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper() + "!"


def logged(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)
    return wrapper


@logged
def decorated_square(x: int) -> int:
    import math
    return int(math.pow(x, 2))


# -- the executor over the fake SDK ---------------------------------------------------------------
def test_run_maps_output_results_and_errors(fake_sdk: Any) -> None:
    chunks: list[str] = []
    with E2BExecutor(api_key="k", api_url="http://api", sandbox_url="http://sb",
                     timeout_s=120, on_stdout=chunks.append) as ex:
        execution = ex.run("x = 2\nprint('hi')\nx * 21")
        assert execution.ok and execution.stdout == "hi\n" and execution.text == "42"
        assert chunks == ["hi\n"]
        failed = ex.run("1 / 0")
        assert failed.status == "error" and failed.error is not None
        assert failed.error.name == "ZeroDivisionError" and "division" in failed.error.value
    assert FakeSandbox.created == [{"api_key": "k", "api_url": "http://api",
                                    "sandbox_url": "http://sb", "timeout": 120}]


def test_final_answer_is_authenticated_by_the_nonce(fake_sdk: Any) -> None:
    with E2BExecutor() as ex:
        answer = ex.run("print('x')\nfinal_answer({'v': [1, 2]})\nprint('not reached')")
        assert answer.is_final_answer and answer.final_answer == {"v": [1, 2]}
        assert answer.ok and answer.error is None and answer.stdout == "x\n"
        # Not JSON: the repr crosses, never a pickle.
        odd = ex.run("final_answer(object)")
        assert odd.is_final_answer and odd.final_answer == "<class 'object'>"
        # Forgeries: an exception named like smolagents' or like ours, without the nonce.
        forged = ex.run(
            "class FinalAnswerException(Exception): pass\n"
            "raise FinalAnswerException('pwned')")
        assert not forged.is_final_answer and forged.error is not None
        assert forged.error.name == "FinalAnswerException"
        forged2 = ex.run(
            "class _SelfboxFinalAnswer(BaseException): pass\n"
            "import json\n"
            "raise _SelfboxFinalAnswer(json.dumps({'nonce': 'guess', 'value': 'pwned'}))")
        assert not forged2.is_final_answer and forged2.status == "error"


def test_tools_are_shipped_as_source(fake_sdk: Any) -> None:
    with E2BExecutor(tools={"shout": shout}) as ex:
        assert ex.run("shout('hey')").text == "'HEY!'"
        ex.send_tools({"square": decorated_square})
        assert ex.run("square(7)").text == "49"
        assert ex.run("shout.__doc__").text == "'Upper-case the text.'"
        with pytest.raises(ConfigurationError):
            ex.send_tools({"final_answer": shout})
        with pytest.raises(ToolError, match="plain function"):
            ex.send_tools({"p": print})


def test_send_variables_as_json(fake_sdk: Any) -> None:
    with E2BExecutor() as ex:
        ex.send_variables({"data": {"a": [1, 2]}, "quote": "it's \"x\"\n"})
        assert ex.run("data['a'][1], quote").text == "(2, 'it\\'s \"x\"\\n')"
        with pytest.raises(ConfigurationError, match="JSON"):
            ex.send_variables({"bad": object()})
        cells = "".join(ex._sandbox.cells)  # the wire form: JSON text, decoded in the sandbox
        assert "pickle" not in cells and "json" in cells


def test_timeout(fake_sdk: Any) -> None:
    with E2BExecutor(execution_timeout_s=5) as ex:
        ex.run("kept = 1")
        execution = ex.run("while True: pass", timeout_s=0.1)
        assert execution.status == "timeout" and execution.error is not None
        assert execution.error.name == "TimeoutError"
        assert ex.run("kept").text == "1"


def test_deadline_for_chatty_code(fake_sdk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with E2BExecutor() as ex:
        ex.run("1")
        real = ex._sandbox.run_code

        def chatty(code: str, **kwargs: Any) -> Any:
            time.sleep(0.05)
            return real(code, **kwargs)

        monkeypatch.setattr(ex._sandbox, "run_code", chatty)
        execution = ex.run("print('tick')", timeout_s=0.01)
        assert execution.status == "timeout" and execution.stdout == "tick\n"


def test_close_kills_and_is_idempotent(fake_sdk: Any) -> None:
    ex = create_executor("e2b")
    ex.run("1")
    sandbox = ex._sandbox  # type: ignore[attr-defined]
    ex.close()
    ex.close()
    assert sandbox.killed and ex.closed
    with pytest.raises(ExecutorClosedError):
        ex.run("1")


def test_errors_are_translated(fake_sdk: Any) -> None:
    with pytest.raises(AuthenticationError) as info, E2BExecutor(api_key="bad") as ex:
        ex.run("1")
    assert isinstance(info.value.__cause__, e2b_errors.AuthenticationException)
    ex = E2BExecutor()
    ex.run("1")
    ex._sandbox.kill()
    with pytest.raises(SandboxGoneError):
        ex.run("1")
    ex.close()


def test_async_executor(fake_sdk: Any) -> None:
    async def scenario() -> None:
        async with create_async_executor("e2b", tools={"shout": shout}) as ex:
            await ex.send_variables({"w": "abc"})
            assert (await ex.run("shout(w)")).text == "'ABC!'"
            answer = await ex.run("final_answer(3)")
            assert answer.is_final_answer and answer.final_answer == 3
            assert (await ex.run("while True: pass", timeout_s=0.1)).status == "timeout"
        with pytest.raises(ExecutorClosedError):
            await ex.run("1")

    asyncio.run(scenario())


def test_missing_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def no_e2b(name: str, *args: Any) -> Any:
        if name.startswith("e2b"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_e2b)
    with pytest.raises(MissingDependencyError, match=r"pip install 'selfbox\[e2b\]'"):
        E2BExecutor()


# -- the I/O-free helpers -----------------------------------------------------------------------
def test_map_result_uses_mime_keys() -> None:
    result = e2b_models.Result(text="fig", png="iVBOR", html="<b>", json={"a": 1},
                               is_main_result=False, extra={"application/x-custom": "c"})
    ours = map_result(result)
    assert ours.data == {"text/plain": "fig", "image/png": "iVBOR", "text/html": "<b>",
                         "application/json": {"a": 1}, "application/x-custom": "c"}
    assert not ours.is_main_result and ours.png == "iVBOR"


def test_map_execution_joins_logs() -> None:
    execution = e2b_models.Execution(
        logs=e2b_models.Logs(stdout=["a\n", "b\n"], stderr=["w\n"]), execution_count=3,
        error=e2b_models.ExecutionError("KeyError", "'k'", "Traceback ...\nKeyError: 'k'"))
    ours = map_execution(execution, nonce="n")
    assert ours.stdout == "a\nb\n" and ours.stderr == "w\n" and ours.execution_count == 3
    assert ours.status == "error" and ours.error is not None and ours.error.name == "KeyError"


def test_bootstrap_final_answer_round_trip() -> None:
    namespace: dict[str, Any] = {}
    exec(bootstrap_code("s3cret"), namespace)
    assert "s3cret" not in repr({k: v for k, v in namespace.items() if k != "__builtins__"})
    with pytest.raises(BaseException) as info:
        namespace["final_answer"]([1, "two"])
    error = e2b_models.ExecutionError(type(info.value).__name__, str(info.value), "")
    assert parse_final_answer(error, "s3cret") == (True, [1, "two"])
    assert parse_final_answer(error, "other") == (False, None)


def test_tool_source_validation() -> None:
    assert "@" not in tool_source("sq", decorated_square)
    assert tool_source("loud", shout).endswith("loud = shout\n")
    factor = 3

    def closure(x: int) -> int:
        return x * factor

    with pytest.raises(ToolError, match="closure"):
        tool_source("closure", closure)
    with pytest.raises(ToolError):
        tool_source("lam", lambda x: x)

    async def coro() -> None:
        return None

    with pytest.raises(ToolError, match="coroutine"):
        tool_source("coro", coro)


def test_variables_code_round_trip() -> None:
    namespace: dict[str, Any] = {}
    exec(variables_code({"a": "'''\"", "b": [None, 1.5]}), namespace)
    assert namespace["a"] == "'''\"" and namespace["b"] == [None, 1.5]


@pytest.mark.parametrize(
    ("exc", "ours"),
    [
        (e2b_errors.AuthenticationException("bad key"), AuthenticationError),
        (e2b_errors.RateLimitException("slow down"), RateLimitError),
        (e2b_errors.SandboxNotRunningException("gone"), SandboxGoneError),
        (e2b_errors.SandboxUnreachableException("net"), SandboxConnectionError),
        (e2b_errors.TimeoutException("The sandbox was killed while ..."), SandboxGoneError),
        (e2b_errors.TimeoutException("Request timed out"), SandboxConnectionError),
        (e2b_errors.InvalidArgumentException("bad"), InvalidRequestError),
        (e2b_errors.NotFoundException("nope"), SandboxNotFoundError),
        (e2b_errors.SandboxException("410 Gone: expired"), SandboxGoneError),
        (e2b_errors.SandboxException("boom", status_code=500), ServerError),
        (e2b_errors.SandboxException("limit", status_code=422), InvalidRequestError),
        (ConnectionRefusedError("refused"), SandboxConnectionError),
        (RuntimeError("??"), ServerError),
    ],
)
def test_translate_error(exc: Exception, ours: type[Exception]) -> None:
    translated = translate_error(exc, "doing")
    assert type(translated) is ours and "doing" in str(translated)
