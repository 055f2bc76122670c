"""Sandboxes outlive the server: adoption after ``kill -9``, the orphan watchdog, the lease.

Real Docker, real servers in subprocesses. Each test uses its own deployment name and removes
what it created (a server that never comes back leaves containers that only its watchdog or a
successor would remove).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from executors.docker import DockerExecutor
from tests.conftest import API_KEYS, LiveServer, free_port, start_server, stop_server

pytestmark = pytest.mark.docker

SECRET = "durability-test-secret-" + "x" * 24


def _settings(tag: str, **extra: str) -> dict[str, str]:
    return {"SELFBOX_DEPLOYMENT": f"durable-{tag}-{os.getpid()}", "SELFBOX_STATE_SECRET": SECRET,
            "SELFBOX_WARM_POOL_SIZE": "0", **extra}


def _containers(deployment: str) -> list[Any]:
    client = docker.from_env()
    found = client.containers.list(all=True, filters={"label": f"io.selfbox.deployment={deployment}"})
    found += client.containers.list(all=True, filters={"name": f"selfbox-lease-{deployment}"})
    return found


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Deployments whose containers the test leaves to be removed."""
    deployments: list[str] = []
    yield deployments
    for deployment in deployments:
        for container in _containers(deployment):
            subprocess.run(["docker", "rm", "-f", container.id], capture_output=True)


def _kill_9(server: LiveServer) -> None:
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)


def _run(http: httpx.Client, sandbox_id: str, code: str) -> dict[str, Any]:
    response = http.post(f"/v1/sandboxes/{sandbox_id}/execute", json={"code": code})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _text(execution: dict[str, Any]) -> str:
    return str(execution["results"][0]["data"]["text/plain"]) if execution["results"] else ""


def test_five_sandboxes_survive_kill_9_and_restart(
    tmp_path: Path, docker_ready: None, cleanup: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from e2b_code_interpreter import Sandbox as E2BSandbox

    port = free_port()
    settings = _settings("five", SELFBOX_WARM_POOL_SIZE="1")
    cleanup.append(settings["SELFBOX_DEPLOYMENT"])
    first = start_server(tmp_path, port=port, **settings)
    url = first.url
    for name, value in (("E2B_API_URL", url), ("E2B_SANDBOX_URL", url),
                        ("E2B_API_KEY", API_KEYS[0])):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("E2B_DOMAIN", raising=False)
    with first.client() as http:
        # 1. Python variables.
        variables = http.post("/v1/sandboxes", json={"metadata": {"role": "vars"}}).json()["id"]
        assert _run(http, variables, "x = 41")["status"] == "ok"
        # 2. A file in the home directory.
        files = http.post("/v1/sandboxes", json={}).json()["id"]
        assert _run(http, files, "open('note.txt', 'w').write('kept')")["status"] == "ok"
    # 3. A code context (E2B).
    with_context = E2BSandbox.create()
    context = with_context.create_code_context()
    assert not with_context.run_code("z = 7", context=context).error
    # 4. A background process (E2B).
    with_process = E2BSandbox.create()
    handle = with_process.commands.run("sleep 600", background=True)
    # 5. An E2B client holding the sandbox's envd access token.
    with_token = E2BSandbox.create()
    with_token.files.write("/home/user/token.txt", "still mine")
    # And one execution in flight during the kill, through the docker executor.
    executor = DockerExecutor(base_url=url, api_key=API_KEYS[0])
    executor.run("import time")
    outcome: dict[str, Any] = {}

    def in_flight() -> None:
        try:
            outcome["execution"] = executor.run(
                "time.sleep(4)\nprint('finished after the kill')\n'result'", timeout_s=60)
        except Exception as exc:  # reported below
            outcome["error"] = exc

    runner = threading.Thread(target=in_flight)
    runner.start()
    time.sleep(1.5)  # the code is running
    before = {c.id for c in _containers(settings["SELFBOX_DEPLOYMENT"])
              if "lease" not in c.name}
    _kill_9(first)

    second = start_server(tmp_path, port=port, **settings)
    try:
        # Every sandbox answers on the first request after readiness, with its state.
        with second.client() as http:
            assert _text(_run(http, variables, "x + 1")) == "42"
            assert http.get(f"/v1/sandboxes/{variables}").json()["metadata"] == {"role": "vars"}
            assert _text(_run(http, files, "open('note.txt').read()")) == "'kept'"
        assert with_context.run_code("z * 6", context=context).text == "42"
        assert handle.pid in [p.pid for p in with_process.commands.list()]
        assert with_token.files.read("/home/user/token.txt") == "still mine"
        assert with_token.run_code("1 + 1").text == "2"
        # The execution in flight: finished by the runner, learnt by the reconnecting caller.
        runner.join(60)
        assert "error" not in outcome, outcome
        execution = outcome["execution"]
        assert execution.status == "interrupted"
        assert execution.stdout == "finished after the kill\n"
        assert execution.results[0].data["text/plain"] == "'result'"
        # The same containers, no new ones; the executor's sandbox goes on working.
        after = {c.id for c in _containers(settings["SELFBOX_DEPLOYMENT"])
                 if "lease" not in c.name}
        assert before <= after
        assert executor.run("time.time() > 0").results[0].data["text/plain"] == "True"
        # An envd token is derived, not stored: a forged one is refused.
        refused = httpx.get(f"{url}/files", params={"path": "/home/user/token.txt"},
                            headers={"E2b-Sandbox-Id": with_token.sandbox_id,
                                     "X-Access-Token": "forged"})
        assert refused.status_code == 401
    finally:
        executor.close()
        for sandbox in (with_context, with_process, with_token):
            sandbox.kill()
        stop_server(second)


def test_a_busy_orphan_stops_within_the_grace_period(
    tmp_path: Path, docker_ready: None, cleanup: list[str],
) -> None:
    """C code holding the GIL, SIGINT ignored, and no server ever again: the watchdog, a
    process of its own, still stops the sandbox."""
    grace_s = 5
    settings = _settings("orphan", SELFBOX_ORPHAN_GRACE_S=str(grace_s))
    cleanup.append(settings["SELFBOX_DEPLOYMENT"])
    live = start_server(tmp_path, **settings)
    with live.client() as http:
        sandbox = http.post("/v1/sandboxes", json={"timeout_s": 3600}).json()["id"]
        busy = ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "sum(range(10**13))")
        with http.stream("POST", f"/v1/sandboxes/{sandbox}/execute/stream",
                         json={"code": busy, "timeout_s": 3600}) as response:
            assert response.status_code == 200
            next(response.iter_lines())  # started
            time.sleep(0.5)
            _kill_9(live)
    killed_at = time.monotonic()
    container = docker.from_env().containers.get(f"selfbox-{sandbox}")
    while time.monotonic() - killed_at < grace_s + 10:
        container.reload()
        if container.status != "running":
            break
        time.sleep(0.25)
    container.reload()
    assert container.status != "running", f"still running {grace_s + 10} s after the kill"
    assert container.attrs["State"]["ExitCode"] == 70  # the relay's orphan exit


