"""No 5xx from anything a sandbox or a client can do: text that is not UTF-8 encodable, limits
the engine would not enforce, sandbox states (pids exhausted, a cgroup that will not freeze,
a container that is ending), file errors."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import docker
import httpx
import pytest

from sandbox_server.driver import ContainerSpec, DockerDriver, label
from sandbox_server.exceptions import Conflict
from sandbox_server.limits import MIN_CPU
from sandbox_server.runner.capture import StreamCapture
from tests.conftest import RUNTIME_IMAGE
from tests.server.test_api import run
from tests.server.test_isolation import RAW

SURROGATE_CELLS = {
    "result": "display({'text/plain': 'name-\\udcff'}, raw=True)",
    "exception": "raise ValueError('bad name \\udcff')",
    "final_answer": "final_answer('answer \\udcff')",
    "listdir": "import os\nopen(b'/tmp/caf\\xe9', 'w').close()\n"
               "display({'text/plain': str(os.listdir('/tmp'))}, raw=True)",
}


@pytest.mark.docker
@pytest.mark.parametrize("cell", sorted(SURROGATE_CELLS))
def test_lone_surrogates_are_escaped_not_a_500(client: httpx.Client, sandbox: str,
                                               cell: str) -> None:
    out = run(client, sandbox, SURROGATE_CELLS[cell])
    text = str(out)
    assert "\\udcff" in text or "\\udce9" in text, out  # visible, as backslashreplace writes
    streamed = client.post(f"/v1/sandboxes/{sandbox}/execute/stream",
                           json={"code": SURROGATE_CELLS[cell]})
    assert streamed.status_code == 200
    assert streamed.text.strip().splitlines()[-1].startswith('{"type":"execution"')


@pytest.mark.docker
def test_forged_frames_with_surrogate_escapes_are_rendered(client: httpx.Client,
                                                           sandbox: str) -> None:
    # JSON escapes of lone surrogates, written past the runner, and NaN (not JSON).
    code = RAW + (
        "raw(b'{\"type\":\"result\",\"id\":\"' + _eid.encode() + "
        "b'\",\"data\":{\"text/plain\":\"x\\\\udcff\\\\ud800\"},\"is_main_result\":false}\\n')\n"
        "raw(b'{\"type\":\"result\",\"id\":\"' + _eid.encode() + "
        "b'\",\"data\":{\"text/plain\":NaN},\"is_main_result\":false}\\n')\n"
        "import time\ntime.sleep(0.5)\n"
    )
    out = run(client, sandbox, code)
    assert [r["data"]["text/plain"] for r in out["results"]] == ["x\\udcff\\ud800"]


@pytest.mark.docker
@pytest.mark.e2b
def test_e2b_stream_stays_well_formed_with_surrogates(server: Any, monkeypatch: Any) -> None:
    from e2b_code_interpreter import Sandbox

    from tests.conftest import API_KEYS
    monkeypatch.setenv("E2B_API_URL", server.url)
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url)
    monkeypatch.setenv("E2B_API_KEY", API_KEYS[0])
    sbx = Sandbox.create()
    try:
        failed = sbx.run_code("raise ValueError('bad \\udcff')")
        assert failed.error is not None and failed.error.value == "bad \\udcff"
        shown = sbx.run_code("display({'text/plain': 'x\\udcff'}, raw=True)\n1")
        assert shown.results[0].text == "x\\udcff" and shown.text == "1"
        with pytest.raises(Exception) as refused:
            sbx.files.write("/usr/evil.txt", "x")  # a read-only path: EROFS
        assert "500" not in str(refused.value)
        status = httpx.post(f"{server.url}/files", params={"path": "/usr/evil.txt"},
                            headers={"X-Access-Token": sbx._envd_access_token or "",
                                     "E2b-Sandbox-Id": sbx.sandbox_id},
                            files={"file": ("evil.txt", b"x")}).status_code
        assert status == 403
    finally:
        sbx.kill()


@pytest.mark.docker
@pytest.mark.parametrize("cpu", [1e-9, 5e-6, 0.001, 0.009, 0.049])
def test_a_cpu_below_what_the_engine_enforces_is_refused(client: httpx.Client,
                                                         cpu: float) -> None:
    response = client.post("/v1/sandboxes", json={"cpu": cpu})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["details"]["limit"] == "cpu" and str(MIN_CPU) in body["message"]


@pytest.mark.docker
def test_the_least_cpu_is_a_quota_the_engine_enforces(docker_ready: None) -> None:
    # The container (not the runner, whose start at a few % of a CPU depends on the host's
    # load) starts with the least cpu a request may ask for, as a real CFS quota.
    driver = DockerDriver()
    spec = ContainerSpec(image=RUNTIME_IMAGE, labels={label("test"): "iso9"}, cpu=MIN_CPU,
                         memory_mb=64, pids=16, disk_mb=16, command=("sleep", "5"))
    container = driver.create(spec, f"selfbox-iso9-cpu-{os.getpid()}")
    try:
        driver.start(container)
        info = driver.inspect(container)
        assert info["HostConfig"]["NanoCpus"] == int(MIN_CPU * 1e9)
        assert info["State"]["Running"] or info["State"]["ExitCode"] == 0
    finally:
        driver.remove(container)


@pytest.mark.docker
def test_an_environment_too_large_to_exec_is_refused(client: httpx.Client) -> None:
    env = {f"VAR_{i}": "v" * 50_000 for i in range(256)}
    response = client.post("/v1/sandboxes", json={"env": env})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["details"]["limit"] == "env" and "SELFBOX_MAX_ENV_BYTES" in body["message"]
    e2b = client.post("/sandboxes", json={"templateID": "base", "envVars": env})
    assert e2b.status_code == 422, e2b.text


@pytest.mark.docker
def test_requests_to_a_sandbox_whose_pids_are_exhausted_answer_409(
        client: httpx.Client) -> None:
    sandbox = client.post("/v1/sandboxes", json={"pids": 32, "memory_mb": 256}).json()["id"]
    bomb = (
        "import os, time\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(8)\n"
        "            os._exit(0)\n"
        "    except OSError:\n"
        "        break\n"
        "time.sleep(8)\n"
    )
    runner = threading.Thread(target=lambda: client.post(
        f"/v1/sandboxes/{sandbox}/execute", json={"code": bomb, "timeout_s": 30}))
    try:
        runner.start()
        time.sleep(3)  # the bomb has taken every pid by now
        with httpx.Client(base_url=str(client.base_url), headers=client.headers,
                          timeout=25) as http:
            answer = http.put(f"/v1/sandboxes/{sandbox}/variables",
                              json={"variables": {"x": 1}})
        assert answer.status_code == 409, answer.text
        assert answer.json()["error_code"] == "sandbox_unresponsive"
        assert "pids" in answer.json()["message"]
        paused = client.post(f"/sandboxes/{sandbox}/pause")
        assert paused.status_code < 500, paused.text
        if paused.status_code == 204:
            client.post(f"/sandboxes/{sandbox}/connect", json={"timeout": 60})
    finally:
        runner.join(60)
        after = run(client, sandbox, "print('alive')", timeout_s=30)
        assert after["stdout"] == "alive\n", after  # no drain marker in it either
        client.delete(f"/v1/sandboxes/{sandbox}")


@pytest.mark.docker
def test_pause_and_stats_of_a_container_that_is_not_running_are_conflicts(
        docker_ready: None) -> None:
    driver = DockerDriver()
    spec = ContainerSpec(image=RUNTIME_IMAGE, labels={label("test"): "iso9"}, cpu=0.5,
                         memory_mb=64, pids=16, disk_mb=16)
    container = driver.create(spec, f"selfbox-iso9-test-{os.getpid()}")
    try:
        with pytest.raises(Conflict):
            driver.pause(container)  # created, never started: the engine answers 409
        with pytest.raises(Conflict):
            driver.unpause(container)
    finally:
        driver.remove(container)


@pytest.mark.docker
def test_metrics_of_a_sandbox_killed_from_outside_never_500(client: httpx.Client) -> None:
    sandbox = client.post("/v1/sandboxes", json={"memory_mb": 128}).json()["id"]
    docker.from_env().api.kill(f"selfbox-{sandbox}")
    statuses = {client.get(f"/sandboxes/{sandbox}/metrics").status_code for _ in range(10)}
    assert all(status < 500 for status in statuses), statuses
    client.delete(f"/v1/sandboxes/{sandbox}")


def test_stale_drain_markers_never_reach_the_output() -> None:
    got: list[str] = []
    spare = os.open(os.devnull, os.O_WRONLY)
    capture = StreamCapture(spare, "stdout", lambda name, text: got.append(text))
    try:
        # A marker whose drain timed out (a busy sandbox) arrives after a newer one was set.
        os.write(spare, b"before\x00selfbox-drain-0123456789abcdef\x00after ")
        event = capture.mark()
        assert event is not None and event.wait(5)
        assert "".join(got) == "before" + "after "
    finally:
        os.close(spare)
