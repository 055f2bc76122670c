"""The runner gateway and the protocol shared by both ends: typed failures translated once,
``follow`` over a real channel, the protocol-version check, the background-task registry."""

from __future__ import annotations

import asyncio
import binascii
import errno
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from executors.exceptions import (
    InvalidRequestError,
    RateLimitError,
    SandboxGoneError,
    ServerError,
    exception_for_status,
)
from executors.http_status import HTTP_STATUS
from sandbox_server.exceptions import (
    RunnerOpError,
    RunnerTimeout,
    SandboxGone,
    SandboxStartError,
    StreamOverflow,
)
from sandbox_server.gateway import DEADLINE, IDLE, RunnerGateway, check_hello, is_eof
from sandbox_server.runner.protocol import (
    PROTOCOL_VERSION,
    ErrorCode,
    Msg,
    Op,
    error_code_of,
    error_reply,
)
from sandbox_server.sandbox import Limits, Sandbox
from sandbox_server.tasks import BackgroundTasks
from tests.conftest import REPO_ROOT, RUNTIME_IMAGE, start_server, stop_server
from tests.server.fake_runner import setup_channel as _setup

# -- the protocol ---------------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "code"), [
    (OSError(errno.ENOSPC, "No space left on device"), ErrorCode.NO_SPACE),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), ErrorCode.NO_SPACE),
    (FileNotFoundError("gone"), ErrorCode.NOT_FOUND),
    (KeyError("ctx"), ErrorCode.NOT_FOUND),
    (ProcessLookupError("no such process"), ErrorCode.NOT_FOUND),
    (FileExistsError("there"), ErrorCode.ALREADY_EXISTS),
    (PermissionError("no"), ErrorCode.PERMISSION_DENIED),
    (binascii.Error("bad base64"), ErrorCode.INVALID_ARGUMENT),
    (IsADirectoryError("dir"), ErrorCode.INVALID_ARGUMENT),
    (OverflowError("too many"), ErrorCode.LIMIT_REACHED),
    (BrokenPipeError("no stdin"), ErrorCode.NOT_WRITABLE),
    (RuntimeError("No space left on device"), ErrorCode.INTERNAL),  # text is never read
])
def test_runner_error_codes_come_from_types_not_text(exc: BaseException, code: ErrorCode) -> None:
    assert error_code_of(exc) is code
    reply = error_reply(exc)
    assert reply["ok"] is False and reply["error"]["code"] == code


def test_hello_of_another_major_version_is_refused() -> None:
    check_hello({"type": Msg.READY, "protocol": PROTOCOL_VERSION})
    major, _, _minor = PROTOCOL_VERSION.partition(".")
    check_hello({"type": Msg.READY, "protocol": f"{major}.99"})  # a newer minor is fine
    for other in (f"{int(major) + 1}.0", None, "garbage"):
        with pytest.raises(SandboxStartError, match=r"protocol.*rebuild the runtime image"):
            check_hello({"type": Msg.READY, "protocol": other})


def test_runtime_image_label_names_the_protocol_major_version() -> None:
    dockerfile = (REPO_ROOT / "images" / "runtime" / "Dockerfile").read_text()
    assert f'io.selfbox.runner-protocol="{PROTOCOL_VERSION.partition(".")[0]}"' in dockerfile


def test_one_status_table_for_client_and_server() -> None:
    from sandbox_server import exceptions as server

    for cls in (server.NotFound, server.SandboxGone, server.TooManySandboxes,
                server.InvalidRequest, server.RunnerTimeout, server.StreamOverflow):
        assert cls.status_code == HTTP_STATUS[cls.error_code]
        # what a client makes of the server's answer
        client_cls = exception_for_status(cls.status_code)
        assert client_cls.status_code == cls.status_code or client_cls in (
            InvalidRequestError, ServerError)
    assert exception_for_status(410) is SandboxGoneError
    assert exception_for_status(429) is RateLimitError
    assert exception_for_status(418) is InvalidRequestError


# -- the gateway over a real channel (a socket pair; we play the runner) --------------------


