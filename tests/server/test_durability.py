"""Sandboxes outlive the server: adoption after ``kill -9``, the orphan watchdog, the lease.

Real Docker, real servers in subprocesses. Each test uses its own deployment name and removes
what it created (a server that never comes back leaves containers that only its watchdog or a
successor would remove).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
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
            "SELFBOX_WARM_POOL_SIZE": "0",
            "SELFBOX_SHUTDOWN_KEEPS_SANDBOXES": "true", **extra}


class Listed:
    """A container as the low-level list shows it (the high-level list inspects each one,
    which races with removals on a shared engine)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.id: str = raw["Id"]
        self.name: str = (raw.get("Names") or ["/"])[0].lstrip("/")


def _containers(deployment: str) -> list[Listed]:
    api = docker.from_env().api
    found = api.containers(all=True, filters={"label": f"io.selfbox.deployment={deployment}"})
    found += api.containers(all=True, filters={"name": f"selfbox-lease-{deployment}"})
    return [Listed(raw) for raw in found]


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
    with first.client() as http:
        claimed = {f"selfbox-{sb['id']}" for sb in http.get("/v1/sandboxes").json()}
    assert len(claimed) == 6
    # Every claimed sandbox and every pooled one under its pool name; not a pooled one already
    # renamed for its claim (the pool's "primed" one: a new server must remove it, see pool.py).
    listed = [c for c in _containers(settings["SELFBOX_DEPLOYMENT"]) if "lease" not in c.name]
    before = {c.id for c in listed if c.name in claimed or c.name.startswith("selfbox-pool-")}
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
        # The warm pool was adopted too (it may have grown past its resting size: the creates
        # above came as a burst).
        assert re.search(r"and [1-9][0-9]* pooled", second.log())
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
            paused = http.post("/v1/sandboxes", json={}).json()["id"]
            assert _run(http, paused, "frozen = 'yes'")["status"] == "ok"
            e2b = {"X-API-Key": API_KEYS[0]}
            assert httpx.post(f"{first.url}/sandboxes/{paused}/pause",
                              headers=e2b).status_code == 204
        _kill_9(first)
        # No wait for a timeout: the lease's stdin closed with the crashed server's socket.
        successor = start_server(tmp_path, **settings)
        try:
            with successor.client() as http:
                assert _run(http, sandbox, "1 + 1")["status"] == "ok"
                # A paused sandbox is adopted paused (thawed only for its resync).
                assert http.get(f"/v1/sandboxes/{paused}").json()["state"] == "paused"
                assert httpx.post(f"{successor.url}/sandboxes/{paused}/connect", json={},
                                  headers=e2b).status_code == 201  # resumed
                assert _text(_run(http, paused, "frozen")) == "'yes'"
        finally:
            stop_server(successor)
    finally:
        stop_server(first)


def test_sigterm_keeps_sandboxes_for_the_next_server(
    tmp_path: Path, docker_ready: None, cleanup: list[str],
) -> None:
    """A SIGTERM (compose restart, upgrade) leaves the sandboxes, and code running in them
    runs on: not interrupted when the server cuts the stream, recovered by the next server."""
    port = free_port()
    settings = _settings("term", SELFBOX_SHUTDOWN_TIMEOUT_S="1")
    cleanup.append(settings["SELFBOX_DEPLOYMENT"])
    first = start_server(tmp_path, port=port, **settings)
    executor = DockerExecutor(base_url=first.url, api_key=API_KEYS[0])
    try:
        executor.run("kept = 'yes'")
        outcome: dict[str, Any] = {}
        runner = threading.Thread(target=lambda: outcome.update(execution=executor.run(
            "import time\ntime.sleep(4)\nprint('ran on')\nkept")))
        runner.start()
        time.sleep(1)
        stop_server(first)  # SIGTERM; the stream is cut after SELFBOX_SHUTDOWN_TIMEOUT_S
        assert "leaving 1 sandboxes running" in first.log()
        second = start_server(tmp_path, port=port, **settings)
        try:
            runner.join(60)
            execution = outcome["execution"]
            assert execution.status == "interrupted", execution
            assert execution.stdout == "ran on\n" and execution.error is None
            assert executor.run("kept").results[0].data["text/plain"] == "'yes'"
            executor.close()
        finally:
            stop_server(second)
    finally:
        with contextlib.suppress(Exception):
            executor.close()


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


