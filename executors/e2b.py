"""The ``e2b`` back end: E2B's cloud sandboxes (or any E2B-compatible API, such as selfbox's own)
through the official ``e2b-code-interpreter`` SDK.

    from executors.e2b import E2BExecutor
    with E2BExecutor(api_key="e2b_...") as ex:
        print(ex.run("1 + 1").text)

The SDK is imported when an executor is created (``pip install 'selfbox[e2b]'``); a missing SDK
raises :class:`~executors.exceptions.MissingDependencyError`.

How the protocol maps onto E2B:

- Results: E2B's ``Result`` fields (``text``, ``html``, ``png``, ``json``, ...) become MIME keys;
  ``execution.error`` becomes :class:`~executors.ExecutionError`; the stdout/stderr chunk lists
  are joined; an execution that runs past ``timeout_s`` has status ``"timeout"``. One E2B
  quirk stays visible: E2B's server strips the quotes of a ``str`` value's repr, so the
  ``text/plain`` of a last expression ``'v'`` is ``v`` here (``'v'`` on the other back ends).
- Tools: the sandbox cannot call back into the host, so tools must be *self-contained* plain
  functions (imports inside the body, no closures): their source is shipped and defined in the
  sandbox under the tool's name.
- ``final_answer``: defined in the sandbox at start. It raises an exception that carries the
  JSON-encoded answer and a per-executor random nonce; the host takes an error as the final
  answer only if the class name and the nonce match, so code that raises its own
  ``FinalAnswerException`` (or any other forgery without the nonce) is just an error.
- Variables: JSON-encoded and decoded in the sandbox. Nothing is ever pickled.
"""

from __future__ import annotations

import ast
import contextlib
import hmac
import importlib
import inspect
import json
import re
import secrets
import textwrap
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from ._remote import TextCallback, check_json, execute_body
from .base import AsyncExecutor, Executor, Tool, validate_tools, validate_variables
from .exceptions import (
    AuthenticationError,
    InvalidRequestError,
    MissingDependencyError,
    RateLimitError,
    SandboxConnectionError,
    SandboxError,
    SandboxGoneError,
    SandboxNotFoundError,
    ServerError,
    ToolError,
    exception_for_status,
)
from .models import _SHORT_NAMES, Execution, ExecutionError, Result

__all__ = [
    "AsyncE2BExecutor",
    "E2BExecutor",
    "bootstrap_code",
    "map_execution",
    "map_result",
    "tool_source",
    "translate_error",
    "variables_code",
]

FINAL_ANSWER_CLASS = "_SelfboxFinalAnswer"
_EXTRA_MIME = {"data": "application/vnd.dataresource+json"}


def _sdk() -> ModuleType:
    try:
        return importlib.import_module("e2b_code_interpreter")
    except ImportError as exc:
        raise MissingDependencyError(
            "the e2b executor needs the E2B SDK (e2b-code-interpreter); install it with: "
            "pip install 'selfbox[e2b]'"
        ) from exc


# -- code shipped into the sandbox (I/O-free) ------------------------------------------------------
def bootstrap_code(nonce: str) -> str:
    """Defines ``final_answer`` in the sandbox; the nonce lives only in a closure."""
    return textwrap.dedent(
        f"""\
        def _selfbox_setup(nonce):
            import json

            class {FINAL_ANSWER_CLASS}(BaseException):
                pass

            def final_answer(answer):
                \"\"\"Finish the task with ``answer`` as the final answer.\"\"\"
                try:
                    payload = json.dumps({{"nonce": nonce, "value": answer}}, allow_nan=False)
                except (TypeError, ValueError):
                    payload = json.dumps({{"nonce": nonce, "value": repr(answer)}})
                raise {FINAL_ANSWER_CLASS}(payload)

            return final_answer

        final_answer = _selfbox_setup({nonce!r})
        del _selfbox_setup
        """
    )


