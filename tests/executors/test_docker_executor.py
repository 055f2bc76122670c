"""The ``docker`` back end against a live selfbox server and real Docker sandboxes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from executors import create_async_executor, create_executor
from executors.docker import AsyncDockerExecutor, DockerExecutor
from executors.exceptions import (
    AuthenticationError,
    ConfigurationError,
    ExecutorClosedError,
    InvalidRequestError,
    SandboxGoneError,
    SandboxNotFoundError,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.docker


@pytest.fixture
def executor(server: LiveServer) -> Iterator[DockerExecutor]:
    with DockerExecutor(server.url, "test-key-alice", memory_mb=256) as ex:
        yield ex


def test_runs_code_and_keeps_state(executor: DockerExecutor) -> None:
    assert executor.sandbox_id is None  # created on first use
    first = executor.run("x = 20\nprint('hi')")
    assert first.ok and first.stdout == "hi\n"
    assert executor.sandbox_id is not None
    assert executor.run("x + 2").text == "22"


def test_streams_output_to_callbacks(server: LiveServer) -> None:
    events: list[dict[str, Any]] = []
    chunks: list[str] = []
    with DockerExecutor(server.url, "test-key-alice", on_event=events.append,
                        on_stdout=chunks.append) as ex:
        execution = ex.run("import sys\nprint('a')\nprint('b', file=sys.stderr)\n7")
    assert "".join(chunks) == "a\n"
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "execution"
    assert "stdout" in kinds and "stderr" in kinds and "result" in kinds
    assert execution.stderr == "b\n" and execution.text == "7"


def test_host_tools_are_called_by_name(executor: DockerExecutor) -> None:
    calls: list[tuple[Any, ...]] = []

    def add(a: int, b: int = 0) -> int:
        """Add two numbers."""
        calls.append((a, b))
        return a + b

    def boom() -> None:
        raise ValueError("no luck")

    executor.send_tools({"add": add, "boom": boom})
    execution = executor.run("add(2, b=3) * 10")
    assert execution.ok, execution.error
    assert execution.text == "50" and calls == [(2, 3)]
    assert executor.run("add.__doc__").text == "'Add two numbers.'"

    failed = executor.run("boom()")
    assert failed.status == "error" and failed.error is not None
    assert failed.error.name == "ToolCallError"
    assert "ValueError: no luck" in failed.error.value

    caught = executor.run("try:\n    boom()\nexcept Exception as e:\n    r = type(e).__name__\nr")
    assert caught.text == "'ToolCallError'"


def test_tool_results_cross_as_json_only(executor: DockerExecutor) -> None:
    executor.send_tools({"obj": lambda: object(), "data": lambda: {"a": [1, 2.5, None]}})
    assert executor.run("data()").text == "{'a': [1, 2.5, None]}"
    execution = executor.run("obj()")
    assert execution.error is not None and execution.error.name == "ToolCallError"
    assert "JSON" in execution.error.value


def test_sandbox_cannot_call_unregistered_host_callables(executor: DockerExecutor) -> None:
    executor.send_tools({"ok": lambda: 1})
    # The runner proxies only registered names; forging a proxy by hand for another name
    # reaches the host, which refuses it.
    execution = executor.run(
        "import sys\nk = [m for m in sys.modules.values() if hasattr(m, 'Kernel')]\n"
        "kernel = None\n"
        "import gc\n"
        "for o in gc.get_objects():\n"
        "    if type(o).__name__ == 'Kernel':\n"
        "        kernel = o\n"
        "kernel.call_tool('__import__', ['os'], {})"
    )
    assert execution.error is not None
    assert execution.error.name == "ToolCallError"
    assert "no tool named '__import__'" in execution.error.value
    assert executor.run("ok()").text == "1"


def test_send_variables(executor: DockerExecutor) -> None:
    executor.send_variables({"numbers": [1, 2, 3], "config": {"k": "v"}, "flag": True})
    assert executor.run("sum(numbers), config['k'], flag").text == "(6, 'v', True)"
    with pytest.raises(ConfigurationError, match="JSON"):
        executor.send_variables({"bad": object()})
    with pytest.raises(ConfigurationError, match="identifier"):
        executor.send_variables({"not valid": 1})


def test_final_answer(executor: DockerExecutor) -> None:
    execution = executor.run("print('before')\nfinal_answer({'answer': 42})\nprint('after')")
    assert execution.is_final_answer and execution.final_answer == {"answer": 42}
    assert execution.stdout == "before\n"


def test_timeout_keeps_the_sandbox(executor: DockerExecutor) -> None:
    executor.run("kept = 'yes'")
    execution = executor.run("while True: pass", timeout_s=1)
    assert execution.status == "timeout"
    assert execution.error is not None and execution.error.name == "TimeoutError"
    assert executor.run("kept").text == "'yes'"


def test_execution_timeout_default(server: LiveServer) -> None:
    with DockerExecutor(server.url, "test-key-alice", execution_timeout_s=1) as ex:
        assert ex.run("import time\ntime.sleep(30)").status == "timeout"


def test_close_kills_the_sandbox(server: LiveServer, client: httpx.Client) -> None:
    ex = DockerExecutor(server.url, "test-key-alice")
    ex.run("1")
    sandbox_id = ex.sandbox_id
    assert client.get(f"/v1/sandboxes/{sandbox_id}").status_code == 200
    ex.close()
    ex.close()  # idempotent
    assert client.get(f"/v1/sandboxes/{sandbox_id}").status_code == 404
    with pytest.raises(ExecutorClosedError):
        ex.run("1")
    with pytest.raises(ExecutorClosedError):
        ex.send_tools({"f": print})


def test_dead_sandbox_is_gone(server: LiveServer, client: httpx.Client) -> None:
    with DockerExecutor(server.url, "test-key-alice") as ex:
        ex.run("1")
        client.delete(f"/v1/sandboxes/{ex.sandbox_id}")
        with pytest.raises(SandboxNotFoundError):
            ex.run("1")


def test_sandbox_that_dies_reports_and_then_is_gone(server: LiveServer) -> None:
    with DockerExecutor(server.url, "test-key-alice") as ex:
        execution = ex.run("import os\nos._exit(1)")
        assert execution.status == "sandbox_died"
        with pytest.raises(SandboxGoneError, match="gone"):
            ex.run("1")


def test_wrong_key_is_an_authentication_error(server: LiveServer) -> None:
    with DockerExecutor(server.url, "wrong-key") as ex, pytest.raises(AuthenticationError):
        ex.run("1")


def test_limits_beyond_the_maximum_are_invalid(server: LiveServer) -> None:
    with DockerExecutor(server.url, "test-key-alice", memory_mb=10**9) as ex, \
            pytest.raises(InvalidRequestError, match="memory_mb"):
        ex.run("1")


def test_settings_from_environment(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFBOX_URL", server.url)
    monkeypatch.setenv("SELFBOX_API_KEY", "test-key-alice")
    with create_executor("docker", metadata={"who": "env"}) as ex:
        assert ex.run("6 * 7").text == "42"


def test_async_executor(server: LiveServer) -> None:
    async def scenario() -> None:
        async def fetch(key: str) -> str:
            await asyncio.sleep(0)
            return key.upper()

        async with create_async_executor("docker", base_url=server.url,
                                         api_key="test-key-alice") as ex:
            assert isinstance(ex, AsyncDockerExecutor)
            await ex.send_tools({"fetch": fetch, "double": lambda x: 2 * x})
            await ex.send_variables({"word": "abc"})
            execution = await ex.run("fetch(word) + str(double(2))")
            assert execution.text == "'ABC4'"
            timed_out = await ex.run("while True: pass", timeout_s=1)
            assert timed_out.status == "timeout"
            assert (await ex.run("word")).text == "'abc'"
            answer = await ex.run("final_answer([1, 2])")
            assert answer.is_final_answer and answer.final_answer == [1, 2]
        assert ex.closed
        with pytest.raises(ExecutorClosedError):
            await ex.run("1")

    asyncio.run(scenario())


# -- the runtime endpoints (PUT /tools, PUT /variables) -------------------------------------------
def test_runtime_endpoints(client: httpx.Client, sandbox: str) -> None:
    base = f"/v1/sandboxes/{sandbox}"
    response = client.put(f"{base}/variables", json={"variables": {"a": 1, "b": [True, None]}})
    assert response.status_code == 204, response.text
    response = client.put(f"{base}/tools", json={"tools": [{"name": "t", "description": "d"}]})
    assert response.status_code == 204, response.text
    answer = client.post(f"{base}/execute", json={"code": "a, b, t.__doc__"}).json()
    assert answer["results"][0]["data"]["text/plain"] == "(1, [True, None], 'd')"

    for bad in ("not valid", "class", "__import__", "final_answer"):
        response = client.put(f"{base}/variables", json={"variables": {bad: 1}})
        assert response.status_code == 422, (bad, response.text)
        response = client.put(f"{base}/tools", json={"tools": [{"name": bad}]})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error_code"] == "invalid_request"
    response = client.put(f"{base}/variables", json={"variables": {"x": 1}, "context": "nope"})
    assert response.status_code == 422
    response = client.put(f"{base}/tools", json={"tools": [], "extra": 1})
    assert response.status_code == 422


def test_runtime_endpoints_check_owner(server: LiveServer, sandbox: str) -> None:
    with server.client("test-key-bob") as bob:
        response = bob.put(f"/v1/sandboxes/{sandbox}/variables", json={"variables": {"a": 1}})
        assert response.status_code == 404
    with server.client(None) as anonymous:
        response = anonymous.put(f"/v1/sandboxes/{sandbox}/tools", json={"tools": []})
        assert response.status_code == 401


def test_unstoppable_code_times_out_and_the_sandbox_is_gone(server: LiveServer) -> None:
    with DockerExecutor(server.url, "test-key-alice") as ex:
        execution = ex.run(
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass",
            timeout_s=1,
        )
        assert execution.status == "timeout" and execution.error is not None
        assert "killed" in execution.error.value
        with pytest.raises(SandboxGoneError):
            ex.run("1")


RICH = (
    "class Rich:\n"
    "    def _repr_html_(self):\n        return '<b>rich</b>'\n"
    "    def _repr_png_(self):\n        return b'\\x89PNG-bytes'\n"
    "    def __repr__(self):\n        return 'Rich()'\n"
    "Rich()"
)


def test_rich_results_cross_as_typed_blobs(executor: DockerExecutor) -> None:
    import base64

    execution = executor.run(RICH)
    main = execution.main_result
    assert main is not None
    assert main.data["text/plain"] == "Rich()" and main.html == "<b>rich</b>"
    assert base64.b64decode(main.png) == b"\x89PNG-bytes"
