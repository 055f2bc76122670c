"""The local dev swarm of scripts/swarm-dev.sh, driven from Python: bring it up and down, reach
each node's engine, and create sandbox-like services with the hardening a Swarm service spec on
API 1.41 can express (the rest comes from each sandbox node's daemon configuration; see
docs/scale-out.md). Shared by tests/swarm and benchmarks/bench_swarm.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "swarm-dev.sh"
PROBE = (REPO_ROOT / "deploy" / "swarm" / "probe.py").read_text()
STATE_DIR = Path(os.environ.get("SBX_SWARM_DIR", "/var/lib/sbxsw"))
WORKERS = ("sbxsw-w1", "sbxsw-w2")
# With gVisor installed, the second worker runs every container under it (its daemon's
# default runtime): the tests then cover a runc sandbox node and a gVisor one.
GVISOR_WORKERS = ("sbxsw-w2",) if shutil.which("runsc") else ()
SANDBOX_LABEL = "node.labels.io.selfbox.sandbox==true"
MiB = 1024 * 1024


class SwarmDevError(RuntimeError):
    """The dev cluster script failed or a task did not reach the state it should."""


def run_script(command: str, timeout_s: float, **env: str) -> str:
    """``swarm-dev.sh <command>``; its output (stdout and stderr), or SwarmDevError."""
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT), command], env={**os.environ, **env}, capture_output=True,
            text=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        raise SwarmDevError(f"swarm-dev.sh {command} took more than {timeout_s} s") from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise SwarmDevError(f"swarm-dev.sh {command} failed ({done.returncode}):\n{output}")
    return output


def node_addr(hostname: str) -> str:
    """A worker's address on the dev cluster's bridge (swarm-dev.sh: SBX_SWARM_NET.10+i)."""
    net = os.environ.get("SBX_SWARM_NET", "100.64.213")
    return f"{net}.{10 + WORKERS.index(hostname) + 1}"


def manager() -> docker.DockerClient:
    return docker.from_env(timeout=60)


def node_client(hostname: str) -> docker.DockerClient:
    """The engine of a node: the host's for the manager, a worker's own socket otherwise."""
    if hostname not in WORKERS:
        return manager()
    return docker.DockerClient(base_url=f"unix://{STATE_DIR / hostname / 'docker.sock'}",
                               timeout=60)


def swarm_active(client: docker.DockerClient) -> bool:
    state: str = client.info()["Swarm"]["LocalNodeState"]
    return state == "active"


@dataclass(frozen=True)
class SandboxSpec:
    """A sandbox-like service: one task, never restarted (a sandbox that dies is dead, not
    silently re-created empty), removed in about a second (an init process as PID 1)."""

    image: str
    command: tuple[str, ...]
    constraints: tuple[str, ...] = (SANDBOX_LABEL,)
    cpu: float = 0.5
    memory_mb: int = 256
    pids: int = 128
    disk_mb: int = 64
    labels: tuple[tuple[str, str], ...] = ()
    open_stdin: bool = False  # the runner's channel: attach to the task's stdin/stdout

    def task_template(self) -> dict[str, Any]:
        # Raw API fields: docker-py 7's ContainerSpec/Resources types have no Ulimits or Pids.
        tmpfs = {"SizeBytes": self.disk_mb * MiB, "Mode": 0o1777}
        return {
            "ContainerSpec": {
                "Image": self.image,
                "Command": list(self.command),
                "User": "1000:1000",
                "Labels": dict(self.labels),
                "ReadOnly": True,
                "CapabilityDrop": ["ALL"],
                "Init": True,
                "OpenStdin": self.open_stdin,
                "StopGracePeriod": 1_000_000_000,
                "Ulimits": [{"Name": "nofile", "Soft": 4096, "Hard": 4096}],
                "Mounts": [
                    {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": tmpfs},
                    {"Type": "tmpfs", "Target": "/home/user", "TmpfsOptions": tmpfs},
                ],
            },
            "Resources": {
                "Limits": {"NanoCPUs": int(self.cpu * 1e9), "MemoryBytes": self.memory_mb * MiB,
                           "Pids": self.pids},
                "Reservations": {"MemoryBytes": 16 * MiB},
            },
            "RestartPolicy": {"Condition": "none"},
            "Placement": {"Constraints": list(self.constraints)},
        }


def create_service(client: docker.DockerClient, name: str, spec: SandboxSpec) -> str:
    created = client.api.create_service(
        spec.task_template(), name=name, labels={"io.selfbox.test": "swarm", **dict(spec.labels)},
        mode={"Replicated": {"Replicas": 1}},
    )
    service_id: str = created["ID"]
    return service_id


def tasks(client: docker.DockerClient, service_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.api.tasks(filters={"service": service_id})
    return found


def wait_task(client: docker.DockerClient, service_id: str, states: set[str],
              timeout_s: float = 60, poll_s: float = 0.02) -> dict[str, Any]:
    """The service's first task once its state is one of ``states`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = tasks(client, service_id)
        if found:
            last = found[0]
            if last["Status"]["State"] in states:
                return last
        time.sleep(poll_s)
    raise SwarmDevError(f"service {service_id}: no task in {sorted(states)} after {timeout_s} s; "
                        f"last status {last.get('Status')}")