def tool_source(name: str, tool: Tool) -> str:
    """The source that defines ``tool`` as ``name`` in the sandbox.

    Only plain, self-contained functions qualify: source available, no closure variables (a
    closure's values would not cross); decorators are stripped (``functools.wraps`` wrappers
    are unwrapped to the original function).
    """
    tool = inspect.unwrap(tool) if inspect.isfunction(tool) else tool
    if not inspect.isfunction(tool):
        raise ToolError(f"tool {name!r} must be a plain function to be shipped to an e2b "
                        f"sandbox, not a {type(tool).__name__}")
    if tool.__code__.co_freevars:
        raise ToolError(f"tool {name!r} is a closure over {', '.join(tool.__code__.co_freevars)};"
                        " e2b tools must be self-contained (imports inside the body)")
    try:
        source = textwrap.dedent(inspect.getsource(tool))
    except (OSError, TypeError) as exc:
        raise ToolError(f"the source of tool {name!r} is not available: {exc}") from exc
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ToolError(f"the source of tool {name!r} does not parse on its own "
                        "(a lambda?); define it with def") from exc
    functions = [node for node in tree.body
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if len(tree.body) != 1 or len(functions) != 1:
        raise ToolError(f"the source of tool {name!r} is not one function definition "
                        "(a lambda?); define it with def")
    function = functions[0]
    if isinstance(function, ast.AsyncFunctionDef):
        raise ToolError(f"tool {name!r} is a coroutine function; e2b tools must be plain functions")
    function.decorator_list = []
    code = ast.unparse(tree)
    if function.name != name:
        code += f"\n{name} = {function.name}"
    return code + "\n"


def variables_code(variables: Mapping[str, Any]) -> str:
    """Code that defines JSON ``variables`` in the sandbox (a JSON string literal, decoded)."""
    payload = json.dumps(dict(variables), allow_nan=False)
    return f"globals().update(__import__('json').loads({payload!r}))\n"


# -- mapping E2B's objects to ours (I/O-free) --------------------------------------------------
def map_result(result: Any) -> Result:
    """E2B ``Result`` (short-named fields) -> our MIME bundle."""
    data: dict[str, Any] = {}
    for short, mime in _SHORT_NAMES.items():
        value = getattr(result, short, None)
        if value is not None:
            data[mime] = value
    for short, mime in _EXTRA_MIME.items():
        value = getattr(result, short, None)
        if value is not None:
            data[mime] = value
    extra = getattr(result, "extra", None)
    if isinstance(extra, dict):
        for key, value in extra.items():
            data.setdefault(str(key), value)
    return Result(data, bool(getattr(result, "is_main_result", False)))


def parse_final_answer(error: Any, nonce: str) -> tuple[bool, Any]:
    """``(True, value)`` if ``error`` is our ``final_answer``'s, authenticated by ``nonce``."""
    if error is None or getattr(error, "name", None) != FINAL_ANSWER_CLASS:
        return False, None
    try:
        payload = json.loads(str(getattr(error, "value", "")))
    except ValueError:
        return False, None
    if not isinstance(payload, dict) or "value" not in payload:
        return False, None
    given = payload.get("nonce")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), nonce.encode()):
        return False, None
    return True, payload["value"]


def map_execution(execution: Any, *, nonce: str, duration_s: float = 0.0) -> Execution:
    """E2B ``Execution`` -> our :class:`~executors.Execution`."""
    logs = getattr(execution, "logs", None)
    stdout = "".join(str(chunk) for chunk in getattr(logs, "stdout", None) or [])
    stderr = "".join(str(chunk) for chunk in getattr(logs, "stderr", None) or [])
    results = [map_result(r) for r in getattr(execution, "results", None) or []]
    error = getattr(execution, "error", None)
    ours = Execution(stdout=stdout, stderr=stderr, results=results,
                     duration_s=round(duration_s, 6),
                     execution_count=getattr(execution, "execution_count", None))
    is_final, value = parse_final_answer(error, nonce)
    if is_final:
        ours.is_final_answer = True
        ours.final_answer = value
    elif error is not None:
        ours.error = ExecutionError(str(getattr(error, "name", "Error")),
                                    str(getattr(error, "value", "")),
                                    str(getattr(error, "traceback", "") or ""))
        ours.status = "error"
    return ours


def timeout_execution(timeout_s: float | None, stdout: list[str], stderr: list[str],
                      duration_s: float) -> Execution:
    limit = "" if timeout_s is None else f"timeout_s={timeout_s:g}"
    return Execution(
        stdout="".join(stdout), stderr="".join(stderr), status="timeout",
        error=ExecutionError("TimeoutError", f"execution exceeded {limit or 'its timeout'}"),
        duration_s=round(duration_s, 6),
    )


