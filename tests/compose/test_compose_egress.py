"""Egress policies under ``docker compose``: the gateway is the compose service
``egress-gateway`` (profile ``egress``), sharing its configuration with the server through a
named volume; the server configures it through files and creates nothing privileged."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.compose.test_compose import (
    DEPLOYMENT_LABEL,
    IMAGES,
    Stack,
    compose_problem,
    copy_checkout,
    run,
)
from tests.conftest import IN_CI, free_port
from tests.server import fake_internet

pytestmark = [pytest.mark.compose, pytest.mark.docker, pytest.mark.slow,
              pytest.mark.timeout(1500)]

GATEWAY_IMAGE = "selfbox/egress-gateway:compose-test"
FETCH = ("import json, urllib.request, urllib.error\n"
         "def get(url):\n"
         "    try:\n"
         "        return urllib.request.urlopen(url, timeout=5).status\n"
         "    except urllib.error.HTTPError as e:\n"
         "        return e.code\n"
         "    except Exception as e:\n"
         "        return type(e).__name__\n")


@pytest.fixture
def internet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fake_internet.FakeInternet]:
    problem = fake_internet.problem() or compose_problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI must run the compose egress test: {problem}")
        pytest.skip(problem)
    net = fake_internet.start(tmp_path_factory.mktemp("internet"))
    yield net
    fake_internet.stop(net)


def test_egress_through_the_compose_gateway_service(
        internet: fake_internet.FakeInternet, tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("compose-egress") / "selfbox"
    directory.mkdir()
    copy_checkout(directory)
    project = f"selfboxegress{secrets.token_hex(4)}"
    port = free_port()
    api_key = secrets.token_urlsafe(24)
    env = {
        "COMPOSE_PROJECT_NAME": project,
        "COMPOSE_PROFILES": "egress",  # docs/network.md: how an operator turns it on
        "SELFBOX_DEPLOYMENT": project,
        "SELFBOX_API_KEYS": api_key,
        "SELFBOX_PUBLISH": f"127.0.0.1:{port}",
        "SELFBOX_WARM_POOL_SIZE": "0",
        "SELFBOX_EGRESS_MODE": "open",
        "SELFBOX_EGRESS_UPSTREAM_DNS": internet.dns,
        "SELFBOX_EGRESS_GATEWAY_IMAGE": GATEWAY_IMAGE,
        **IMAGES,
    }
    (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    run("bash", "scripts/compose-setup.sh", cwd=directory, timeout=900)
    stack = Stack(directory, project, f"http://127.0.0.1:{port}", api_key)
    tag = f"selfbox-egress-{project}"
    try:
        stack.compose("up", "-d", "--build", timeout=1200)
        stack.wait_ready()
        assert stack.compose("ps", "-q", "egress-gateway").stdout.strip(), "no gateway service"
        with httpx.Client(base_url=stack.url, timeout=120,
                          headers={"Authorization": f"Bearer {api_key}"}) as client:
            created = client.post("/v1/sandboxes", json={
                "memory_mb": 256,
                "egress": {"allow_out": ["api.allowed.test"], "deny_out": ["0.0.0.0/0"]}})
            if created.status_code != 201:
                logs = stack.compose("logs", "--no-color", "--tail", "60", check=False).stdout
                pytest.fail(f"create: {created.status_code} {created.text}\n{logs}")
            sandbox = created.json()["id"]
            code = FETCH + ("print(json.dumps([get('http://api.allowed.test/'), "
                            "get('http://evil.test/')]))")
            out = client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": code}).json()
            assert out["status"] == "ok", out
            assert json.loads(out["stdout"]) == [200, 403]
            # A new server configures the running gateway again (it restarts on the new
            # configuration): policies work as before.
            stack.compose("restart", "server", timeout=300)
            stack.wait_ready()
            again = client.post("/v1/sandboxes", json={
                "memory_mb": 256,
                "egress": {"allow_out": ["evil.test"], "deny_out": ["0.0.0.0/0"]}})
            assert again.status_code == 201, again.text
            out = client.post(f"/v1/sandboxes/{again.json()['id']}/execute",
                              json={"code": code}).json()
            assert json.loads(out["stdout"]) == [403, 200], out
        # Only the compose service is a gateway: the server started none of its own.
        started = run("docker", "ps", "-q", "--filter",
                      f"label=io.selfbox.egress-gateway={project}").stdout.split()
        assert started == []
    finally:
        down = stack.compose("down", "-v", "--remove-orphans", "--timeout", "60",
                             timeout=300, check=False)
        leftovers = run("docker", "ps", "-aq", "--filter",
                        f"label={DEPLOYMENT_LABEL}={project}").stdout.split()
        if leftovers:
            run("docker", "rm", "-f", *leftovers, check=False)
        networks = run("docker", "network", "ls", "-q", "--filter", f"name={tag}").stdout
        if networks.strip():
            run("docker", "network", "rm", *networks.split(), check=False)
    assert down.returncode == 0, down.stderr[-3000:]
    assert not leftovers and not networks.strip(), "left behind by compose down"
    deadline = time.monotonic() + 10
    while tag in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, "the gateway's host rules were left behind"
        time.sleep(0.2)
