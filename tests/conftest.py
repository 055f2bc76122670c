"""Shared fixtures: the Docker engine, the runtime image, and a live selfbox server.

Docker-backed tests carry the ``docker`` marker. Without an engine they are skipped on a
developer machine, but in CI (``CI=true``) a missing engine is a loud failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from sandbox_server import SandboxManager

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_IMAGE = os.environ.get("SELFBOX_TEST_RUNTIME_IMAGE", "selfbox/runtime:latest")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
API_KEYS = ("test-key-alice", "test-key-bob")


@contextlib.asynccontextmanager
async def inproc_manager(tag: str) -> AsyncIterator[SandboxManager]:
    """A started :class:`SandboxManager` in this process (no pool), on a deployment of its
    own; closed, with its sandboxes, at the end."""
    from sandbox_server import SandboxManager, Settings

    manager = SandboxManager(Settings(api_keys=["k"], warm_pool_size=0,
                                      runtime_image=RUNTIME_IMAGE,
                                      shutdown_keeps_sandboxes=False,
                                      deployment=f"test-{tag}-{os.getpid()}"))
    await manager.start()
    try:
        yield manager
    finally:
        await manager.close()


def _docker_problem() -> str | None:
    try:
        import docker
    except ImportError:
        return "the docker SDK is not installed (pip install 'selfbox[server]')"
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        return f"no Docker engine ({exc}); run scripts/ensure-docker.sh"
    try:
        client.images.get(RUNTIME_IMAGE)
    except Exception:
        return f"runtime image {RUNTIME_IMAGE} missing; run `selfbox images build`"
    return None


@pytest.fixture(scope="session")
def docker_ready() -> None:
    problem = _docker_problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI needs Docker-backed tests to run: {problem}")
        pytest.skip(problem)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path

    def client(self, key: str | None = API_KEYS[0], **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def start_server(tmp_path: Path, port: int | None = None, **settings: str) -> LiveServer:
    """Run ``selfbox serve`` in a subprocess (on ``port``, or a free one); wait until it
    answers."""
    port = port or free_port()
    env = {
        **os.environ,
        "SELFBOX_API_KEYS": ",".join(API_KEYS),
        "SELFBOX_PORT": str(port),
        "SELFBOX_RUNTIME_IMAGE": RUNTIME_IMAGE,
        "SELFBOX_DEPLOYMENT": f"test-{port}",
        # Tests clean up after themselves; durability tests ask for "true".
        "SELFBOX_SHUTDOWN_KEEPS_SANDBOXES": "false",
        **settings,
    }
    log_path = tmp_path / f"server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox_server.cli", "serve"], env=env, cwd=tmp_path,
            stdout=log, stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, env, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited at start:\n{server.log()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not come up:\n{server.log()}")


def stop_server(server: LiveServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            server.process.kill()


@pytest.fixture(scope="session")
def server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One selfbox server for the whole session (fast tests share it)."""
    live = start_server(tmp_path_factory.mktemp("server"), SELFBOX_INTERRUPT_GRACE_S="2")
    yield live
    stop_server(live)


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@pytest.fixture
def sandbox(client: httpx.Client) -> Iterator[str]:
    """A fresh sandbox (killed afterwards), as its id."""
    response = client.post("/v1/sandboxes", json={"memory_mb": 256})
    assert response.status_code == 201, response.text
    sandbox_id: str = response.json()["id"]
    yield sandbox_id
    client.delete(f"/v1/sandboxes/{sandbox_id}")
