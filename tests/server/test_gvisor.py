"""Optional gVisor: with SELFBOX_DOCKER_RUNTIME=runsc, sandboxes run on gVisor's kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import docker
import pytest

from tests.conftest import API_KEYS, start_server, stop_server
from tests.server.test_api import run

pytestmark = pytest.mark.docker


def _runsc_registered() -> bool:
    return "runsc" in (docker.from_env().info().get("Runtimes") or {})


def test_sandbox_on_gvisor(tmp_path: Path, docker_ready: None) -> None:
    if not _runsc_registered():
        pytest.skip("runsc is not registered with Docker (scripts/ensure-docker.sh does it)")
    live = start_server(tmp_path, SELFBOX_DOCKER_RUNTIME="runsc")
    try:
        with live.client() as http:
            created = http.post("/v1/sandboxes", json={"memory_mb": 256})
            assert created.status_code == 201, created.text
            sandbox = created.json()["id"]
            out = run(http, sandbox, "import os\nx = os.uname().release\nprint(os.getuid())")
            assert out["stdout"] == "1000\n"
            # gVisor's Sentry reports its own kernel version, not the host's.
            release = run(http, sandbox, "x")["results"][0]["data"]["text/plain"]
            host_release = docker.from_env().info()["KernelVersion"]
            assert release.strip("'") != host_release
            blocked = run(http, sandbox, "open('/etc/x', 'w')")["error"]["name"]
            assert blocked in ("OSError", "PermissionError")
            assert run(http, sandbox, "open('/home/user/a', 'w').write('ok')")["status"] == "ok"
        # `selfbox check` from inside gVisor: no failure; what gVisor hides is said so.
        check = subprocess.run(
            [sys.executable, "-m", "sandbox_server.cli", "check", "--url", live.url,
             "--api-key", API_KEYS[0]], capture_output=True, text=True, timeout=120)
        report = check.stdout + check.stderr
        assert check.returncode == 0 and "FAIL" not in check.stdout, report
        assert "PASS  memory cap" in check.stdout and "PASS  no-new-privileges" in check.stdout
        assert "gVisor (reports release 4.4.0)" in check.stdout, report
    finally:
        stop_server(live)
