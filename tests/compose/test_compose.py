"""``docker compose up`` on a copy of this checkout: the README flow through the published port,
/metrics; a sandbox that keeps its state through ``restart server``, a restart of the socket
proxy and an upgrade (``up -d --build`` after a change to the server image); then ``down``,
after which no sandbox keeps running past the orphan grace period."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI, free_port

pytestmark = [pytest.mark.compose, pytest.mark.docker, pytest.mark.slow,
              pytest.mark.timeout(1500)]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT_LABEL = "io.selfbox.deployment"
# Fixed tags: repeated runs reuse the images instead of piling up new ones. Checkouts tested
# side by side on one engine need their own (SELFBOX_COMPOSE_TEST_TAG), or one's build
# replaces the other's images mid-test.
_TAG = os.environ.get("SELFBOX_COMPOSE_TEST_TAG", "compose-test")
IMAGES = {
    "SELFBOX_RUNTIME_IMAGE": f"selfbox/runtime:{_TAG}",
    "SELFBOX_SERVER_IMAGE": f"selfbox/server:{_TAG}",
    "SELFBOX_SOCKET_PROXY_IMAGE": f"selfbox/socket-proxy:{_TAG}",
}


ORPHAN_GRACE_S = 20  # restarts below must be back within it; `down` waits for it


def run(*args: str, cwd: Path | None = None, timeout: float = 900,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    # Compose lets the caller's environment override .env: keep only what .env says.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SELFBOX_", "COMPOSE_"))}
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def compose_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client; run scripts/ensure-docker.sh"
    if run("docker", "info", check=False, timeout=60).returncode != 0:
        return "no Docker engine; run scripts/ensure-docker.sh"
    if run("docker", "compose", "version", check=False, timeout=60).returncode != 0:
        return "no Docker Compose v2; run scripts/install-compose.sh"
    return None


def image_exists(tag: str) -> bool:
    return run("docker", "image", "inspect", tag, check=False, timeout=60).returncode == 0


def copy_checkout(target: Path) -> None:
    """The working tree's tracked files (a fresh clone, with uncommitted edits), or the last
    commit with SELFBOX_COMPOSE_SOURCE=head (a shared checkout mid-edit by someone else)."""
    if os.environ.get("SELFBOX_COMPOSE_SOURCE", "worktree") == "head":
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO_ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        return
    listed = run("git", "ls-files", "-z", cwd=REPO_ROOT).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@dataclass
class Stack:
    directory: Path
    project: str
    url: str
    api_key: str

    def compose(self, *args: str, timeout: float = 900,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("docker", "compose", *args, cwd=self.directory, timeout=timeout,
                   check=check)

    def sandbox_containers(self) -> set[str]:
        listed = run("docker", "ps", "-aq", "--no-trunc", "--filter",
                     f"label={DEPLOYMENT_LABEL}={self.project}").stdout
        return set(listed.split())

    def running_sandboxes(self) -> set[str]:
        listed = run("docker", "ps", "-q", "--no-trunc", "--filter",
                     f"label={DEPLOYMENT_LABEL}={self.project}").stdout
        return set(listed.split())

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(self.url + "/readyz", timeout=5)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.5)
        logs = self.compose("logs", "--no-color", "--tail", "80", check=False).stdout
        raise AssertionError(f"the stack did not get ready: {last}\n{logs}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    problem = compose_problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI needs the compose test to run: {problem}")
        pytest.skip(problem)
    directory = tmp_path_factory.mktemp("compose") / "selfbox"
    directory.mkdir()
    copy_checkout(directory)
    project = f"selfboxtest{secrets.token_hex(4)}"
    port = free_port()
    api_key = secrets.token_urlsafe(24)
    env = {
        "COMPOSE_PROJECT_NAME": project,
        "SELFBOX_DEPLOYMENT": project,
        "SELFBOX_API_KEYS": api_key,
        "SELFBOX_PUBLISH": f"127.0.0.1:{port}",
        "SELFBOX_WARM_POOL_SIZE": "1",
        "SELFBOX_ORPHAN_GRACE_S": str(ORPHAN_GRACE_S),
        **IMAGES,
    }
    if os.environ.get("SELFBOX_BASE_IMAGE"):
        env["SELFBOX_BASE_IMAGE"] = os.environ["SELFBOX_BASE_IMAGE"]
    (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    # The README's step: the base image (local when no registry answers) and, behind a
    # TLS-intercepting proxy, the host's CA bundle for the builds, detected.
    run("bash", "scripts/compose-setup.sh", cwd=directory, timeout=900)
    written = (directory / ".env").read_text()
    assert "\nSELFBOX_BASE_IMAGE=" in written and "\nSELFBOX_TRUST_HOST_CA=" in written
    live = Stack(directory, project, f"http://127.0.0.1:{port}", api_key)
    try:
        started = time.monotonic()
        live.compose("up", "-d", "--build", timeout=1200)
        live.wait_ready()
        print(f"compose up + ready in {time.monotonic() - started:.1f} s")
        yield live
    finally:
        down = live.compose("down", "-v", "--remove-orphans", "--timeout", "60", timeout=300,
                            check=False)
        # `down` is a SIGTERM like a restart: the sandboxes are left for a next server and
        # stop by themselves once the orphan grace period is over.
        deadline = time.monotonic() + ORPHAN_GRACE_S + 15
        while live.running_sandboxes() and time.monotonic() < deadline:
            time.sleep(1)
        running = live.running_sandboxes()
        leftovers = live.sandbox_containers()
        if leftovers:  # never leave sandbox containers on the host, whatever failed
            run("docker", "rm", "-f", *leftovers, check=False)
        assert down.returncode == 0, down.stderr[-3000:]
        assert not running, f"sandboxes still running after compose down + grace: {running}"


def test_readme_flow_metrics_restart_and_down(stack: Stack) -> None:
    from executors import create_executor

    # The server image: non-root, healthy, JSON logs.
    server_id = stack.compose("ps", "-q", "server").stdout.strip()
    inspected = run("docker", "inspect", "-f", "{{.Config.User}} {{.State.Health.Status}}",
                    server_id).stdout.split()
    assert inspected[0] not in ("", "0", "root") and not inspected[0].startswith("0:")
    assert inspected[1] in ("healthy", "starting")

    # The README flow, through the published port.
    with create_executor("docker", base_url=stack.url, api_key=stack.api_key,
                         memory_mb=512) as ex:
        ex.run("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})")
        assert ex.run("int(df.a.sum())").text == "3"  # state is kept
        failed = ex.run("1 / 0")
        assert failed.status == "error" and failed.error is not None
        assert failed.error.name == "ZeroDivisionError"

    # A request id is echoed; an unauthenticated call is counted as an error.
    response = httpx.get(stack.url + "/v1/sandboxes", headers={"X-Request-ID": "compose-1"})
    assert response.status_code == 401 and response.headers["x-request-id"] == "compose-1"
    metrics = httpx.get(stack.url + "/metrics").text
    assert 'selfbox_executions_total{status="ok"} 2.0' in metrics
    assert 'selfbox_executions_total{status="error"} 1.0' in metrics
    assert "selfbox_sandboxes_created_total" in metrics
    assert 'selfbox_http_errors_total{kind="unauthorized",status="401"} 1.0' in metrics
    logs = stack.compose("logs", "--no-color", "server").stdout
    records = [json.loads(line.split("| ", 1)[1]) for line in logs.splitlines()
               if "| {" in line]
    assert any(record.get("request_id") == "compose-1" and record.get("status") == 401
               for record in records)

    # Sandboxes outlive the server: through a restart of the server, a restart of the socket
    # proxy (every attach stream drops) and an upgrade (a changed server image, recreated).
    client = httpx.Client(base_url=stack.url, timeout=60,
                          headers={"Authorization": f"Bearer {stack.api_key}"})
    created = client.post("/v1/sandboxes", json={"memory_mb": 256})
    assert created.status_code == 201, created.text
    sandbox = created.json()["id"]

    def run_code(code: str) -> dict[str, object]:
        answer = client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": code})
        assert answer.status_code == 200, answer.text
        result: dict[str, object] = answer.json()
        return result

    assert run_code("kept = 1")["status"] == "ok"
    before = stack.sandbox_containers()
    assert before, "the live sandbox has no container with the deployment label"

    stack.compose("restart", "server", timeout=300)
    stack.wait_ready()
    assert run_code("kept += 1; kept")["results"] == [
        {"data": {"text/plain": "2"}, "is_main_result": True}]

    stack.compose("restart", "socket-proxy", timeout=300)
    stack.wait_ready()
    assert run_code("kept += 1; kept")["results"][0]["data"] == {"text/plain": "3"}  # type: ignore[index]

    old_server = stack.compose("ps", "-q", "server").stdout.strip()
    dockerfile = stack.directory / "images" / "server" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nLABEL io.selfbox.test-upgrade=1\n")
    stack.compose("up", "-d", "--build", timeout=1200)
    stack.wait_ready()
    assert stack.compose("ps", "-q", "server").stdout.strip() != old_server  # recreated
    assert run_code("kept += 1; kept")["results"][0]["data"] == {"text/plain": "4"}  # type: ignore[index]
    assert before <= stack.sandbox_containers()  # the same containers, adopted each time

    # Still serving new sandboxes.
    with create_executor("docker", base_url=stack.url, api_key=stack.api_key) as ex:
        assert ex.run("6 * 7").text == "42"
    client.close()
