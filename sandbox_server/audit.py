"""``selfbox check``: audit a running deployment from inside one of its own sandboxes.

Creates a sandbox through the public API, runs a probe in it, and reports each hardening
property as PASS or FAIL (and a few facts as INFO). Operators run it against their own server,
after an upgrade or a configuration change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["PROBE", "Finding", "audit", "judge"]

GVISOR_VERSION = "#1 SMP Sun Jan 10 15:06:54 PST 2016"

# Runs inside the sandbox (standard library only); prints one JSON object.
PROBE = f"GVISOR_VERSION = {GVISOR_VERSION!r}\n" + r'''
import json, os, socket
facts = {}
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines()
              if ":" in line)
facts["uid"] = os.getuid()
facts["cap_eff"] = status["CapEff"].strip()
facts["cap_bnd"] = status["CapBnd"].strip()
facts["no_new_privs"] = status.get("NoNewPrivs", "").strip()
facts["seccomp"] = status.get("Seccomp", "").strip()
try:
    open("/usr/.selfbox-probe", "w").close()
    facts["root_writable"] = True
except OSError:
    facts["root_writable"] = False
def size_mb(path):
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize // 2**20
facts["tmp_mb"] = size_mb("/tmp")
facts["home_mb"] = size_mb(os.path.expanduser("~"))
facts["interfaces"] = [name for _, name in socket.if_nameindex()]
routes = open("/proc/net/route").read().splitlines()[1:]
facts["routes"] = len(routes)
# 192.0.2.1 is TEST-NET-1 (reserved for documentation): a connect there without a route
# fails at once, and with one it proves egress without touching anybody's host.
try:
    socket.create_connection(("192.0.2.1", 9), timeout=1).close()
    facts["reached"] = ["192.0.2.1:9"]
except OSError as exc:
    facts["reached"] = [] if exc.errno in (101, 113) else [f"192.0.2.1: {exc}"]
facts["docker_socket"] = any(os.path.exists(p) for p in
                             ("/var/run/docker.sock", "/run/docker.sock"))
def first(*paths):
    for path in paths:
        try:
            return open(path).read().split()[0]
        except OSError:
            continue
    return None
facts["pids_max"] = first("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max")
facts["memory_max"] = first("/sys/fs/cgroup/memory.max",
                            "/sys/fs/cgroup/memory/memory.limit_in_bytes")
quota = first("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
facts["cpu_quota"] = quota
facts["kernel"] = os.uname().release
# gVisor's kernel has a fixed version string; inside it there are no cgroup files, and
# /proc/meminfo's total is the container's memory limit.
facts["gvisor"] = GVISOR_VERSION in open("/proc/version").read()
meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo").read().splitlines()
               if ":" in line)
facts["mem_total_kb"] = int(meminfo.get("MemTotal", "0 kB").split()[0])
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
facts["no_new_privs_prctl"] = libc.prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS: any kernel
# Syscalls selfbox's seccomp profile denies (x86_64 and aarch64 numbers): what each returns.
numbers = {"x86_64": {"io_uring_setup": 425, "userfaultfd": 323, "bpf": 321,
                      "perf_event_open": 298, "keyctl": 250},
           "aarch64": {"io_uring_setup": 425, "userfaultfd": 282, "bpf": 280,
                       "perf_event_open": 241, "keyctl": 219}}.get(platform.machine(), {})
facts["denied_syscalls"] = {}
params = ctypes.create_string_buffer(120)
for name, number in numbers.items():
    ctypes.set_errno(0)
    args = {"io_uring_setup": (1, params), "keyctl": (0, 0, 0)}.get(name, (0, 0, 0, 0, 0))
    result = libc.syscall(number, *args)
    facts["denied_syscalls"][name] = ctypes.get_errno() if result == -1 else "allowed"
facts["secrets_in_env"] = sorted(k for k in os.environ
                                 if any(w in k.upper() for w in ("KEY", "TOKEN", "SECRET",
                                                                "PASSWORD", "SELFBOX")))
print(json.dumps(facts))
'''


@dataclass
class Finding:
    verdict: str  # PASS, FAIL or INFO
    name: str
    detail: str


def _unlimited(value: Any) -> bool:
    return value in (None, "max", "-1") or (str(value).isdigit() and int(value) >= 2**62)


def judge(facts: dict[str, Any], sandbox: dict[str, Any]) -> list[Finding]:
    """Turn the probe's facts into findings (I/O-free)."""
    findings: list[Finding] = []

    def check(ok: bool, name: str, detail: str) -> None:
        findings.append(Finding("PASS" if ok else "FAIL", name, detail))

    check(facts.get("uid") != 0, "non-root user", f"uid={facts.get('uid')}")
    no_caps = int(facts.get("cap_eff", "1"), 16) == 0 and int(facts.get("cap_bnd", "1"), 16) == 0
    check(no_caps, "no capabilities",
          f"CapEff={facts.get('cap_eff')} CapBnd={facts.get('cap_bnd')}")
    check(facts.get("no_new_privs") == "1" or facts.get("no_new_privs_prctl") == 1,
          "no-new-privileges", f"NoNewPrivs={facts.get('no_new_privs')} "
          f"prctl={facts.get('no_new_privs_prctl')}")
    check(not facts.get("root_writable"), "read-only root file system", "/usr is not writable")
    disk = int(sandbox.get("disk_mb", 0))
    capped = facts.get("tmp_mb", 10**9) <= disk + 1 and facts.get("home_mb", 10**9) <= disk + 1
    check(capped, "writable space capped",
          f"/tmp {facts.get('tmp_mb')} MiB, home {facts.get('home_mb')} MiB (disk_mb={disk})")
    if sandbox.get("network") == "none":
        isolated = (facts.get("interfaces") == ["lo"] and not facts.get("routes")
                    and not facts.get("reached"))
        check(isolated, "no network", f"interfaces={facts.get('interfaces')} "
              f"routes={facts.get('routes')} egress={facts.get('reached')}")
    check(not facts.get("docker_socket"), "no Docker socket", "no docker.sock inside")
    check(not facts.get("secrets_in_env"), "no secrets in the environment",
          f"suspicious names: {facts.get('secrets_in_env')}")
    if facts.get("gvisor"):
        findings.extend(_judge_gvisor(facts, sandbox))
        return findings
    check(not _unlimited(facts.get("pids_max")), "pids cap", f"pids.max={facts.get('pids_max')}")
    check(not _unlimited(facts.get("memory_max")), "memory cap",
          f"memory limit={facts.get('memory_max')}")
    check(not _unlimited(facts.get("cpu_quota")), "cpu quota", f"quota={facts.get('cpu_quota')}")
    denied = facts.get("denied_syscalls") or {}
    # EPERM from the profile, or ENOSYS (a kernel without the call).
    allowed = sorted(name for name, errno in denied.items() if errno not in (1, 38))
    check(bool(denied) and not allowed, "seccomp profile (no io_uring)",
          f"allowed: {allowed}" if allowed else
          ", ".join(f"{name}=errno {errno}" for name, errno in sorted(denied.items()))
          or "not probed (unknown architecture)")
    findings.append(Finding("INFO", "seccomp mode", f"Seccomp={facts.get('seccomp')} "
                            "(2 = filtering; gVisor reports its own)"))
    findings.append(Finding("INFO", "kernel", f"release {facts.get('kernel')} "
                            "(gVisor reports 4.4.0)"))
    return findings


