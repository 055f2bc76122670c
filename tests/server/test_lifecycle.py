"""Lifecycle: lifetime expiry, caps, containers dying from outside, crash-safe restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import docker
import httpx
import pytest

from tests.conftest import (
    API_KEYS,
    LiveServer,
    inproc_manager,
    start_server,
    stop_server,
)
from tests.server.test_api import run

pytestmark = pytest.mark.docker

LABEL = "io.selfbox.deployment"


def containers_of(server: LiveServer) -> list[str]:
    """Containers of the server's deployment (its warm pool's included)."""
    # The low-level list: the high-level one inspects each container, and on an engine shared
    # with other tests a container may vanish between the list and the inspect.
    deployment = server.env["SELFBOX_DEPLOYMENT"]
    found = docker.from_env().api.containers(all=True,
                                             filters={"label": f"{LABEL}={deployment}"})
    return [c["Id"] for c in found]


def wait_for(predicate, timeout_s: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_sandbox_expires_after_its_lifetime(client: httpx.Client, server: LiveServer) -> None:
    sandbox = client.post("/v1/sandboxes", json={"timeout_s": 2}).json()["id"]
    assert run(client, sandbox, "1")["status"] == "ok"
    assert wait_for(lambda: client.get(f"/v1/sandboxes/{sandbox}").json()["state"] == "expired")
    gone = client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": "1"})
    assert gone.status_code == 410
    assert "lifetime" in gone.json()["message"]
    docker_client = docker.from_env()
    # The low-level list: the high-level one inspects each container, which races the removal.
    assert wait_for(lambda: not docker_client.api.containers(
        all=True, filters={"name": f"selfbox-{sandbox}"}))


def test_container_killed_from_outside_is_reported(client: httpx.Client) -> None:
    sandbox = client.post("/v1/sandboxes", json={}).json()["id"]
    docker.from_env().containers.get(f"selfbox-{sandbox}").kill()
    assert wait_for(lambda: client.get(f"/v1/sandboxes/{sandbox}").json()["state"] == "dead")
    response = client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": "1"})
    assert response.status_code == 410
    assert "exited with code 137" in response.json()["message"]
    assert client.delete(f"/v1/sandboxes/{sandbox}").status_code == 204


def test_caps_answer_429_naming_the_cap(tmp_path: Path, docker_ready: None) -> None:
    live = start_server(tmp_path, SELFBOX_MAX_SANDBOXES="3", SELFBOX_MAX_SANDBOXES_PER_KEY="2")
    try:
        with live.client(API_KEYS[0]) as alice, live.client(API_KEYS[1]) as bob:
            assert alice.post("/v1/sandboxes", json={}).status_code == 201
            assert alice.post("/v1/sandboxes", json={}).status_code == 201
            third = alice.post("/v1/sandboxes", json={})
            assert third.status_code == 429
            assert "SELFBOX_MAX_SANDBOXES_PER_KEY" in third.json()["message"]
            assert bob.post("/v1/sandboxes", json={}).status_code == 201
            global_cap = bob.post("/v1/sandboxes", json={})
            assert global_cap.status_code == 429
            assert "SELFBOX_MAX_SANDBOXES" in global_cap.json()["message"]
    finally:
        stop_server(live)
    # A clean shutdown removes every sandbox container.
    assert containers_of(live) == []


def test_no_container_leaks_after_kill_9_and_restart(tmp_path: Path, docker_ready: None) -> None:
    first = start_server(tmp_path, SELFBOX_STATE_SECRET="s" * 40)
    with first.client() as http:
        ids = [http.post("/v1/sandboxes", json={}).json()["id"] for _ in range(2)]
        assert run(http, ids[0], "x = 1")["status"] == "ok"
    left = containers_of(first)
    names = {name.lstrip("/") for c in docker.from_env().api.containers(all=True)
             if c["Id"] in left for name in c["Names"]}
    assert {f"selfbox-{sid}" for sid in ids} <= names
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(10)
    assert set(left) <= set(containers_of(first))  # left behind by the crash

    # Same deployment name: the new instance adopts what the dead one left (the pool's too),
    # and a sandbox whose container died meanwhile is removed, not adopted.
    docker.from_env().containers.get(f"selfbox-{ids[1]}").kill()
    second = start_server(tmp_path, SELFBOX_DEPLOYMENT=first.env["SELFBOX_DEPLOYMENT"],
                          SELFBOX_STATE_SECRET="s" * 40)
    try:
        with second.client() as http:
            assert run(http, ids[0], "x + 1")["results"][0]["data"]["text/plain"] == "2"
            assert http.get(f"/v1/sandboxes/{ids[1]}").status_code == 404
            fresh = http.post("/v1/sandboxes", json={}).json()["id"]
            assert run(http, fresh, "1 + 1")["status"] == "ok"
        names = {name.lstrip("/") for c in docker.from_env().api.containers(all=True)
                 if c["Id"] in containers_of(second) for name in c["Names"]}
        assert f"selfbox-{ids[0]}" in names and f"selfbox-{ids[1]}" not in names
    finally:
        stop_server(second)  # SELFBOX_SHUTDOWN_KEEPS_SANDBOXES=false in tests
    assert containers_of(second) == []


def test_sandboxes_stop_when_the_server_dies(tmp_path: Path, docker_ready: None) -> None:
    """Crash safety: a sandbox whose server does not come back within the orphan grace
    period stops by itself (its watchdog process, beside the runner)."""
    live = start_server(tmp_path, SELFBOX_ORPHAN_GRACE_S="5")
    with live.client() as http:
        sandbox = http.post("/v1/sandboxes", json={"timeout_s": 600}).json()["id"]
    os.kill(live.process.pid, signal.SIGKILL)
    live.process.wait(10)
    container = docker.from_env().containers.get(f"selfbox-{sandbox}")
    try:
        container.wait(timeout=20)
        container.reload()
        assert container.status == "exited"
    finally:
        # No server of this deployment will start again to sweep: clean up here (its lease
        # container too, which carries no deployment label).
        lease = f"selfbox-lease-{live.env['SELFBOX_DEPLOYMENT']}"
        for leftover in [*containers_of(live), lease]:
            subprocess.run(["docker", "rm", "-f", leftover], capture_output=True)


def test_sigterm_shutdown_cleans_up_in_bounded_time(tmp_path: Path, docker_ready: None) -> None:
    live = start_server(tmp_path, SELFBOX_SHUTDOWN_TIMEOUT_S="10")
    with live.client() as http:
        for _ in range(3):
            assert http.post("/v1/sandboxes", json={}).status_code == 201
    started = time.monotonic()
    live.process.send_signal(signal.SIGTERM)
    live.process.wait(30)
    assert time.monotonic() - started < 15
    assert containers_of(live) == []


def test_a_consumer_that_stops_after_the_final_event_leaves_the_sandbox_free(
    docker_ready: None,
) -> None:
    import asyncio

    from executors.models import SandboxSpec

    async def scenario() -> None:
        async with inproc_manager("inproc") as manager:
            sandbox = await manager.create("owner", SandboxSpec())
            events = manager.execute(sandbox, "x = 1\nx")
            async for event in events:
                if event["type"] == "execution":
                    break  # stop reading; the generator is left suspended
            async def second() -> dict:
                async for event in manager.execute(sandbox, "x + 1"):
                    last = event
                return last

            last = await asyncio.wait_for(second(), 10)  # not blocked by the first run
            assert last["execution"]["results"][0]["data"]["text/plain"] == "2"
            assert sandbox.alive
            await events.aclose()

    asyncio.run(scenario())