def test_request_translates_each_failure_once() -> None:
    async def scenario() -> None:
        tasks = BackgroundTasks()
        sandbox, runner, channel = await _setup(tasks)
        gateway = RunnerGateway()

        async def answer(reply: dict[str, Any]) -> dict[str, Any]:
            op = await runner.op()
            await runner.send({"type": Msg.REPLY, "req": op["req"], **reply})
            return op

        answering = asyncio.create_task(answer({"ok": True, "pid": 7}))
        assert (await gateway.request(sandbox, Op.PING))["pid"] == 7
        assert (await answering)["op"] == "ping"

        answering = asyncio.create_task(answer(error_reply(FileNotFoundError("x"))))
        with pytest.raises(RunnerOpError) as caught:
            await gateway.request(sandbox, Op.FS_STAT, path="x")
        assert caught.value.code is ErrorCode.NOT_FOUND and caught.value.op == "fs_stat"
        await answering

        answering = asyncio.create_task(answer({"ok": False, "error": {"code": "nonsense"}}))
        with pytest.raises(RunnerOpError) as caught:
            await gateway.request(sandbox, Op.FS_STAT, path="x")
        assert caught.value.code is ErrorCode.INTERNAL
        await answering

        with pytest.raises(RunnerTimeout, match="did not answer 'ping'"):
            await gateway.request(sandbox, Op.PING, timeout_s=0.2)
        await runner.op()  # the unanswered ping

        runner.sock.close()
        await asyncio.wait_for(channel.closed.wait(), 5)
        with pytest.raises(SandboxGone):
            await gateway.request(sandbox, Op.PING)
        await channel.close()
        await tasks.cancel_all()
        assert len(tasks) == 0

    asyncio.run(scenario())


def test_follow_idles_extends_its_deadline_and_ends_at_the_terminal_message() -> None:
    async def scenario() -> None:
        tasks = BackgroundTasks()
        sandbox, runner, channel = await _setup(tasks)
        gateway = RunnerGateway()
        loop = asyncio.get_running_loop()
        stream = gateway.follow(sandbox, Op.EXECUTE, "k1", loop.time() + 0.5, idle_s=0.1,
                                terminal=lambda m: m.get("type") == Msg.DONE, code="1")
        async with stream:
            op = await runner.op()
            assert op == {"op": "execute", "id": "k1", "code": "1"}  # keyed, not replied
            seen: list[Any] = []
            async for message in stream:
                seen.append(message)
                if message is DEADLINE and seen.count(DEADLINE) == 1:
                    stream.deadline = loop.time() + 5  # go on, as a run does after interrupt
                    await runner.send({"type": Msg.STREAM, "id": "other", "text": "not ours"})
                    await runner.send({"type": Msg.STREAM, "id": "k1", "text": "hi"})
                    await runner.send({"type": Msg.DONE, "id": "k1"})
            assert IDLE in seen and seen.count(DEADLINE) == 1
            assert [m.get("text") for m in seen if m.get("type") == Msg.STREAM] == ["hi"]
            assert seen[-1]["type"] == Msg.DONE

        # A deadline nobody moves ends the stream; a replied op yields its reply first.
        stream = gateway.follow(sandbox, Op.PROC_START, "k2", loop.time() + 0.3, cmd="x")
        opening = asyncio.create_task(stream.open())
        op = await runner.op()
        assert op["op"] == "proc_start" and op["key"] == "k2"
        await runner.send({"type": Msg.REPLY, "req": op["req"], "ok": True, "pid": 3})
        await opening
        assert stream.reply["pid"] == 3
        assert [m async for m in stream] == [DEADLINE]
        stream.close()

        # A slow reader is dropped, not buffered without bound; the end of the channel ends
        # every stream.
        async with gateway.follow(sandbox, Op.EXECUTE, "k3", None, max_pending=2) as stream:
            await runner.op()
            for _ in range(5):
                await runner.send({"type": Msg.STREAM, "id": "k3", "text": "x"})
            await asyncio.sleep(0.2)
            with pytest.raises(StreamOverflow):
                await anext(stream)
        async with gateway.follow(sandbox, Op.EXECUTE, "k4", None) as stream:
            await runner.op()
            runner.sock.close()
            last = [m async for m in stream]
            assert len(last) == 1 and is_eof(last[0])
        await channel.close()
        await tasks.cancel_all()

    asyncio.run(scenario())


def test_a_full_queue_does_not_hold_off_the_deadline_but_a_queued_end_wins() -> None:
    """A sandbox that writes without a pause keeps its queue full; its deadline comes all the
    same, and the message taken then is given next. A run's end already queued at the deadline
    is given first (the code finished in time, as far as anyone can tell)."""
    async def scenario() -> None:
        tasks = BackgroundTasks()
        sandbox, runner, channel = await _setup(tasks)
        gateway = RunnerGateway()
        loop = asyncio.get_running_loop()
        done = lambda m: m.get("type") == Msg.DONE  # noqa: E731
        async with gateway.follow(sandbox, Op.EXECUTE, "f1", loop.time() + 0.2,
                                  terminal=done, code="1") as stream:
            await runner.op()
            for text in "abc":
                await runner.send({"type": Msg.STREAM, "id": "f1", "text": text})
            await asyncio.sleep(0.4)  # all three queued, the deadline passed
            assert await anext(stream) is DEADLINE
            stream.deadline = loop.time() + 5
            assert [(await anext(stream))["text"] for _ in range(3)] == ["a", "b", "c"]
        async with gateway.follow(sandbox, Op.EXECUTE, "f2", loop.time() + 0.2,
                                  terminal=done, code="1") as stream:
            await runner.op()
            await runner.send({"type": Msg.DONE, "id": "f2"})
            await asyncio.sleep(0.4)
            assert [m async for m in stream] == [{"type": Msg.DONE, "id": "f2"}]
        await channel.close()
        await tasks.cancel_all()

    asyncio.run(scenario())