def translate_error(exc: BaseException, action: str) -> SandboxError:
    """An E2B SDK (or ``httpx``) exception -> ours. Callers chain it with ``from``."""
    import httpx  # a dependency of the SDK and of selfbox

    errors = importlib.import_module("e2b.exceptions")
    text = f"{action}: {type(exc).__name__}: {exc}"
    if isinstance(exc, SandboxError):
        return exc
    if isinstance(exc, errors.AuthenticationException):
        return AuthenticationError(text)
    if isinstance(exc, errors.RateLimitException):
        return RateLimitError(text)
    if isinstance(exc, errors.SandboxNotRunningException):
        return SandboxGoneError(text)
    if isinstance(exc, errors.SandboxUnreachableException):
        return SandboxConnectionError(text)
    if isinstance(exc, errors.TimeoutException):
        if "killed" in str(exc) or "sandbox timeout" in str(exc):
            return SandboxGoneError(text)
        return SandboxConnectionError(text)
    if isinstance(exc, errors.InvalidArgumentException):
        return InvalidRequestError(text)
    if isinstance(exc, errors.NotFoundException):
        return SandboxNotFoundError(text)
    if isinstance(exc, errors.SandboxException):
        status = exc.status_code
        if status is None:
            match = re.match(r"(\d{3})\b", str(exc))
            status = int(match.group(1)) if match else None
        if status is not None:
            return exception_for_status(status)(text, status=status)
        return ServerError(text)
    if isinstance(exc, (httpx.TransportError, ConnectionError)):
        return SandboxConnectionError(text)
    return ServerError(text)


class _Deadline(Exception):
    """Raised from an output callback once the execution's time is up (drops the stream)."""