class DockerProxy:
    """A TCP front for the Docker socket that the test can restart, dropping every
    connection, as a restart of compose's socket proxy does."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect("/var/run/docker.sock")
            with self._lock:
                self._conns += [client, engine]
            for src, dst in ((client, engine), (engine, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def test_a_dropped_channel_is_attached_again_without_losing_output(
    tmp_path: Path, docker_ready: None, cleanup: list[str],
) -> None:
    """A restart of the Docker socket proxy drops every attach stream while the containers
    run: the server attaches again, the runner replays what was sent meanwhile, and the run in
    flight ends normally; the lease is taken again."""
    proxy = DockerProxy(free_port())
    proxy.start()
    settings = _settings("proxy", DOCKER_HOST=f"tcp://127.0.0.1:{proxy.port}")
    cleanup.append(settings["SELFBOX_DEPLOYMENT"])
    live = start_server(tmp_path, **settings)
    try:
        with live.client() as http:
            sandbox = http.post("/v1/sandboxes", json={}).json()["id"]
            events: list[dict[str, Any]] = []
            code = ("import time\nprint('before', flush=True)\ntime.sleep(3)\n"
                    "print('during the outage', flush=True)\ntime.sleep(2)\n'end'")
            with http.stream("POST", f"/v1/sandboxes/{sandbox}/execute/stream",
                             json={"code": code}) as response:
                lines = response.iter_lines()
                while not any(e.get("text") == "before\n" for e in events):
                    events.append(json.loads(next(lines)))
                proxy.stop()
                time.sleep(4)  # "during the outage" is printed with no one attached
                proxy.start()
                for line in lines:
                    events.append(json.loads(line))
            execution = events[-1]["execution"]
            assert execution["status"] == "ok", execution
            assert execution["stdout"] == "before\nduring the outage\n"
            assert execution["results"][0]["data"]["text/plain"] == "'end'"
            assert _text(_run(http, sandbox, "6 * 7")) == "42"
        # The lease was taken again: a second server still refuses.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "taking over the lease" not in live.log():
            time.sleep(0.2)
        with pytest.raises(RuntimeError):
            stop_server(start_server(tmp_path, **settings))
    finally:
        stop_server(live)
        proxy.stop()


def test_a_claimed_sandbox_cannot_pass_for_a_pooled_one(
    tmp_path: Path, docker_ready: None, cleanup: list[str],
) -> None:
    """User code that puts back a (validly signed) pool record — say, found in freed memory —
    does not get its sandbox handed to another user after a restart: a claimed sandbox was
    renamed out of the pool, and a pool record is believed only under a pool name."""
    from sandbox_server.records import RECORD_VERSION, sign

    settings = _settings("replay", SELFBOX_WARM_POOL_SIZE="1")
    cleanup.append(settings["SELFBOX_DEPLOYMENT"])
    first = start_server(tmp_path, **settings)
    with first.client() as http:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not [  # pooled (perhaps renamed ahead already)
                c for c in _containers(settings["SELFBOX_DEPLOYMENT"]) if "lease" not in c.name]:
            time.sleep(0.2)
        sandbox = http.post("/v1/sandboxes", json={}).json()
        assert sandbox["template"] == first.env["SELFBOX_RUNTIME_IMAGE"]
        container = docker.from_env().containers.get(f"selfbox-{sandbox['id']}")  # renamed
        pool_record = sign(SECRET.encode(), {
            "v": RECORD_VERSION, "deployment": settings["SELFBOX_DEPLOYMENT"],
            "id": sandbox["id"], "owner": "pool", "template": sandbox["template"],
            "metadata": {}, "limits": {"cpu": 1.0, "memory_mb": 512, "pids": 256,
                                       "disk_mb": 256, "network": "none"},
            "created_at": time.time(), "expires_at": time.time() + 3600, "extra": {}})
        code = ("import gc\nfrom selfbox_runner.outbox import Outbox\n"
                "box = next(o for o in gc.get_objects() if isinstance(o, Outbox))\n"
                f"box.record = {pool_record!r}\nprint('replayed')")
        assert _run(http, sandbox["id"], code)["stdout"] == "replayed\n"
    _kill_9(first)
    second = start_server(tmp_path, **settings)
    try:
        assert "its record and its name disagree" in second.log()
        with pytest.raises(docker.errors.NotFound):
            container.reload()
    finally:
        stop_server(second)


def _pool_names(deployment: str) -> tuple[set[str], set[str]]:
    """Pooled containers' names: (still under a pool name, already renamed for a claim)."""
    names = {c.name for c in _containers(deployment) if "lease" not in c.name}
    pooled = {n for n in names if n.startswith("selfbox-pool-")}
    return pooled, names - pooled


def _wait_pool(deployment: str, pooled: int, primed: int) -> tuple[set[str], set[str]]:
    deadline = time.monotonic() + 60
    found: tuple[set[str], set[str]] = (set(), set())
    while time.monotonic() < deadline:
        found = _pool_names(deployment)
        if (len(found[0]), len(found[1])) == (pooled, primed):
            return found
        time.sleep(0.1)
    raise AssertionError(f"pool never had {pooled} pooled and {primed} renamed: {found}")


def test_a_sandbox_renamed_ahead_of_its_claim_is_named_back_on_sigterm_and_removed_after_a_crash(
    tmp_path: Path, docker_ready: None, cleanup: list[str],
) -> None:
    """The pool renames its next claim ahead of demand (which then makes no engine call); a
    graceful restart adopts every pooled sandbox, a crash all but that one."""
    settings = _settings("primed", SELFBOX_WARM_POOL_SIZE="3")
    deployment = settings["SELFBOX_DEPLOYMENT"]
    cleanup.append(deployment)
    first = start_server(tmp_path, **settings)
    with first.client() as http:
        _, primed = _wait_pool(deployment, pooled=2, primed=1)
        claimed = http.post("/v1/sandboxes", json={}).json()["id"]
        assert primed == {f"selfbox-{claimed}"}  # claimed under the name it already had
        _wait_pool(deployment, pooled=2, primed=2)  # refilled, the next one renamed
    stop_server(first)  # SIGTERM: every unclaimed one gets its pool name back
    pooled, renamed = _pool_names(deployment)
    assert renamed == {f"selfbox-{claimed}"} and len(pooled) == 3

    second = start_server(tmp_path, **settings)
    try:
        assert "and 3 pooled" in second.log()
        pooled, primed = _wait_pool(deployment, pooled=2, primed=2)
        kept = {c.id for c in _containers(deployment) if c.name in pooled}
    finally:
        _kill_9(second)
    third = start_server(tmp_path, **settings)
    try:
        assert "and 2 pooled" in third.log()
        after = {c.id: c.name for c in _containers(deployment)}
        assert kept <= after.keys()  # the ones under their pool names were adopted ...
        assert not (primed - {f"selfbox-{claimed}"}) & set(after.values())  # ... not this one
        with third.client() as http:
            assert _run(http, claimed, "1 + 1")["results"][0]["data"]["text/plain"] == "2"
    finally:
        stop_server(third)