def test_background_tasks_are_cancelled_at_shutdown() -> None:
    async def scenario() -> None:
        tasks = BackgroundTasks()
        started = asyncio.Event()

        async def forever() -> None:
            started.set()
            await asyncio.sleep(3600)

        task = tasks.spawn(forever(), name="forever")
        await started.wait()
        assert len(tasks) == 1
        await tasks.cancel_all(timeout_s=5)
        assert task.cancelled() and len(tasks) == 0

    asyncio.run(scenario())


# -- a runner of another major version, for real --------------------------------------------


@pytest.fixture
def other_major_image() -> Iterator[str]:
    tag = f"selfbox/test-runtime-protocol:{uuid.uuid4().hex[:10]}"
    major = PROTOCOL_VERSION.partition(".")[0]
    dockerfile = (
        f"FROM {RUNTIME_IMAGE}\nUSER root\n"
        f"RUN sed -i 's/^PROTOCOL_VERSION: Final = \"{PROTOCOL_VERSION}\"/PROTOCOL_VERSION: "
        f"Final = \"{int(major) + 1}.0\"/' /opt/selfbox/selfbox_runner/protocol.py && "
        f"grep -q '\"{int(major) + 1}.0\"' /opt/selfbox/selfbox_runner/protocol.py && "
        "python3 -m compileall -q /opt/selfbox/selfbox_runner\nUSER 1000:1000\n")
    subprocess.run(["docker", "build", "-q", "-t", tag, "--label", "selfbox.test=protocol",
                    "-"], input=dockerfile.encode(), check=True, capture_output=True,
                   timeout=300)
    yield tag
    docker.from_env().images.remove(tag, force=True)


@pytest.mark.docker
def test_server_refuses_a_runner_of_another_major_version(
        tmp_path: Path, docker_ready: None, other_major_image: str) -> None:
    live = start_server(tmp_path, SELFBOX_WARM_POOL_SIZE="0",
                        SELFBOX_ALLOWED_TEMPLATES=other_major_image)
    try:
        with live.client() as http:
            refused = http.post("/v1/sandboxes", json={"template": other_major_image})
            assert refused.status_code == 500, refused.text
            body = refused.json()
            assert body["error_code"] == "sandbox_start_failed"
            assert f"this server speaks {PROTOCOL_VERSION}" in body["message"]
            assert "rebuild the runtime image" in body["message"]
            # The server's own image still works beside it.
            assert http.post("/v1/sandboxes", json={}).status_code == 201
    finally:
        stop_server(live)


def test_e2b_adapter_renders_typed_errors_as_connect_codes() -> None:
    from sandbox_server.e2b.runner_ops import http_status, to_connect
    from sandbox_server.exceptions import Conflict

    sandbox = Sandbox(id="sb", owner="o", template="t",
                      limits=Limits(cpu=1, memory_mb=64, pids=64, disk_mb=64, network="none"),
                      metadata={}, env={}, created_at=0.0, expires_at=0.0)
    full = to_connect(RunnerOpError("disk full", code=ErrorCode.NO_SPACE, op="fs_write"), sandbox)
    assert (full.code, http_status(full)) == ("resource_exhausted", 507)
    capped = to_connect(RunnerOpError("No space left (a message is never read)",
                                      code=ErrorCode.LIMIT_REACHED, op="proc_start"), sandbox)
    assert (capped.code, http_status(capped)) == ("resource_exhausted", 429)
    # A runner that does not answer is the sandbox's state: 409, not envd's 504.
    assert to_connect(RunnerTimeout("slow"), sandbox).code == "aborted"
    gone = to_connect(SandboxGone("x"), sandbox)
    assert (gone.code, http_status(gone)) == ("unavailable", 502)
    assert to_connect(Conflict("paused"), sandbox).code == "failed_precondition"
    missing = to_connect(RunnerOpError("f", code=ErrorCode.NOT_FOUND, op="fs_stat"), sandbox)
    assert (missing.code, http_status(missing)) == ("not_found", 404)
