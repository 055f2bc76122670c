"""The filtering Docker socket proxy (images/socket-proxy): what the server needs passes,
the rest of the Docker API is 403, and a container-create body must stay hardened."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI

docker = pytest.importorskip("docker")

from sandbox_server.driver import ContainerSpec, DockerDriver, label  # noqa: E402
from sandbox_server.exceptions import SandboxError  # noqa: E402

pytestmark = [pytest.mark.docker]

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = "selfbox/socket-proxy:test"
API = "/v1.41"


def base_image(client: Any) -> str:
    """The base the other images use here: a local Debian base when no registry is reachable."""
    wanted = os.environ.get("SELFBOX_BASE_IMAGE")
    if wanted:
        return wanted
    for candidate in ("selfbox/base:bookworm", "python:3.11-slim"):
        try:
            client.images.get(candidate)
            return candidate
        except docker.errors.ImageNotFound:
            continue
    return "python:3.11-slim"


@pytest.fixture(scope="module")
def proxy() -> Iterator[str]:
    """The proxy image, built from this checkout and run on a loopback port: its base URL."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"CI needs Docker-backed tests to run: {exc}")
        pytest.skip(f"no Docker engine: {exc}")
    client.images.build(path=str(REPO_ROOT), dockerfile="images/socket-proxy/Dockerfile",
                        tag=IMAGE, buildargs={"BASE_IMAGE": base_image(client)}, rm=True)
    with run_proxy(client) as url:
        yield url


@contextlib.contextmanager
def run_proxy(client: Any, config: Path | None = None) -> Iterator[str]:
    """Run the proxy image on a loopback port (optionally with another haproxy.cfg)."""
    volumes = {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "ro"}}
    if config is not None:
        volumes[str(config)] = {"bind": "/etc/haproxy/haproxy.cfg", "mode": "ro"}
    container = client.containers.run(
        IMAGE, detach=True, read_only=True, cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"], volumes=volumes,
        ports={"2375/tcp": ("127.0.0.1", None)}, labels={"io.selfbox.test": "socket-proxy"},
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["2375/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/_ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("proxy did not answer:\n" + container.logs().decode()[-2000:])
            time.sleep(0.2)
        yield url
    finally:
        container.remove(force=True)


@pytest.fixture
def driver(proxy: str) -> DockerDriver:
    return DockerDriver(docker.DockerClient(base_url=proxy.replace("http", "tcp"), timeout=60))


def spec(**overrides: Any) -> ContainerSpec:
    fields: dict[str, Any] = dict(
        image=IMAGE, labels={label("deployment"): "socket-proxy-test"}, cpu=0.5,
        memory_mb=64, pids=32, disk_mb=16,
        command=("python3", "-c",
                 "import sys; sys.stdout.write(sys.stdin.readline().upper()); sys.stdout.flush()"),
    )
    fields.update(overrides)
    return ContainerSpec(**fields)


def test_allows_what_the_server_needs(proxy: str) -> None:
    assert httpx.get(proxy + "/_ping").text == "OK"
    assert httpx.get(proxy + API + "/_ping").status_code == 200
    assert "ApiVersion" in httpx.get(proxy + "/version").json()
    filters = json.dumps({"label": [f"{label('deployment')}=nobody"]})
    assert httpx.get(proxy + API + "/containers/json", params={"filters": filters}).json() == []
    assert httpx.get(proxy + API + f"/images/{IMAGE}/json").status_code == 200


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/containers/abc/exec"),
    ("POST", "/exec/abc/start"),
    ("POST", "/build"),
    ("POST", "/images/create?fromImage=alpine"),
    ("POST", "/images/selfbox/runtime/push"),
    ("DELETE", "/images/selfbox/runtime:latest"),
    ("GET", "/containers/json"),  # listing only with selfbox's label filter
    ("PUT", "/containers/abc/archive?path=/"),
    ("GET", "/containers/abc/archive?path=/etc/passwd"),
    ("GET", "/containers/abc/export"),
    ("POST", "/containers/abc/update"),
    ("POST", "/commit?container=abc"),
    ("GET", "/volumes"),
    ("POST", "/volumes/create"),
    ("POST", "/networks/create"),  # without an egress network's body
    ("POST", "/networks/abc/connect"),
    ("GET", "/swarm"),
    ("GET", "/info"),
    ("GET", "/events"),
    ("POST", "/system/prune"),
    ("POST", "/plugins/pull"),
    ("POST", "/auth"),
    ("POST", "/session"),
    ("GET", "/containers/../info"),
    ("GET", "/containers/abc/%2e%2e/%2e%2e/info"),
])
def test_denies_everything_else(proxy: str, method: str, path: str) -> None:
    for prefix in ("", API):
        response = httpx.request(method, proxy + prefix + path, content=b"{}")
        assert response.status_code == 403, (method, prefix + path, response.status_code)


