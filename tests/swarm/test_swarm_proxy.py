"""The socket proxy's Swarm configuration (images/socket-proxy/haproxy-swarm.cfg) on the dev
swarm: the API tier's Swarm calls pass through the manager's proxy and a service body must keep
the sandbox hardening; the channel to a sandbox on a worker is an attach through *that
worker's* proxy (which sees the worker's own engine as /var/run/docker.sock); updating a
sandbox service's labels (its state: owner, expiry) leaves its task and its state alone."""

from __future__ import annotations

import contextlib
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.compose.test_socket_proxy import base_image
from tests.conftest import RUNTIME_IMAGE
from tests.swarm.cluster import (
    STATE_DIR,
    WORKERS,
    SandboxSpec,
    manager,
    node_addr,
    node_client,
    remove_services,
    task_node,
    wait_task,
)

pytestmark = [pytest.mark.swarm, pytest.mark.docker, pytest.mark.timeout(300)]

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "images" / "socket-proxy" / "haproxy-swarm.cfg"
IMAGE = "selfbox/socket-proxy:test"  # the same build as tests/compose/test_socket_proxy.py
API = "/v1.41"
WORKER = WORKERS[0]
ECHO = ("python3", "-c", "import sys\nfor line in sys.stdin:\n"
        "    sys.stdout.write(line.upper()); sys.stdout.flush()")


def _wait_ping(url: str, container: Any) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/_ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("proxy did not answer:\n" + container.logs().decode()[-2000:])
        time.sleep(0.2)


@contextlib.contextmanager
def _proxy(engine: docker.DockerClient, **placement: Any) -> Iterator[Any]:
    container = engine.containers.run(
        IMAGE, ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy-swarm.cfg"], detach=True,
        read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
        volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "ro"},
                 str(CONFIG): {"bind": "/etc/haproxy/haproxy-swarm.cfg", "mode": "ro"}},
        labels={"io.selfbox.test": "swarm-proxy"}, **placement,
    )
    try:
        yield container
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def proxies(cluster: None) -> Iterator[tuple[str, str]]:
    """The manager's proxy on a loopback port, and the first worker's on its bridge address."""
    host = manager()
    host.images.build(path=str(REPO_ROOT), dockerfile="images/socket-proxy/Dockerfile",
                      tag=IMAGE, buildargs={"BASE_IMAGE": base_image(host)}, rm=True)
    save = subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE)
    subprocess.run(["docker", "-H", f"unix://{STATE_DIR / WORKER / 'docker.sock'}", "load",
                    "-q"], stdin=save.stdout, check=True, timeout=120, capture_output=True)
    save.wait(10)
    # The worker has no bridge network (its daemon configuration): its proxy uses the node's
    # own network namespace, as a host-network proxy would on a real node.
    with _proxy(host, ports={"2375/tcp": ("127.0.0.1", None)}) as on_manager, \
            _proxy(node_client(WORKER), network_mode="host") as on_worker:
        on_manager.reload()
        port = on_manager.attrs["NetworkSettings"]["Ports"]["2375/tcp"][0]["HostPort"]
        urls = (f"http://127.0.0.1:{port}", f"http://{node_addr(WORKER)}:2375")
        _wait_ping(urls[0], on_manager)
        _wait_ping(urls[1], on_worker)
        yield urls


def _api(url: str) -> docker.APIClient:
    return docker.APIClient(base_url=url.replace("http", "tcp"), version="1.41", timeout=60)


def sandbox_body(name: str, **container: Any) -> dict[str, Any]:
    spec = SandboxSpec(RUNTIME_IMAGE, ECHO, open_stdin=True, constraints=(
        "node.labels.io.selfbox.sandbox==true", f"node.hostname=={WORKER}"))
    template = spec.task_template()
    template["ContainerSpec"].update(container)
    return {"Name": name, "Labels": {"io.selfbox.test": "swarm", "io.selfbox.owner": "alice"},
            "TaskTemplate": template, "Mode": {"Replicated": {"Replicas": 1}}}


def _create(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + API + "/services/create", json=body, timeout=60)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/info"),
    ("GET", "/swarm"),
    ("POST", "/swarm/leave?force=1"),
    ("GET", "/swarm/unlockkey"),
    ("POST", "/nodes/abc/update?version=1"),
    ("DELETE", "/nodes/abc"),
    ("GET", "/services"),  # listing only with selfbox's label filter
    ("GET", "/services/selfbox_api"),  # the stack's own services are not the API tier's
    ("DELETE", "/services/selfbox_socket-proxy"),
    ("POST", "/services/selfbox_api/update?version=1"),
    ("GET", "/services/selfbox-x/logs"),
    ("GET", "/tasks"),  # the tasks of sandbox services (or the proxies) only
    ("GET", "/secrets"),
    ("POST", "/secrets/create"),
    ("GET", "/configs"),
    ("POST", "/containers/create"),
    ("POST", "/containers/abc/start"),
    ("POST", "/containers/abc/exec"),
    ("GET", "/containers/json"),
    ("POST", "/images/create?fromImage=alpine"),
    ("POST", "/networks/create"),
    ("GET", "/events"),
    ("GET", "/services/../info"),
])
def test_denies_what_the_api_tier_does_not_need(proxies: tuple[str, str], method: str,
                                                path: str) -> None:
    for url in proxies:
        for prefix in ("", API):
            response = httpx.request(method, url + prefix + path, content=b"{}")
            assert response.status_code == 403, (url, method, prefix + path)
    assert httpx.get(proxies[0] + "/v1.40/version").status_code == 403