def _judge_gvisor(facts: dict[str, Any], sandbox: dict[str, Any]) -> list[Finding]:
    """Inside gVisor the host's cgroups and seccomp filter are out of sight: what can be
    proven is proven (the memory cap, from gVisor's /proc/meminfo); the rest is said to be
    unverifiable from inside, never passed."""
    memory_kb = int(sandbox.get("memory_mb", 0)) * 1024
    total_kb = int(facts.get("mem_total_kb") or 0)
    capped = 0 < total_kb <= memory_kb * 1.01 if memory_kb else False
    unseen = "not visible inside gVisor (the host's cgroups enforce it: check on the host)"
    return [
        Finding("PASS" if capped else "FAIL", "memory cap",
                f"MemTotal={total_kb} kB (memory_mb={sandbox.get('memory_mb')})"),
        Finding("INFO", "pids cap", unseen),
        Finding("INFO", "cpu quota", unseen),
        Finding("INFO", "seccomp profile (no io_uring)",
                "syscalls are served by gVisor's own kernel, not the host's: "
                + ", ".join(f"{name}={errno}" for name, errno
                            in sorted((facts.get("denied_syscalls") or {}).items()))),
        Finding("INFO", "kernel", f"gVisor (reports release {facts.get('kernel')})"),
    ]


def audit(base_url: str, api_key: str, timeout_s: float = 60.0) -> list[Finding]:
    """Create a sandbox on the server, probe it, kill it; return the findings."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s) as http:
        created = http.post("/v1/sandboxes", json={"timeout_s": 120})
        created.raise_for_status()
        sandbox = created.json()
        try:
            response = http.post(f"/v1/sandboxes/{sandbox['id']}/execute",
                                 json={"code": PROBE, "timeout_s": 30})
            response.raise_for_status()
            execution = response.json()
            if execution["status"] != "ok":
                raise RuntimeError(f"the probe failed in the sandbox: {execution['error']}")
            facts = json.loads(execution["stdout"].strip().splitlines()[-1])
        finally:
            http.delete(f"/v1/sandboxes/{sandbox['id']}")
    return judge(facts, sandbox)
