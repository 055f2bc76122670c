"""selfbox deployed on the dev swarm (``swarm-dev.sh deploy``) with the server's Swarm back end:
the images this tree needs (the runner and server from the tree, over the base images), loaded
into every worker; the stack; its endpoints and key. Shared by tests/swarm and
benchmarks/bench_swarm.py."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import docker
import httpx

from tests.conftest import RUNTIME_IMAGE
from tests.swarm.cluster import REPO_ROOT, STATE_DIR, WORKERS, manager, node_addr, run_script

SERVER_BASE = os.environ.get("SELFBOX_TEST_SERVER_IMAGE", "selfbox/server:latest")
SERVER_IMAGE = "selfbox/server:swarm-test"
SANDBOX_IMAGE = "selfbox/runtime:swarm-test"
PROXY_IMAGE = "selfbox/socket-proxy:test"  # the same build as tests/compose/test_socket_proxy
STACK = "selfbox"
API_PORT = 18000


@dataclass(frozen=True)
class Stack:
    endpoints: tuple[str, ...]  # one per API replica (host-mode port on each worker)
    key: str

    def client(self, index: int = 0, timeout_s: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.endpoints[index], timeout=timeout_s,
                            headers={"Authorization": f"Bearer {self.key}"})


def _build(tag: str, dockerfile: str, base: str) -> None:
    subprocess.run(["docker", "build", "-q", "--build-arg", f"BASE={base}", "-t", tag, "-f",
                    dockerfile, str(REPO_ROOT)], check=True, capture_output=True, timeout=600)


def build_images() -> None:
    _build(SANDBOX_IMAGE, "images/swarm/runtime-overlay.Dockerfile", RUNTIME_IMAGE)
    _build(SERVER_IMAGE, "images/swarm/server-overlay.Dockerfile", SERVER_BASE)
    # This tree's server over an older image may lack a dependency added since: say so.
    check = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python3", SERVER_IMAGE,
                            "-c", "import sandbox_server.app"],
                           capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        raise RuntimeError(
            f"{SERVER_BASE} lacks what this tree's server imports (rebuild it: `selfbox images "
            f"build server`, or set SELFBOX_TEST_SERVER_IMAGE): {check.stderr[-500:]}")
    try:
        manager().images.get(PROXY_IMAGE)
    except docker.errors.ImageNotFound:
        from tests.compose.test_socket_proxy import base_image

        host = manager()
        host.images.build(path=str(REPO_ROOT), dockerfile="images/socket-proxy/Dockerfile",
                          tag=PROXY_IMAGE, buildargs={"BASE_IMAGE": base_image(host)}, rm=True)


def deploy(**env: str) -> Stack:
    """Build and load the images, deploy the stack, wait for every replica's /healthz."""
    build_images()
    images = f"{SANDBOX_IMAGE} {SERVER_IMAGE} {PROXY_IMAGE}"
    run_script("load", timeout_s=300, SBX_SWARM_IMAGES=images)
    run_script("deploy", timeout_s=300, SELFBOX_SERVER_IMAGE=SERVER_IMAGE,
               SELFBOX_RUNTIME_IMAGE=SANDBOX_IMAGE, SELFBOX_SOCKET_PROXY_IMAGE=PROXY_IMAGE,
               SBX_SWARM_STACK=STACK, SBX_SWARM_API_PORT=str(API_PORT), **env)
    key = (STATE_DIR / "api-key").read_text().strip()
    return Stack(tuple(f"http://{node_addr(w)}:{API_PORT}" for w in WORKERS), key)


def remove() -> None:
    """The stack and every sandbox service; bounded."""
    subprocess.run(["docker", "stack", "rm", STACK], capture_output=True, timeout=60)
    api = manager().api
    for service in api.services(filters={"label": "io.selfbox.managed=true"}):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_service(service["ID"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and api.services(filters={"name": STACK + "_"}):
        time.sleep(0.5)


def sandbox_node(sandbox_id: str) -> str:
    """The hostname of the node that runs a sandbox's task, from Swarm."""
    api = manager().api
    tasks = api.tasks(filters={"service": f"selfbox-{sandbox_id}"})
    running = [t for t in tasks if t["Status"]["State"] == "running"]
    assert running, f"sandbox {sandbox_id} has no running task: {tasks}"
    node: dict[str, Any] = api.inspect_node(running[0]["NodeID"])
    return str(node["Description"]["Hostname"])


def execute(client: httpx.Client, sandbox_id: str, code: str) -> dict[str, Any]:
    response = client.post(f"/v1/sandboxes/{sandbox_id}/execute",
                           json={"code": code, "timeout_s": 60})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result
