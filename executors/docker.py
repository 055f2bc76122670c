"""The ``docker`` back end: a client of the selfbox sandbox server (``selfbox serve``).

    from executors.docker import DockerExecutor
    with DockerExecutor("http://127.0.0.1:8000", "my-key", memory_mb=512) as ex:
        ex.send_tools({"add": lambda a, b: a + b})
        print(ex.run("add(1, 2)").text)         # '3': the host ran ``add``

The sandbox is created on first use and killed by :meth:`DockerExecutor.close`. Code runs through
the streaming endpoint; its output reaches the optional callbacks as it is printed, and calls of
host tools from the code are answered by calling the registered callables on the host (values
cross as JSON, never as pickles). :class:`AsyncDockerExecutor` is the same over ``httpx``'s async
client; the two share every I/O-free part (:mod:`executors._remote`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Mapping
from typing import Any

import httpx

from ._remote import (
    Callbacks,
    EventCallback,
    EventFolder,
    SandboxSpec,
    TextCallback,
    ToolCall,
    check_json,
    error_for_status,
    execute_body,
    resolve_setting,
    tool_error_reply,
    tool_value_reply,
)
from .base import AsyncExecutor, Executor, Tool, validate_tools, validate_variables
from .exceptions import SandboxConnectionError, SandboxError, SandboxNotFoundError, ServerError
from .models import Execution

__all__ = ["AsyncDockerExecutor", "DockerExecutor"]

# After a broken stream: how long to wait for a (restarted) server to tell the result. A
# restart must be back within the sandbox's orphan grace (60 s by default) anyway.
RECOVER_WINDOW_S = 180.0
RECOVER_POLL_S = 1.0
_RETRY_STATUSES = (409, 502, 503, 504)
# A 404 is final after this long (a busy sandbox is adopted a little after the server starts;
# a run that no restart cut off, e.g. a dropped connection to a live server, is never known).
NOT_FOUND_GRACE_S = 10.0


class _Recovery:
    """What sync and async share when a stream broke mid-run and the next server is asked
    for the execution's result: which answers are final, and when to give up (no I/O)."""

    def __init__(self, cause: BaseException | None) -> None:
        self.cause = cause
        self.deadline = time.monotonic() + RECOVER_WINDOW_S
        self._first_404 = 0.0

    def final(self, status: int) -> bool:
        """Whether an answer other than 200 is final (checked as an error) or worth a retry;
        a 404 is retried for NOT_FOUND_GRACE_S (the new server may still be adopting)."""
        if status == 404:
            self._first_404 = self._first_404 or time.monotonic()
        return status not in _RETRY_STATUSES and not (
            self._first_404 and time.monotonic() - self._first_404 < NOT_FOUND_GRACE_S)

    def give_up_when_late(self) -> None:
        if time.monotonic() > self.deadline:
            raise SandboxConnectionError(
                f"the execution stream broke and no server answered for it within "
                f"{RECOVER_WINDOW_S:g} s: {self.cause}")


URL_ENV = "SELFBOX_URL"
KEY_ENV = "SELFBOX_API_KEY"


