"""Fast unit tests of the server's I/O-free parts (no Docker needed)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import sandbox_server
from executors.exceptions import SandboxError
from sandbox_server import exceptions as server_exceptions
from sandbox_server.channel import RunnerChannel
from sandbox_server.errors import install_error_handlers
from sandbox_server.execution import ExecutionBuilder
from sandbox_server.limits import SandboxSpec
from sandbox_server.manager import SandboxManager
from sandbox_server.middleware import BodySizeLimit
from sandbox_server.settings import Settings
from sandbox_server.tasks import BackgroundTasks


def test_package_exports() -> None:
    for name in sandbox_server.__all__:
        assert getattr(sandbox_server, name) is not None
    for name in server_exceptions.__all__:
        assert getattr(server_exceptions, name) is not None


def test_every_server_error_is_a_sandbox_error_with_a_status() -> None:
    for name in server_exceptions.__all__:
        cls = getattr(server_exceptions, name)
        assert issubclass(cls, SandboxError)
        assert 400 <= cls.status_code < 600
        assert (cls.error_code and cls.__name__ in server_exceptions.__doc__) or cls is SandboxError


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFBOX_API_KEYS", " key-one , key-two,,key-3 ")
    monkeypatch.setenv("SELFBOX_MAX_MEMORY_MB", "1024")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys] == ["key-one", "key-two", "key-3"]
    assert settings.max_memory_mb == 1024
    assert settings.host == "127.0.0.1"
    assert "key-one" not in repr(settings)  # keys are secrets


def test_the_example_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFBOX_API_KEYS", "good-key-123,change-me")
    with pytest.raises(ValueError, match="example key"):
        Settings()


def manager(**overrides: object) -> SandboxManager:
    return SandboxManager(Settings(api_keys=["k"], **overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (SandboxSpec(memory_mb=10**6), "SELFBOX_MAX_MEMORY_MB"),
        (SandboxSpec(cpu=99.0), "SELFBOX_MAX_CPU"),
        (SandboxSpec(pids=10**6), "SELFBOX_MAX_PIDS"),
        (SandboxSpec(disk_mb=10**6), "SELFBOX_MAX_DISK_MB"),
        (SandboxSpec(timeout_s=10**9), "SELFBOX_MAX_TIMEOUT_S"),
        (SandboxSpec(pids=3), "pids must be at least"),
        (SandboxSpec(memory_mb=-5), "memory_mb must be positive"),
        (SandboxSpec(network="bridge"), "SELFBOX_ALLOW_NETWORK"),
        (SandboxSpec(template="evil:latest"), "SELFBOX_ALLOWED_TEMPLATES"),
        (SandboxSpec(env={"A=B": "1"}), "invalid environment variable"),
    ],
)
def test_limits_are_checked_and_name_the_knob(request_: SandboxSpec, message: str) -> None:
    with pytest.raises(server_exceptions.InvalidRequest) as caught:
        manager().resolve(request_)
    assert message in str(caught.value)
    assert caught.value.status_code == 422


def test_defaults_fill_what_was_not_asked() -> None:
    template, limits, timeout_s = manager(default_memory_mb=300).resolve(SandboxSpec(cpu=0.5))
    assert template == "selfbox/runtime:latest"
    assert (limits.cpu, limits.memory_mb, limits.network) == (0.5, 300, "none")
    assert timeout_s == 300.0


def test_builder_folds_messages_and_caps_output() -> None:
    builder = ExecutionBuilder(output_limit_bytes=10)
    assert builder.feed({"type": "stream", "name": "stdout", "text": "hello "}) == {
        "type": "stdout", "text": "hello "}
    builder.feed({"type": "stream", "name": "stderr", "text": "warn"})
    builder.feed({"type": "stream", "name": "stdout", "text": "world, this is long"})
    assert builder.feed({"type": "stream", "name": "stdout", "text": "more"}) is None
    builder.feed({"type": "result", "data": {"text/plain": "3"}, "is_main_result": True})
    builder.feed({"type": "done", "status": "ok", "execution_count": 4})
    execution = builder.build()
    assert execution.stdout.startswith("hello ")
    assert "output truncated" in execution.stdout
    assert execution.stderr == "warn"
    assert execution.status == "output_truncated"
    assert execution.text == "3"
    assert execution.execution_count == 4


def test_builder_distrusts_the_runner() -> None:
    builder = ExecutionBuilder(output_limit_bytes=100)
    assert builder.feed({"type": "stream", "name": "evil", "text": "x"}) is None
    assert builder.feed({"type": "stream", "name": "stdout", "text": 5}) is None
    assert builder.feed({"type": "result", "data": "not a dict"}) is None
    builder.feed({"type": "error", "name": "E" * 10_000, "value": "v"})
    builder.feed({"type": "done", "status": "weird", "execution_count": "NaN"})
    execution = builder.build()
    assert execution.status == "error"
    assert execution.error is not None and len(execution.error.name) == 200
    assert execution.execution_count is None


def test_builder_without_done_means_the_sandbox_died() -> None:
    builder = ExecutionBuilder(output_limit_bytes=100)
    builder.feed({"type": "stream", "name": "stdout", "text": "partial"})
    builder.fail("sandbox_died", "SandboxDied", "gone")
    execution = builder.build()
    assert execution.status == "sandbox_died"
    assert execution.stdout == "partial"


def _frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def test_channel_demultiplexes_docker_frames_and_routes_by_id() -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair()
        channel = RunnerChannel(ours, "test")
        tasks = BackgroundTasks()
        await channel.start(tasks)
        assert len(tasks) == 1  # the read loop is a tracked background task
        queue = channel.subscribe("e1")
        # A line split over two frames, stderr noise, garbage, and a message for nobody.
        theirs.sendall(_frame(1, b'{"type":"ready"}\n{"type":"stream","id":"e1",'))
        theirs.sendall(_frame(2, b"runner warning\n"))
        theirs.sendall(_frame(1, b'"name":"stdout","text":"hi"}\nnot json\n[1,2]\n'))
        theirs.sendall(_frame(1, b'{"type":"stream","id":"other","text":"x"}\n'))
        message = await asyncio.wait_for(queue.get(), 2)
        assert message == {"type": "stream", "id": "e1", "name": "stdout", "text": "hi"}
        assert channel.ready.is_set()
        assert b"runner warning" in channel.stderr_tail
        await channel.send({"op": "ping"})
        assert json.loads(theirs.recv(1024)) == {"op": "ping"}
        theirs.close()
        eof = await asyncio.wait_for(queue.get(), 2)
        assert eof["type"] == "eof"
        assert channel.closed.is_set()
        await channel.close()

    asyncio.run(scenario())


def test_error_shape_and_body_limit() -> None:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=100)

    @app.post("/boom")
    async def boom(payload: dict[str, int]) -> None:
        raise server_exceptions.LimitExceeded("memory_mb too big", limit="memory_mb")

    with TestClient(app) as http:
        response = http.post("/boom", json={"a": 1})
        assert response.status_code == 422
        assert response.json() == {"code": 422, "error_code": "limit_exceeded",
                                   "message": "memory_mb too big",
                                   "details": {"limit": "memory_mb"}}
        invalid = http.post("/boom", content=b"{", headers={"content-type": "application/json"})
        assert invalid.status_code == 422 and invalid.json()["error_code"] == "invalid_request"
        large = http.post("/boom", content=b"x" * 500)
        assert large.status_code == 413
        assert "SELFBOX_MAX_REQUEST_BODY_BYTES" in large.json()["message"]
        assert http.get("/nowhere").json()["code"] == 404