def test_denies_old_api_versions(proxy: str) -> None:
    # Before v1.24, POST /containers/{id}/start could carry a HostConfig (privileged...).
    assert httpx.get(proxy + "/v1.23/version").status_code == 403
    assert httpx.post(proxy + "/v1.23/containers/abc/start",
                      json={"Privileged": True}).status_code == 403
    assert httpx.post(proxy + API + "/containers/abc/start",
                      json={"Privileged": True}).status_code == 403


def test_hardened_container_attach_start_and_remove(driver: DockerDriver) -> None:
    """The server's own calls, attach included: a hijacked, long-lived stream through haproxy."""
    container_id = driver.create(spec(), None)
    try:
        assert driver.inspect(container_id)["HostConfig"]["ReadonlyRootfs"] is True
        sock = driver.attach(container_id)
        driver.start(container_id)
        sock.sendall(b"hello through the proxy\n")
        sock.settimeout(20)
        out = bytearray()
        while b"\n" not in out:
            header = _read(sock, 8)
            (size,) = struct.unpack(">I", header[4:])
            chunk = _read(sock, size)
            if header[0] == 1:
                out.extend(chunk)
        assert bytes(out) == b"HELLO THROUGH THE PROXY\n"
        sock.close()
        assert container_id in {c["Id"] for c in driver.list(
            {label("deployment"): "socket-proxy-test"})}
        driver.stats(container_id)
        # A pooled sandbox is renamed when claimed (see sandbox_server/records.py).
        name = f"selfbox-proxy-test-{container_id[:12]}"
        driver.rename(container_id, name)
        assert driver.inspect(container_id)["Name"] == f"/{name}"
    finally:
        driver.remove(container_id)
    assert driver.list({label("deployment"): "socket-proxy-test"}) == []


def _echo_line(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line)
    sock.settimeout(20)
    out = bytearray()
    while b"\n" not in out:
        header = _read(sock, 8)
        (size,) = struct.unpack(">I", header[4:])
        chunk = _read(sock, size)
        if header[0] == 1:
            out.extend(chunk)
    return bytes(out)


def test_attach_stream_outlives_the_request_timeouts(proxy: str, driver: DockerDriver,
                                                     tmp_path: Path) -> None:
    """An idle sandbox's attach stream is governed by `timeout tunnel`, not by the client and
    server timeouts: with those at 1 s, the stream still works after 4 s of silence.

    Only the attach goes through the 1 s proxy: creating, starting and removing the container
    take the regular one, as on a busy host a create can take longer than a second."""
    config = (REPO_ROOT / "images" / "socket-proxy" / "haproxy.cfg").read_text()
    short = config.replace("timeout client 120s", "timeout client 1s").replace(
        "timeout server 120s", "timeout server 1s")
    assert short != config
    path = tmp_path / "haproxy.cfg"
    path.write_text(short)
    path.chmod(0o644)
    client = docker.from_env(timeout=60)
    loop = ("python3", "-c", "import sys\nfor line in sys.stdin:\n"
            "    sys.stdout.write(line.upper()); sys.stdout.flush()")
    container_id = driver.create(spec(command=loop), None)
    try:
        with run_proxy(client, path) as url:
            quick = DockerDriver(docker.DockerClient(base_url=url.replace("http", "tcp"),
                                                     timeout=60))
            sock = _attach_through_short_timeouts(quick, container_id)
            driver.start(container_id)
            assert _echo_line(sock, b"first\n") == b"FIRST\n"
            time.sleep(4)
            assert _echo_line(sock, b"after a pause\n") == b"AFTER A PAUSE\n"
            sock.close()
    finally:
        driver.remove(container_id)


def _attach_through_short_timeouts(quick: DockerDriver, container_id: str) -> socket.socket:
    """The attach handshake itself may meet the 1 s server timeout on a busy engine (a 504
    from haproxy): that is not what the test is about, so it is tried again, a few times."""
    for attempt in range(5):
        try:
            return quick.attach(container_id)
        except SandboxError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, docker.errors.APIError) and cause.status_code == 504
                    and attempt < 4):
                raise
    raise AssertionError("unreachable")


