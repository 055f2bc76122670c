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


GOOD_GVISOR = {"uid": 1000, "cap_eff": "0" * 16, "cap_bnd": "0" * 16, "no_new_privs": "",
               "no_new_privs_prctl": 1, "root_writable": False, "tmp_mb": 100, "home_mb": 100,
               "interfaces": ["lo"], "routes": 0, "reached": [], "docker_socket": False,
               "pids_max": None, "memory_max": None, "cpu_quota": None, "gvisor": True,
               "kernel": "4.4.0", "mem_total_kb": 262144, "secrets_in_env": [],
               "denied_syscalls": {"io_uring_setup": "allowed", "bpf": 1}}


def test_judge_under_gvisor_proves_what_it_can_and_says_what_it_cannot() -> None:
    sandbox = {"disk_mb": 256, "network": "none", "memory_mb": 256}
    findings = {f.name: f for f in judge(GOOD_GVISOR, sandbox)}
    assert not [f for f in findings.values() if f.verdict == "FAIL"]
    assert findings["no-new-privileges"].verdict == "PASS"  # from prctl: no status line
    assert findings["memory cap"].verdict == "PASS"  # gVisor's MemTotal is the limit
    for name in ("pids cap", "cpu quota", "seccomp profile (no io_uring)"):
        assert findings[name].verdict == "INFO" and "gVisor" in findings[name].detail
    # A limit gVisor shows larger than the sandbox's, or no-new-privs off: failures.
    weak = {**GOOD_GVISOR, "mem_total_kb": 24 * 2**20, "no_new_privs_prctl": 0}
    failed = {f.name for f in judge(weak, sandbox) if f.verdict == "FAIL"}
    assert failed == {"memory cap", "no-new-privileges"}
