"""Fast unit tests of the docker back end's I/O-free logic and error mapping (httpx fakes)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from executors._remote import EventFolder, error_for_status, is_json_data
from executors.docker import AsyncDockerExecutor, DockerExecutor
from executors.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    RateLimitError,
    SandboxConnectionError,
    SandboxError,
    SandboxGoneError,
    SandboxNotFoundError,
    ServerError,
)

Handler = Callable[[httpx.Request], httpx.Response]
EXECUTION: dict[str, Any] = {
    "stdout": "", "stderr": "", "results": [], "error": None, "status": "ok", "duration_s": 0.1,
    "execution_count": 1, "is_final_answer": False, "final_answer": None,
}


def ndjson(*events: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"code": status, "error_code": code, "message": message})


class FakeServer:
    """Answers sandbox creation, and the execute stream with the given events."""

    def __init__(self, *events: dict[str, Any], create: httpx.Response | None = None) -> None:
        self.events = events
        self.create = create or httpx.Response(201, json={"id": "sb1", "state": "running"})
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/v1/sandboxes" and request.method == "POST":
            return self.create
        if path.endswith("/execute/stream"):
            return httpx.Response(200, content=ndjson(*self.events))
        if "/tool-calls/" in path or request.method in ("PUT", "DELETE"):
            return httpx.Response(204)
        return httpx.Response(404)

    def bodies(self, fragment: str) -> list[Any]:
        return [json.loads(r.content) for r in self.requests
                if fragment in r.url.path and r.content]


def executor(handler: Handler, **kwargs: Any) -> DockerExecutor:
    return DockerExecutor("http://selfbox.test", "key", transport=httpx.MockTransport(handler),
                          **kwargs)


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [(401, AuthenticationError), (404, SandboxNotFoundError), (410, SandboxGoneError),
     (422, InvalidRequestError), (409, InvalidRequestError), (429, RateLimitError),
     (500, ServerError), (503, ServerError)],
)
def test_http_errors_map_to_the_exception_tree(status: int, exc_type: type[SandboxError]) -> None:
    fake = FakeServer(create=error(status, "some_code", "explained"))
    with executor(fake) as ex, pytest.raises(exc_type) as info:
        ex.run("1")
    assert "explained" in str(info.value) and "some_code" in str(info.value)
    assert info.value.details["status"] == status


def test_error_on_the_stream_and_on_tool_reply() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/execute/stream"):
            return error(410, "sandbox_gone", "sandbox sb1 is gone: it expired")
        return httpx.Response(201, json={"id": "sb1"})

    with executor(handler) as ex, pytest.raises(SandboxGoneError, match="expired"):
        ex.run("1")


def test_connection_refused_is_a_connection_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with executor(refuse) as ex, pytest.raises(SandboxConnectionError) as info:
        ex.run("1")
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_real_connection_refused() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with DockerExecutor(f"http://127.0.0.1:{port}", "key") as ex, \
            pytest.raises(SandboxConnectionError, match="cannot reach"):
        ex.run("1")


def test_missing_settings_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SELFBOX_URL", raising=False)
    monkeypatch.delenv("SELFBOX_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SELFBOX_URL"):
        DockerExecutor()
    with pytest.raises(ConfigurationError, match="SELFBOX_API_KEY"):
        DockerExecutor("http://selfbox.test")
    monkeypatch.setenv("SELFBOX_URL", "http://from-env.test/")
    monkeypatch.setenv("SELFBOX_API_KEY", "k")
    ex = DockerExecutor()
    assert ex.base_url == "http://from-env.test"
    ex.close()


def test_create_body_carries_the_limits() -> None:
    fake = FakeServer({"type": "start"}, {"type": "execution", "execution": EXECUTION})
    with executor(fake, template="img", cpu=0.5, memory_mb=256, pids=64, disk_mb=100,
                  timeout_s=60, network="none", env={"A": "1"}, metadata={"m": "v"},
                  execution_timeout_s=7) as ex:
        ex.run("1")
        ex.run("2", timeout_s=3)
    assert fake.bodies("/v1/sandboxes")[0] == {
        "template": "img", "cpu": 0.5, "memory_mb": 256, "pids": 64, "disk_mb": 100,
        "timeout_s": 60, "network": "none", "env": {"A": "1"}, "metadata": {"m": "v"}}
    assert [b["timeout_s"] for b in fake.bodies("/execute/stream")] == [7, 3]
    assert fake.requests[0].headers["authorization"] == "Bearer key"
    assert fake.requests[-1].method == "DELETE"  # close kills the sandbox


def test_tool_calls_are_answered_by_exact_name() -> None:
    fake = FakeServer(
        {"type": "start"},
        {"type": "tool_call", "call_id": "c1", "name": "add", "args": [1, 2], "kwargs": {}},
        {"type": "tool_call", "call_id": "c2", "name": "fail", "args": [], "kwargs": {}},
        {"type": "tool_call", "call_id": "c3", "name": "__import__", "args": ["os"], "kwargs": {}},
        {"type": "tool_call", "call_id": "c4", "name": "blob", "args": [], "kwargs": {}},
        {"type": "keepalive"},
        {"type": "execution", "execution": EXECUTION},
    )

    def fail() -> None:
        raise KeyError("missing")

    with executor(fake, tools={"add": lambda a, b: a + b, "fail": fail,
                               "blob": lambda: b"bytes"}) as ex:
        assert ex.run("...").ok
    replies = fake.bodies("/tool-calls/")
    assert replies[0] == {"ok": True, "value": 3}
    assert replies[1] == {"ok": False, "error": {"name": "KeyError", "value": "'missing'"}}
    assert replies[2]["ok"] is False
    assert "no tool named '__import__'" in replies[2]["error"]["value"]
    assert replies[3]["ok"] is False and "JSON" in replies[3]["error"]["value"]
    assert fake.bodies("/tools")[0]["tools"][0]["name"] == "add"


def test_callbacks_see_events() -> None:
    fake = FakeServer({"type": "start"}, {"type": "stdout", "text": "a"},
                      {"type": "stderr", "text": "b"}, {"type": "keepalive"},
                      {"type": "execution", "execution": {**EXECUTION, "stdout": "a"}})
    events: list[dict[str, Any]] = []
    out: list[str] = []
    err: list[str] = []
    with executor(fake, on_event=events.append, on_stdout=out.append, on_stderr=err.append) as ex:
        assert ex.run("x").stdout == "a"
    assert [e["type"] for e in events] == ["start", "stdout", "stderr", "execution"]
    assert out == ["a"] and err == ["b"]


def test_malformed_streams_are_server_errors() -> None:
    with executor(FakeServer({"type": "start"})) as ex, \
            pytest.raises(ServerError, match="without its final"):
        ex.run("1")
    folder = EventFolder()
    with pytest.raises(ServerError, match="malformed"):
        folder.feed_line(b"not json")
    with pytest.raises(ServerError, match="malformed"):
        folder.feed({"type": "execution", "execution": {"status": "bogus"}})


def test_send_variables_refuses_non_json() -> None:
    fake = FakeServer()
    with executor(fake) as ex:
        for bad in (object(), {1: "int key"}, float("nan"), b"bytes", {"s": {1, 2}}):
            with pytest.raises(ConfigurationError, match="JSON"):
                ex.send_variables({"v": bad})
        ex.send_variables({"v": [1, (2, 3)], "w": {"k": None}})
    assert fake.bodies("/variables") == [{"variables": {"v": [1, [2, 3]], "w": {"k": None}},
                                          "context": "default"}]


def test_is_json_data() -> None:
    assert is_json_data({"a": [1, 2.5, "x", None, True, (1,)]})
    assert not is_json_data(float("inf"))
    assert not is_json_data(type("Int", (int,), {})(3))


def test_error_for_status_without_json_body() -> None:
    exc = error_for_status(502, b"<html>bad gateway</html>", action="creating a sandbox")
    assert isinstance(exc, ServerError) and "bad gateway" in str(exc)
    assert "creating a sandbox" in str(exc)


def test_async_client_maps_errors_and_answers_tools() -> None:
    fake = FakeServer(
        {"type": "start"},
        {"type": "tool_call", "call_id": "c1", "name": "get", "args": ["k"], "kwargs": {}},
        {"type": "execution", "execution": EXECUTION},
    )

    async def get(key: str) -> str:
        return key * 2

    async def scenario() -> None:
        async with AsyncDockerExecutor("http://selfbox.test", "key", tools={"get": get},
                                       transport=httpx.MockTransport(fake)) as ex:
            assert (await ex.run("get('k')")).ok
        bad = AsyncDockerExecutor("http://selfbox.test", "key", transport=httpx.MockTransport(
            lambda request: error(429, "too_many_sandboxes", "cap reached")))
        with pytest.raises(RateLimitError, match="cap reached"):
            await bad.run("1")
        await bad.aclose()

    asyncio.run(scenario())
    assert fake.bodies("/tool-calls/") == [{"ok": True, "value": "kk"}]


def test_import_executors_pulls_in_no_sdk() -> None:
    code = (
        "import sys, executors\n"
        "from executors import create_executor\n"
        "import executors.docker, executors.e2b\n"
        "heavy = [m for m in ('docker', 'fastapi', 'e2b', 'e2b_code_interpreter',"
        " 'smolagents', 'sandbox_server') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