class _E2BCommon:
    executor_type = "e2b"

    def _configure(
        self,
        template: str | None,
        timeout_s: float | None,
        execution_timeout_s: float | None,
        metadata: Mapping[str, str] | None,
        envs: Mapping[str, str] | None,
        api_key: str | None,
        api_url: str | None,
        sandbox_url: str | None,
        domain: str | None,
        request_timeout_s: float | None,
        on_stdout: TextCallback | None,
        on_stderr: TextCallback | None,
        sandbox_options: Mapping[str, Any] | None,
    ) -> None:
        self._sdk = _sdk()
        self.execution_timeout_s = execution_timeout_s
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self._nonce = secrets.token_hex(16)
        self._tools: dict[str, Tool] = {}
        self._sandbox: Any = None
        options: dict[str, Any] = dict(sandbox_options or {})
        for key, value in (
            ("template", template), ("timeout", None if timeout_s is None else int(timeout_s)),
            ("metadata", dict(metadata) if metadata else None),
            ("envs", dict(envs) if envs else None), ("api_key", api_key),
            ("api_url", api_url), ("sandbox_url", sandbox_url), ("domain", domain),
            ("request_timeout", request_timeout_s),
        ):
            if value is not None:
                options[key] = value
        self._create_options = options

    @property
    def sandbox_id(self) -> str | None:
        return None if self._sandbox is None else str(self._sandbox.sandbox_id)

    def _timeout_for(self, code: str, timeout_s: float | None) -> float | None:
        timeout = self.execution_timeout_s if timeout_s is None else timeout_s
        execute_body(code, timeout)  # the same argument checks as the docker back end
        return timeout

    def _handlers(self, timeout_s: float | None, stdout: list[str],
                  stderr: list[str]) -> dict[str, Callable[[Any], None]]:
        """Output callbacks that forward the text and end the run once its time is up: E2B
        bounds a run only by the silence between two events, so chatty code needs this."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def check() -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise _Deadline

        def handler(chunks: list[str], forward: TextCallback | None) -> Callable[[Any], None]:
            def on_output(message: Any) -> None:
                text = str(getattr(message, "line", message))
                chunks.append(text)
                if forward is not None:
                    forward(text)
                check()
            return on_output

        return {"on_stdout": handler(stdout, self.on_stdout),
                "on_stderr": handler(stderr, self.on_stderr),
                "on_result": lambda _result: check()}

    def _prepare_tools(self, tools: Mapping[str, Tool]) -> str:
        checked = validate_tools(tools)
        sources = [tool_source(name, tool) for name, tool in checked.items()]
        self._tools.update(checked)
        return "\n".join(sources)

    @staticmethod
    def _prepare_variables(variables: Mapping[str, Any]) -> str:
        checked = validate_variables(variables)
        check_json(checked, "variable")
        return variables_code(checked)

    @staticmethod
    def _check_setup(execution: Any, what: str, error_class: type[SandboxError]) -> None:
        error = getattr(execution, "error", None)
        if error is not None:
            raise error_class(f"{what} failed in the sandbox: {error.name}: {error.value}")

    def _is_timeout(self, exc: BaseException) -> bool:
        timeout_class = importlib.import_module("e2b.exceptions").TimeoutException
        return isinstance(exc, _Deadline) or (
            isinstance(exc, timeout_class) and str(exc).startswith("Execution timed out"))


class E2BExecutor(_E2BCommon, Executor):
    """Runs code in an E2B sandbox (created on first use, killed on :meth:`close`).

    Args:
        template: the E2B template (default: the code interpreter's).
        timeout_s: the sandbox's lifetime, seconds.
        execution_timeout_s: the default ``timeout_s`` of :meth:`run`.
        metadata, envs: the sandbox's metadata and environment variables.
        api_key, api_url, sandbox_url, domain: forwarded to ``Sandbox.create`` (defaults: the
            ``E2B_API_KEY``, ``E2B_API_URL``, ``E2B_SANDBOX_URL``, ``E2B_DOMAIN`` variables).
        request_timeout_s: the SDK's per-request timeout.
        on_stdout, on_stderr: called with each output chunk as it arrives.
        tools: self-contained functions to define at once (see :meth:`send_tools`).
        sandbox_options: more keyword arguments for ``Sandbox.create``.
    """

    def __init__(
        self,
        *,
        template: str | None = None,
        timeout_s: float | None = None,
        execution_timeout_s: float | None = None,
        metadata: Mapping[str, str] | None = None,
        envs: Mapping[str, str] | None = None,
        api_key: str | None = None,
        api_url: str | None = None,
        sandbox_url: str | None = None,
        domain: str | None = None,
        request_timeout_s: float | None = None,
        on_stdout: TextCallback | None = None,
        on_stderr: TextCallback | None = None,
        tools: Mapping[str, Tool] | None = None,
        sandbox_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._configure(template, timeout_s, execution_timeout_s, metadata, envs, api_key,
                        api_url, sandbox_url, domain, request_timeout_s, on_stdout, on_stderr,
                        sandbox_options)
        self._pending_tools = self._prepare_tools(tools) if tools else ""

    def _ensure_sandbox(self) -> Any:
        self._check_open()
        if self._sandbox is None:
            try:
                self._sandbox = self._sdk.Sandbox.create(**self._create_options)
            except Exception as exc:
                raise translate_error(exc, "creating an e2b sandbox") from exc
            self._setup(bootstrap_code(self._nonce), "defining final_answer", ServerError)
            if self._pending_tools:
                self._setup(self._pending_tools, "defining tools", ToolError)
                self._pending_tools = ""
        return self._sandbox

    def _setup(self, code: str, what: str, error_class: type[SandboxError]) -> None:
        try:
            execution = self._sandbox.run_code(code)
        except Exception as exc:
            raise translate_error(exc, what) from exc
        self._check_setup(execution, what, error_class)

    def run(self, code: str, *, timeout_s: float | None = None) -> Execution:
        self._check_open()
        timeout = self._timeout_for(code, timeout_s)
        sandbox = self._ensure_sandbox()
        stdout: list[str] = []
        stderr: list[str] = []
        started = time.monotonic()
        try:
            execution = sandbox.run_code(code, timeout=timeout,
                                         **self._handlers(timeout, stdout, stderr))
        except Exception as exc:
            if self._is_timeout(exc):
                return timeout_execution(timeout, stdout, stderr, time.monotonic() - started)
            raise translate_error(exc, "running code") from exc
        return map_execution(execution, nonce=self._nonce, duration_s=time.monotonic() - started)

    def send_tools(self, tools: Mapping[str, Tool]) -> None:
        """Define self-contained functions in the sandbox under the given names."""
        self._check_open()
        source = self._prepare_tools(tools)
        if self._sandbox is None:
            self._pending_tools += source
            self._ensure_sandbox()
        elif source:
            self._setup(source, "defining tools", ToolError)

    def send_variables(self, variables: Mapping[str, Any]) -> None:
        """Define JSON-able variables in the sandbox."""
        self._check_open()
        code = self._prepare_variables(variables)
        self._ensure_sandbox()
        self._setup(code, "defining variables", InvalidRequestError)

    def close(self) -> None:
        """Kill the sandbox. Idempotent."""
        if self._closed:
            return
        self._closed = True
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            with contextlib.suppress(Exception):  # it ends by itself at its lifetime
                sandbox.kill()

    def __repr__(self) -> str:
        return f"E2BExecutor(sandbox_id={self.sandbox_id!r})"


class AsyncE2BExecutor(_E2BCommon, AsyncExecutor):
    """The async twin of :class:`E2BExecutor` (same arguments), over ``AsyncSandbox``."""

    def __init__(
        self,
        *,
        template: str | None = None,
        timeout_s: float | None = None,
        execution_timeout_s: float | None = None,
        metadata: Mapping[str, str] | None = None,
        envs: Mapping[str, str] | None = None,
        api_key: str | None = None,
        api_url: str | None = None,
        sandbox_url: str | None = None,
        domain: str | None = None,
        request_timeout_s: float | None = None,
        on_stdout: TextCallback | None = None,
        on_stderr: TextCallback | None = None,
        tools: Mapping[str, Tool] | None = None,
        sandbox_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._configure(template, timeout_s, execution_timeout_s, metadata, envs, api_key,
                        api_url, sandbox_url, domain, request_timeout_s, on_stdout, on_stderr,
                        sandbox_options)
        self._pending_tools = self._prepare_tools(tools) if tools else ""

    async def _ensure_sandbox(self) -> Any:
        self._check_open()
        if self._sandbox is None:
            try:
                self._sandbox = await self._sdk.AsyncSandbox.create(**self._create_options)
            except Exception as exc:
                raise translate_error(exc, "creating an e2b sandbox") from exc
            await self._setup(bootstrap_code(self._nonce), "defining final_answer", ServerError)
            if self._pending_tools:
                await self._setup(self._pending_tools, "defining tools", ToolError)
                self._pending_tools = ""
        return self._sandbox

    async def _setup(self, code: str, what: str, error_class: type[SandboxError]) -> None:
        try:
            execution = await self._sandbox.run_code(code)
        except Exception as exc:
            raise translate_error(exc, what) from exc
        self._check_setup(execution, what, error_class)

    async def run(self, code: str, *, timeout_s: float | None = None) -> Execution:
        self._check_open()
        timeout = self._timeout_for(code, timeout_s)
        sandbox = await self._ensure_sandbox()
        stdout: list[str] = []
        stderr: list[str] = []
        started = time.monotonic()
        try:
            execution = await sandbox.run_code(code, timeout=timeout,
                                               **self._handlers(timeout, stdout, stderr))
        except Exception as exc:
            if self._is_timeout(exc):
                return timeout_execution(timeout, stdout, stderr, time.monotonic() - started)
            raise translate_error(exc, "running code") from exc
        return map_execution(execution, nonce=self._nonce, duration_s=time.monotonic() - started)

    async def send_tools(self, tools: Mapping[str, Tool]) -> None:
        self._check_open()
        source = self._prepare_tools(tools)
        if self._sandbox is None:
            self._pending_tools += source
            await self._ensure_sandbox()
        elif source:
            await self._setup(source, "defining tools", ToolError)

    async def send_variables(self, variables: Mapping[str, Any]) -> None:
        self._check_open()
        code = self._prepare_variables(variables)
        await self._ensure_sandbox()
        await self._setup(code, "defining variables", InvalidRequestError)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            with contextlib.suppress(Exception):
                await sandbox.kill()

    def __repr__(self) -> str:
        return f"AsyncE2BExecutor(sandbox_id={self.sandbox_id!r})"