class _DockerCommon:
    """Configuration and the I/O-free parts of both clients."""

    executor_type = "docker"

    def _configure(
        self,
        base_url: str | None,
        api_key: str | None,
        spec: SandboxSpec,
        execution_timeout_s: float | None,
        callbacks: Callbacks,
        request_timeout_s: float,
    ) -> None:
        self.base_url = resolve_setting(base_url, URL_ENV, "base url").rstrip("/")
        self._api_key = resolve_setting(api_key, KEY_ENV, "api key")
        self.spec = spec
        self.execution_timeout_s = execution_timeout_s
        self.callbacks = callbacks
        self.sandbox_id: str | None = None
        self._tools: dict[str, Tool] = {}
        # Reads wait at most this long between two events; the server sends a keepalive
        # every few seconds while code runs, so this bounds only a silent, broken server.
        self._timeout = httpx.Timeout(request_timeout_s, connect=min(request_timeout_s, 10.0))

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "User-Agent": "selfbox-executors"}

    def _path(self, suffix: str = "") -> str:
        assert self.sandbox_id is not None
        return f"/v1/sandboxes/{self.sandbox_id}{suffix}"

    def _created(self, response: httpx.Response) -> None:
        try:
            sandbox_id = response.json()["id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerError(f"malformed answer to sandbox creation: {response.text[:200]}") \
                from exc
        if not isinstance(sandbox_id, str) or not sandbox_id:
            raise ServerError(f"malformed sandbox id in {response.text[:200]}")
        self.sandbox_id = sandbox_id

    def _tools_body(self) -> dict[str, Any]:
        return {
            "tools": [
                {"name": name, "description": (inspect.getdoc(tool) or "")[:10_000]}
                for name, tool in self._tools.items()
            ]
        }

    @staticmethod
    def _variables_body(variables: Mapping[str, Any]) -> dict[str, Any]:
        checked = validate_variables(variables)
        check_json(checked, "variable")
        return {"variables": checked, "context": "default"}

    def _register(self, tools: Mapping[str, Tool]) -> None:
        self._tools.update(validate_tools(tools))

    def _timeout_for(self, timeout_s: float | None) -> float | None:
        return self.execution_timeout_s if timeout_s is None else timeout_s


def _connection_error(exc: httpx.HTTPError, action: str) -> SandboxError:
    if isinstance(exc, httpx.TimeoutException):
        return SandboxConnectionError(f"{action}: the sandbox server did not answer in time "
                                      f"({type(exc).__name__})")
    return SandboxConnectionError(f"{action}: cannot reach the sandbox server ({exc!r})")


def _check(response: httpx.Response, action: str) -> None:
    if response.status_code >= 400:
        response.read()
        raise error_for_status(response.status_code, response.content, action=action)


async def _acheck(response: httpx.Response, action: str) -> None:
    if response.status_code >= 400:
        await response.aread()
        raise error_for_status(response.status_code, response.content, action=action)


class DockerExecutor(_DockerCommon, Executor):
    """Runs code in a selfbox Docker sandbox, through the selfbox server's HTTP API.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8000`` (default: ``$SELFBOX_URL``).
        api_key: a key from the server's ``SELFBOX_API_KEYS`` (default: ``$SELFBOX_API_KEY``).
        template, cpu, memory_mb, pids, disk_mb, network, env, metadata: the sandbox's image
            and limits (``None``: the server's defaults).
        timeout_s: the sandbox's lifetime, seconds.
        execution_timeout_s: the default ``timeout_s`` of :meth:`run`.
        on_event, on_stdout, on_stderr: called with each stream event / output chunk.
        tools: host callables to register at once (see :meth:`send_tools`).
        request_timeout_s: the HTTP timeout (between two events of a run).
        transport: an ``httpx`` transport (tests).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        template: str | None = None,
        cpu: float | None = None,
        memory_mb: int | None = None,
        pids: int | None = None,
        disk_mb: int | None = None,
        timeout_s: float | None = None,
        network: str | None = None,
        env: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        execution_timeout_s: float | None = None,
        on_event: EventCallback | None = None,
        on_stdout: TextCallback | None = None,
        on_stderr: TextCallback | None = None,
        tools: Mapping[str, Tool] | None = None,
        request_timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        spec = SandboxSpec(template, cpu, memory_mb, pids, disk_mb, timeout_s, network,
                           dict(env or {}), dict(metadata or {}))
        self._configure(base_url, api_key, spec, execution_timeout_s,
                        Callbacks(on_event, on_stdout, on_stderr), request_timeout_s)
        self._register(tools or {})
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers(),
                                  timeout=self._timeout, transport=transport)

    # -- plumbing -------------------------------------------------------------------------
    def _request(self, method: str, url: str, action: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise _connection_error(exc, action) from exc
        _check(response, action)
        return response

    def _ensure_sandbox(self) -> str:
        self._check_open()
        if self.sandbox_id is None:
            response = self._request("POST", "/v1/sandboxes", "creating a sandbox",
                                     json=self.spec.body())
            self._created(response)
            if self._tools:
                self._push_tools()
        assert self.sandbox_id is not None
        return self.sandbox_id

    def _push_tools(self) -> None:
        self._request("PUT", self._path("/tools"), "sending tools", json=self._tools_body())

    # -- the protocol ---------------------------------------------------------------------
    def run(self, code: str, *, timeout_s: float | None = None) -> Execution:
        self._check_open()
        body = execute_body(code, self._timeout_for(timeout_s))
        self._ensure_sandbox()
        folder = EventFolder(self.callbacks)
        action = "running code"
        try:
            with self._http.stream("POST", self._path("/execute/stream"), json=body) as response:
                _check(response, action)
                for line in response.iter_lines():
                    call = folder.feed_line(line)
                    if call is not None:
                        self._answer(call)
                    if folder.done:
                        break
        except httpx.HTTPError as exc:
            if folder.execution_id is None:
                raise _connection_error(exc, action) from exc
            return self._recover(folder, exc)
        if not folder.done and folder.execution_id is not None:
            return self._recover(folder, None)
        return folder.result()

    def _recover(self, folder: EventFolder, cause: BaseException | None) -> Execution:
        """The stream broke mid-run (the server restarted): ask the next server for the
        result, ``status="interrupted"``; give up after RECOVER_WINDOW_S."""
        url = self._path(f"/executions/{folder.execution_id}")
        recovery = _Recovery(cause)
        while True:
            try:
                response = self._http.get(url, params={"wait_s": 30}, timeout=60)
            except httpx.HTTPError as exc:
                recovery.cause = exc
            else:
                if response.status_code == 200:
                    return folder.recovered(response.json())
                if recovery.final(response.status_code):
                    _check(response, "asking for an interrupted execution")
            recovery.give_up_when_late()
            time.sleep(RECOVER_POLL_S)

    def _answer(self, call: ToolCall) -> None:
        try:
            tool = call.lookup(self._tools)
            value = tool(*call.args, **call.kwargs)
            reply = tool_value_reply(call.name, value)
        except Exception as exc:
            reply = tool_error_reply(exc)
        # A call that is no longer pending (the run ended or timed out meanwhile) is refused
        # with 404; the stream still tells how the run ended, so keep reading it.
        with contextlib.suppress(SandboxNotFoundError):
            self._request("POST", self._path(f"/tool-calls/{call.call_id}"),
                          f"answering tool call {call.name!r}", json=reply)

    def send_tools(self, tools: Mapping[str, Tool]) -> None:
        """Register host callables; code in the sandbox calls them by name, with JSON
        arguments, and gets their JSON result (or a ``ToolCallError``)."""
        self._check_open()
        self._register(tools)
        if self.sandbox_id is None:
            self._ensure_sandbox()  # sends the tools
        else:
            self._push_tools()

    def send_variables(self, variables: Mapping[str, Any]) -> None:
        """Define JSON-able variables in the sandbox's namespace."""
        self._check_open()
        body = self._variables_body(variables)
        self._ensure_sandbox()
        self._request("PUT", self._path("/variables"), "sending variables", json=body)

    def close(self) -> None:
        """Kill the sandbox (if one was created) and close the HTTP client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.sandbox_id is not None:
                # Unreachable: the server's reaper ends the sandbox at its lifetime.
                with contextlib.suppress(httpx.HTTPError):
                    self._http.delete(self._path())
        finally:
            self._http.close()

    def __repr__(self) -> str:
        return f"DockerExecutor(base_url={self.base_url!r}, sandbox_id={self.sandbox_id!r})"


class AsyncDockerExecutor(_DockerCommon, AsyncExecutor):
    """The async twin of :class:`DockerExecutor` (same arguments). Tools may be plain
    functions or coroutine functions."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        template: str | None = None,
        cpu: float | None = None,
        memory_mb: int | None = None,
        pids: int | None = None,
        disk_mb: int | None = None,
        timeout_s: float | None = None,
        network: str | None = None,
        env: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        execution_timeout_s: float | None = None,
        on_event: EventCallback | None = None,
        on_stdout: TextCallback | None = None,
        on_stderr: TextCallback | None = None,
        tools: Mapping[str, Tool] | None = None,
        request_timeout_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        spec = SandboxSpec(template, cpu, memory_mb, pids, disk_mb, timeout_s, network,
                           dict(env or {}), dict(metadata or {}))
        self._configure(base_url, api_key, spec, execution_timeout_s,
                        Callbacks(on_event, on_stdout, on_stderr), request_timeout_s)
        self._register(tools or {})
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers(),
                                       timeout=self._timeout, transport=transport)

    async def _request(self, method: str, url: str, action: str,
                       **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise _connection_error(exc, action) from exc
        await _acheck(response, action)
        return response

    async def _ensure_sandbox(self) -> str:
        self._check_open()
        if self.sandbox_id is None:
            response = await self._request("POST", "/v1/sandboxes", "creating a sandbox",
                                           json=self.spec.body())
            self._created(response)
            if self._tools:
                await self._push_tools()
        assert self.sandbox_id is not None
        return self.sandbox_id

    async def _push_tools(self) -> None:
        await self._request("PUT", self._path("/tools"), "sending tools",
                            json=self._tools_body())

    async def run(self, code: str, *, timeout_s: float | None = None) -> Execution:
        self._check_open()
        body = execute_body(code, self._timeout_for(timeout_s))
        await self._ensure_sandbox()
        folder = EventFolder(self.callbacks)
        action = "running code"
        try:
            async with self._http.stream("POST", self._path("/execute/stream"),
                                         json=body) as response:
                await _acheck(response, action)
                async for line in response.aiter_lines():
                    call = folder.feed_line(line)
                    if call is not None:
                        await self._answer(call)
                    if folder.done:
                        break
        except httpx.HTTPError as exc:
            if folder.execution_id is None:
                raise _connection_error(exc, action) from exc
            return await self._recover(folder, exc)
        if not folder.done and folder.execution_id is not None:
            return await self._recover(folder, None)
        return folder.result()

    async def _recover(self, folder: EventFolder, cause: BaseException | None) -> Execution:
        """As :meth:`DockerExecutor._recover`."""
        url = self._path(f"/executions/{folder.execution_id}")
        recovery = _Recovery(cause)
        while True:
            try:
                response = await self._http.get(url, params={"wait_s": 30}, timeout=60)
            except httpx.HTTPError as exc:
                recovery.cause = exc
            else:
                if response.status_code == 200:
                    return folder.recovered(response.json())
                if recovery.final(response.status_code):
                    await _acheck(response, "asking for an interrupted execution")
            recovery.give_up_when_late()
            await asyncio.sleep(RECOVER_POLL_S)

    async def _answer(self, call: ToolCall) -> None:
        try:
            tool = call.lookup(self._tools)
            value = tool(*call.args, **call.kwargs)
            if inspect.isawaitable(value):
                value = await value
            reply = tool_value_reply(call.name, value)
        except Exception as exc:
            reply = tool_error_reply(exc)
        with contextlib.suppress(SandboxNotFoundError):
            await self._request("POST", self._path(f"/tool-calls/{call.call_id}"),
                                f"answering tool call {call.name!r}", json=reply)

    async def send_tools(self, tools: Mapping[str, Tool]) -> None:
        self._check_open()
        self._register(tools)
        if self.sandbox_id is None:
            await self._ensure_sandbox()
        else:
            await self._push_tools()

    async def send_variables(self, variables: Mapping[str, Any]) -> None:
        self._check_open()
        body = self._variables_body(variables)
        await self._ensure_sandbox()
        await self._request("PUT", self._path("/variables"), "sending variables", json=body)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.sandbox_id is not None:
                with contextlib.suppress(httpx.HTTPError):
                    await self._http.delete(self._path())
        finally:
            await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncDockerExecutor(base_url={self.base_url!r}, sandbox_id={self.sandbox_id!r})"