def test_one_server_per_deployment_and_a_crashed_one_frees_it_at_once(
    tmp_path: Path, docker_ready: None, cleanup: list[str],
) -> None:
    settings = _settings("lease")
    cleanup.append(settings["SELFBOX_DEPLOYMENT"])
    first = start_server(tmp_path, **settings)
    try:
        with pytest.raises(RuntimeError) as refused:
            start_server(tmp_path, **settings)
        assert "SELFBOX_DEPLOYMENT" in str(refused.value)
        assert first.process.poll() is None  # the first one is untouched
        with first.client() as http:
            sandbox = http.post("/v1/sandboxes", json={}).json()["id"]
        _kill_9(first)
        # No wait for a timeout: the lease's stdin closed with the crashed server's socket.
        successor = start_server(tmp_path, **settings)
        try:
            with successor.client() as http:
                assert _run(http, sandbox, "1 + 1")["status"] == "ok"
        finally:
            stop_server(successor)
    finally:
        stop_server(first)


def test_sigterm_keeps_sandboxes_for_the_next_server(
    tmp_path: Path, docker_ready: None, cleanup: list[str],
) -> None:
    settings = _settings("term")
    cleanup.append(settings["SELFBOX_DEPLOYMENT"])
    first = start_server(tmp_path, **settings)
    with first.client() as http:
        sandbox = http.post("/v1/sandboxes", json={}).json()["id"]
        assert _run(http, sandbox, "kept = 'yes'")["status"] == "ok"
    stop_server(first)
    assert "leaving 1 sandboxes running" in first.log()
    second = start_server(tmp_path, **settings)
    try:
        with second.client() as http:
            assert _text(_run(http, sandbox, "kept")) == "'yes'"
    finally:
        stop_server(second)


def test_a_record_signed_with_another_secret_is_not_adopted(
    tmp_path: Path, docker_ready: None, cleanup: list[str],
) -> None:
    settings = _settings("secret")
    cleanup.append(settings["SELFBOX_DEPLOYMENT"])
    first = start_server(tmp_path, **settings)
    with first.client() as http:
        sandbox = http.post("/v1/sandboxes", json={}).json()["id"]
    _kill_9(first)
    second = start_server(tmp_path, **{**settings, "SELFBOX_STATE_SECRET": "another-" * 6})
    try:
        with second.client() as http:
            assert http.get(f"/v1/sandboxes/{sandbox}").status_code == 404
        assert not [c for c in _containers(settings["SELFBOX_DEPLOYMENT"])
                    if c.name == f"selfbox-{sandbox}"]
    finally:
        stop_server(second)
