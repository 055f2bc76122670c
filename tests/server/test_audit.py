"""``selfbox check`` audits a live deployment from inside one of its sandboxes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sandbox_server.audit import judge
from tests.conftest import API_KEYS, LiveServer


@pytest.mark.docker
def test_check_passes_against_a_hardened_server(server: LiveServer) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sandbox_server.cli", "check", "--url", server.url,
         "--api-key", API_KEYS[0]], capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")]
    for name in ("non-root user", "no capabilities", "read-only root file system", "no network",
                 "pids cap", "memory cap", "cpu quota", "no Docker socket",
                 "seccomp profile (no io_uring)"):
        assert any(line.startswith("PASS") and name in line for line in lines), name


@pytest.mark.docker
def test_check_reports_a_bad_key(server: LiveServer) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sandbox_server.cli", "check", "--url", server.url,
         "--api-key", "wrong"], capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "401" in out.stderr


def test_judge_flags_a_weak_sandbox() -> None:
    facts = {"uid": 0, "cap_eff": "00000000a80425fb", "cap_bnd": "00000000a80425fb",
             "no_new_privs": "0", "root_writable": True, "tmp_mb": 10**6, "home_mb": 10**6,
             "interfaces": ["lo", "eth0"], "routes": 2, "reached": [], "docker_socket": True,
             "pids_max": "max", "memory_max": "9223372036854771712", "cpu_quota": "-1",
             "secrets_in_env": ["AWS_SECRET_ACCESS_KEY"]}
    findings = judge(facts, {"disk_mb": 256, "network": "none"})
    failed = {f.name for f in findings if f.verdict == "FAIL"}
    assert failed == {"non-root user", "no capabilities", "no-new-privileges",
                      "read-only root file system", "writable space capped", "no network",
                      "no Docker socket", "pids cap", "memory cap", "cpu quota",
                      "no secrets in the environment", "seccomp profile (no io_uring)"}