@pytest.mark.parametrize(("change", "value"), [
    ("CapabilityAdd", ["NET_ADMIN"]),
    ("CapabilityDrop", ["NET_RAW"]),
    ("ReadOnly", None),
    ("User", "0:0"),
    ("User", None),
    ("Mounts", [{"Type": "bind", "Source": "/", "Target": "/host"}]),
    ("Mounts", [{"Type": "volume", "Source": "data", "Target": "/data"}]),
    ("Privileges", {"SELinuxContext": {"Disable": True}}),
    ("Sysctls", {"net.ipv4.ip_forward": "1"}),
    ("Secrets", [{"SecretName": "x", "SecretID": "y", "File": {"Name": "x"}}]),
])
def test_refuses_an_unhardened_sandbox_service(proxies: tuple[str, str], change: str,
                                               value: Any) -> None:
    body = sandbox_body(f"selfbox-test-{uuid.uuid4().hex[:8]}", **{change: value})
    if value is None:
        del body["TaskTemplate"]["ContainerSpec"][change]
    assert _create(proxies[0], body).status_code == 403


@pytest.mark.parametrize("change", ["name", "constraint", "network", "port", "global"])
def test_refuses_a_service_that_is_not_a_sandbox(proxies: tuple[str, str], change: str) -> None:
    body = sandbox_body(f"selfbox-test-{uuid.uuid4().hex[:8]}")
    if change == "name":
        body["Name"] = "test-not-selfbox"
    elif change == "constraint":  # must land only on nodes with the sandbox daemon config
        body["TaskTemplate"]["Placement"]["Constraints"] = [f"node.hostname=={WORKER}"]
    elif change == "network":
        body["TaskTemplate"]["Networks"] = [{"Target": "selfbox_docker-api"}]
    elif change == "port":
        body["EndpointSpec"] = {"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]}
    else:
        body["Mode"] = {"Global": {}}
    assert _create(proxies[0], body).status_code == 403


def _read_exact(sock: Any, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("attach stream closed")
        data.extend(chunk)
    return bytes(data)


def _echo(sock: Any, line: bytes) -> bytes:
    sock.sendall(line)
    out = bytearray()
    while b"\n" not in out:
        header = _read_exact(sock, 8)
        (size,) = struct.unpack(">I", header[4:])
        chunk = _read_exact(sock, size)
        if header[0] == 1:
            out.extend(chunk)
    return bytes(out)


def test_sandbox_service_through_the_proxies_attach_and_label_update(
        proxies: tuple[str, str]) -> None:
    on_manager, on_worker = proxies
    name = f"selfbox-test-{uuid.uuid4().hex[:8]}"
    created = _create(on_manager, sandbox_body(name))
    assert created.status_code == 201, created.text
    try:
        swarm = _api(on_manager)
        assert [s["Spec"]["Name"] for s in swarm.services(
            filters={"label": "io.selfbox.owner=alice"})] == [name]
        task = wait_task(manager(), name, {"running"}, timeout_s=60)
        assert task_node(manager(), task) == WORKER
        assert [t["ID"] for t in swarm.tasks(filters={"service": name})] == [task["ID"]]
        container_id = task["Status"]["ContainerStatus"]["ContainerID"]

        # The channel: attach on the node that runs the task, through that node's proxy.
        node = _api(on_worker)
        assert node.inspect_container(container_id)["Config"]["OpenStdin"] is True
        wrapped = node.attach_socket(container_id,
                                     params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        sock = getattr(wrapped, "_sock", wrapped)
        sock.settimeout(20)
        assert _echo(sock, b"state kept\n") == b"STATE KEPT\n"

        # Labels are the sandbox's state (owner, expiry): updating them must not replace the
        # task (which would lose everything in it).
        service = swarm.inspect_service(name)
        spec = service["Spec"]
        spec["Labels"] = {**spec["Labels"], "io.selfbox.expires-at": "2000000000"}
        updated = httpx.post(on_manager + API + f"/services/{name}/update",
                             params={"version": service["Version"]["Index"]}, json=spec)
        assert updated.status_code == 200, updated.text
        assert swarm.inspect_service(name)["Spec"]["Labels"]["io.selfbox.expires-at"] \
            == "2000000000"
        time.sleep(1)  # a replacement task would be scheduled within this
        assert [t["ID"] for t in swarm.tasks(filters={"service": name})] == [task["ID"]]
        assert _echo(sock, b"still here\n") == b"STILL HERE\n"
        sock.close()

        deleted = httpx.delete(on_manager + API + f"/services/{name}")
        assert deleted.status_code == 200, deleted.text
    finally:
        remove_services(manager())