UNPLACED_STATES = frozenset({"new", "allocated", "pending"})


def wait_unschedulable(client: docker.DockerClient, service_id: str,
                       timeout_s: float = 30) -> str:
    """Swarm's reason for not placing the service's task ("no suitable node (...)")."""
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = tasks(client, service_id)
        if found:
            status = found[0]["Status"]
            # A task is "new", then "allocated", then "pending" until a node is chosen.
            if status["State"] not in UNPLACED_STATES:
                raise SwarmDevError(f"service {service_id} was placed: {status}")
            if status.get("Err"):
                err: str = status["Err"]
                return err
        time.sleep(0.1)
    raise SwarmDevError(f"service {service_id}: no scheduling error after {timeout_s} s: {status}")


def task_node(client: docker.DockerClient, task: dict[str, Any]) -> str:
    hostname: str = client.api.inspect_node(task["NodeID"])["Description"]["Hostname"]
    return hostname


def probe_report(client: docker.DockerClient, service_id: str,
                 timeout_s: float = 60) -> dict[str, Any]:
    """Run to completion, the probe's JSON line from the task's log."""
    task = wait_task(client, service_id, {"complete", "failed", "rejected"}, timeout_s, 0.1)
    if task["Status"]["State"] != "complete":
        raise SwarmDevError(f"probe task ended {task['Status']}")
    engine = node_client(task_node(client, task))
    container = engine.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
    for line in container.logs(stdout=True, stderr=True).decode(errors="replace").splitlines():
        if line.startswith("SBX-PROBE "):
            report: dict[str, Any] = json.loads(line.removeprefix("SBX-PROBE "))
            return report
    raise SwarmDevError(f"no probe report in the logs of service {service_id}")


def host_cgroup_limits(node: str, container_id: str) -> dict[str, str]:
    """A worker's container's limits as the host's cgroup v1 files hold them (the view that
    holds for gVisor too, whose tasks cannot see their cgroups). Empty on cgroup v2 hosts."""
    found = {}
    for controller, name in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max"),
                             ("cpu", "cpu.cfs_quota_us")):
        path = Path("/sys/fs/cgroup") / controller / node / container_id / name
        if path.exists():
            found[name] = path.read_text().strip()
    return found


def wait_container_gone(engine: docker.DockerClient, service_id: str, timeout_s: float = 30,
                        poll_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # The low-level list: the high-level one inspects each container, racing removal.
        if not engine.api.containers(
                all=True, filters={"label": f"com.docker.swarm.service.id={service_id}"}):
            return
        time.sleep(poll_s)
    raise SwarmDevError(f"service {service_id}'s container still there after {timeout_s} s")


def remove_services(client: docker.DockerClient, label: str = "io.selfbox.test=swarm") -> None:
    for service in client.api.services(filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_service(service["ID"])