def _read(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("attach stream closed")
        data.extend(chunk)
    return bytes(data)


def _create_body(driver: DockerDriver) -> dict[str, Any]:
    """The JSON body the server's driver sends for a hardened sandbox."""
    hardened = spec()
    return {
        "Image": hardened.image, "Cmd": list(hardened.command), "User": "1000:1000",
        "Labels": hardened.labels, "OpenStdin": True, "NetworkDisabled": True,
        "HostConfig": hardened.host_config(driver.api),
    }


def _mutations() -> list[tuple[str, Any]]:
    return [
        ("privileged", lambda b: b["HostConfig"].update(Privileged=True)),
        ("lower-case key", lambda b: b["HostConfig"].update(privileged=True)),
        ("cap-add", lambda b: b["HostConfig"].update(CapAdd=["SYS_ADMIN"])),
        ("bind mount", lambda b: b["HostConfig"].update(Binds=["/:/host"])),
        ("mounts", lambda b: b["HostConfig"].update(
            Mounts=[{"Type": "bind", "Source": "/", "Target": "/host"}])),
        ("devices", lambda b: b["HostConfig"].update(
            Devices=[{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}])),
        ("host network", lambda b: b["HostConfig"].update(NetworkMode="host")),
        ("joined network", lambda b: b["HostConfig"].update(NetworkMode="container:abc")),
        ("host pid", lambda b: b["HostConfig"].update(PidMode="host")),
        ("host userns", lambda b: b["HostConfig"].update(UsernsMode="host")),
        ("root user", lambda b: b.update(User="0:0")),
        ("writable root", lambda b: b["HostConfig"].update(ReadonlyRootfs=False)),
        ("no cap-drop", lambda b: b["HostConfig"].pop("CapDrop")),
        ("no no-new-privileges", lambda b: b["HostConfig"].update(SecurityOpt=[])),
        ("seccomp unconfined", lambda b: b["HostConfig"]["SecurityOpt"].append(
            "seccomp=unconfined")),
        ("internal network", lambda b: b.update(
            NetworkingConfig={"EndpointsConfig": {"selfbox_docker-api": {}}})),
    ]


@pytest.mark.parametrize(("name", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_denies_unhardened_create(proxy: str, driver: DockerDriver, name: str,
                                  mutate: Any) -> None:
    body = _create_body(driver)
    mutate(body)
    response = httpx.post(proxy + API + "/containers/create", json=body)
    assert response.status_code == 403, (name, response.text)


def test_denies_escaped_keys_and_unbuffered_bodies(proxy: str, driver: DockerDriver) -> None:
    text = json.dumps(_create_body(driver))
    # "Privil\u0065ged" decodes to Privileged in the engine; the pattern would not see it.
    sneaky = text.replace('"HostConfig": {', '"HostConfig": {"Privil\\u0065ged": true, ', 1)
    assert httpx.post(proxy + API + "/containers/create", content=sneaky,
                      headers={"content-type": "application/json"}).status_code == 403

    def chunks() -> Iterator[bytes]:
        yield text.encode()

    response = httpx.post(proxy + API + "/containers/create", content=chunks(),
                          headers={"content-type": "application/json"})
    assert response.status_code == 403  # chunked: not buffered whole, so not checked


def test_allows_the_hardened_create_body(proxy: str, driver: DockerDriver) -> None:
    response = httpx.post(proxy + API + "/containers/create", json=_create_body(driver))
    assert response.status_code == 201, response.text
    driver.remove(response.json()["Id"])


def test_the_egress_network_and_its_resolv_conf_bind_pass(proxy: str,
                                                          driver: DockerDriver) -> None:
    """What SELFBOX_EGRESS_GATEWAY=external needs (compose): the egress network by name, and
    sandboxes with the gateway's resolv.conf from a named volume's data directory."""
    name = "selfbox-egress-proxytest"
    try:
        gateway = driver.ensure_network(name, "sbxeg-pxtest", {"io.selfbox.test": "proxy"})
        assert gateway
        assert driver.ensure_network(name, "sbxeg-pxtest", {}) == gateway  # inspect by name
        dns = "/var/lib/docker/volumes/x_egress-config/_data/dep/resolv.conf"
        body = _create_body(driver)
        body["HostConfig"].update(NetworkMode=name, Binds=[f"{dns}:/etc/resolv.conf:ro"])
        response = httpx.post(proxy + API + "/containers/create", json=body)
        assert response.status_code == 201, response.text
        driver.remove(response.json()["Id"])
        # Any other bind, or a second one, is still refused.
        for binds in ([f"{dns}:/etc/resolv.conf"], ["/etc/resolv.conf:/etc/resolv.conf:ro"],
                      [f"{dns}:/etc/resolv.conf:ro", "/:/host"],
                      ["/var/lib/docker/volumes/x/_data/../../../../etc/resolv.conf:"
                       "/etc/resolv.conf:ro"]):
            body["HostConfig"].update(Binds=binds)
            refused = httpx.post(proxy + API + "/containers/create", json=body)
            assert refused.status_code == 403, binds
    finally:
        driver.remove_network(name)
    # Other networks, or the egress network's name without its hardening: refused.
    good = {"Name": "selfbox-egress-x", "Driver": "bridge", "Internal": True,
            "Options": {"com.docker.network.bridge.enable_icc": "false"}}
    bad = [
        {**good, "Name": "other"},
        {**good, "Internal": False},
        {**good, "Driver": "macvlan"},
        {**good, "Options": {}},
        {**good, "IPAM": {"Config": [{"Subnet": "10.0.0.0/8"}]}},
        {**good, "Attachable": True},
    ]
    for body in bad:
        assert httpx.post(proxy + API + "/networks/create", json=body).status_code == 403, body
    dup = json.dumps(good)[:-1] + ', "Internal": false}'
    assert httpx.post(proxy + API + "/networks/create", content=dup,
                      headers={"content-type": "application/json"}).status_code == 403
    for method, path in (("GET", "/networks/other"), ("DELETE", "/networks/bridge"),
                         ("POST", "/networks/selfbox-egress-x/connect")):
        assert httpx.request(method, proxy + API + path).status_code == 403, path
