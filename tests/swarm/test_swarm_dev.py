"""A real three-node Docker Swarm on this machine (scripts/swarm-dev.sh): the host's engine as
manager plus two dockerds in network namespaces. Checks the nodes, the hardening of a
sandbox-like service's task on every sandbox node (from inside the task, and its cgroup limits
from the host; with gVisor installed the second worker runs everything under it), and that a
paused (cordoned) node keeps its task but gets no new one. Tears everything down, even on
failure."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RUNTIME_IMAGE
from tests.swarm.cluster import (
    GVISOR_WORKERS,
    WORKERS,
    MiB,
    SandboxSpec,
    SwarmDevError,
    create_service,
    host_cgroup_limits,
    manager,
    node_client,
    probe_report,
    remove_services,
    task_node,
    tasks,
    wait_task,
    wait_unschedulable,
)

pytestmark = [pytest.mark.swarm, pytest.mark.docker, pytest.mark.timeout(240)]

SLEEP = ("python3", "-c", "import time; time.sleep(600)")
CGROUP_V2 = not Path("/sys/fs/cgroup/memory").is_dir()


def test_three_nodes_ready(cluster: None) -> None:
    nodes = manager().api.nodes()
    by_name = {n["Description"]["Hostname"]: n for n in nodes}
    assert len(nodes) == 3, sorted(by_name)
    assert set(WORKERS) <= set(by_name)
    for node in nodes:
        assert node["Status"]["State"] == "ready", node["Status"]
        assert node["Spec"]["Availability"] == "active"
    for name in WORKERS:
        assert by_name[name]["Spec"]["Role"] == "worker"
        assert by_name[name]["Spec"]["Labels"]["io.selfbox.sandbox"] == "true"
        # The manager is the shared host engine, without the sandbox daemon configuration.
    managers = [n for n in nodes if n["Spec"]["Role"] == "manager"]
    assert [m["Spec"]["Labels"]["io.selfbox.sandbox"] for m in managers] == ["false"]


def _assert_runc_task(report: dict[str, Any]) -> None:
    assert report["cap_bnd"] == "0000000000000000", report
    assert report["no_new_privs"] == "1", report  # daemon: no-new-privileges
    assert report["seccomp"] == "2", report  # daemon: the default seccomp profile
    assert "noexec" in report["tmp_options"], report
    assert report["pids_max"] == "128", report  # spec: Limits.Pids
    assert report["memory_limit"] == str(256 * MiB), report  # spec: Limits.MemoryBytes
    assert report["cpu_quota"] == "50000", report  # spec: Limits.NanoCPUs


def _assert_gvisor_task(report: dict[str, Any]) -> None:
    # gVisor's own kernel answers: no NoNewPrivs line, no cgroup files (the limits are
    # checked from the host below), its own tmpfs (which honours the mount's mode).
    assert report["kernel"] == "4.4.0", report
    assert report["home_writable"] is True, report


def test_hardening_inside_a_task_on_every_sandbox_node(cluster: None) -> None:
    client = manager()
    probe = ("python3", "-c", (Path(__file__).parents[2] / "deploy/swarm/probe.py").read_text())
    services, sleepers = {}, {}
    try:
        for name in WORKERS:
            pinned = ("node.labels.io.selfbox.sandbox==true", f"node.hostname=={name}")
            services[name] = create_service(client, f"sbxsw-test-probe-{uuid.uuid4().hex[:8]}",
                                            SandboxSpec(RUNTIME_IMAGE, probe, constraints=pinned))
            sleepers[name] = create_service(client, f"sbxsw-test-limits-{uuid.uuid4().hex[:8]}",
                                            SandboxSpec(RUNTIME_IMAGE, SLEEP, constraints=pinned))
        for name, service_id in services.items():
            report = probe_report(client, service_id)
            assert report["uid"] == 1000 and report["gid"] == 1000, report
            assert report["cap_eff"] == "0000000000000000", report  # spec: CapabilityDrop ALL
            assert report["root_writable"] is False, report  # spec: ReadOnly
            assert report["tmp_writable"] is True, report
            assert report["interfaces"] == ["lo"], report  # daemon: bridge none
            assert report["connect_out"] is False, report
            assert report["nofile"] == [4096, 4096], report  # spec: Ulimits (and daemon)
            assert report["pid1"] == "/sbin/docker-init", report  # spec: Init
            assert report["hostname"] != name, report
            if name in GVISOR_WORKERS:
                _assert_gvisor_task(report)
            else:
                _assert_runc_task(report)
            assert task_node(client, tasks(client, service_id)[0]) == name

            # The caps as the node's host applies them, whatever the runtime.
            task = wait_task(client, sleepers[name], {"running"}, timeout_s=60)
            limits = host_cgroup_limits(name, task["Status"]["ContainerStatus"]["ContainerID"])
            expected = {"memory.limit_in_bytes": str(256 * MiB), "pids.max": "128",
                        "cpu.cfs_quota_us": "50000"}
            assert limits == ({} if CGROUP_V2 else expected), limits
            runtime = node_client(name).api.inspect_container(
                task["Status"]["ContainerStatus"]["ContainerID"])["HostConfig"]["Runtime"]
            assert runtime == ("runsc" if name in GVISOR_WORKERS else "runc")
    finally:
        for service_id in [*services.values(), *sleepers.values()]:
            client.api.remove_service(service_id)


def test_paused_node_keeps_its_task_and_gets_no_new_one(cluster: None) -> None:
    client = manager()
    paused, other = WORKERS
    node_id = next(n["ID"] for n in client.api.nodes()
                   if n["Description"]["Hostname"] == paused)
    try:
        before = create_service(client, f"sbxsw-test-before-{uuid.uuid4().hex[:8]}", SandboxSpec(
            RUNTIME_IMAGE, SLEEP, constraints=(f"node.hostname=={paused}",)))
        wait_task(client, before, {"running"}, timeout_s=60)
        node = client.api.inspect_node(node_id)
        client.api.update_node(node_id, node["Version"]["Index"],
                               {**node["Spec"], "Availability": "pause"})

        spread = [create_service(client, f"sbxsw-test-new-{i}-{uuid.uuid4().hex[:8]}",
                                 SandboxSpec(RUNTIME_IMAGE, SLEEP, memory_mb=64))
                  for i in range(4)]
        for service_id in spread:
            task = wait_task(client, service_id, {"running"}, timeout_s=60)
            assert task_node(client, task) == other
        pinned = create_service(client, f"sbxsw-test-pinned-{uuid.uuid4().hex[:8]}", SandboxSpec(
            RUNTIME_IMAGE, SLEEP, constraints=(f"node.hostname=={paused}",)))
        # Swarm's own words: the client-facing error (429/503) will be built from them.
        assert "no suitable node" in wait_unschedulable(client, pinned)

        # The task placed before the pause is still running there.
        still = wait_task(client, before, {"running"}, timeout_s=5)
        assert task_node(client, still) == paused
        container_id = still["Status"]["ContainerStatus"]["ContainerID"]
        assert node_client(paused).containers.get(container_id).status == "running"
    except SwarmDevError as exc:
        pytest.fail(str(exc))
    finally:
        node = client.api.inspect_node(node_id)
        client.api.update_node(node_id, node["Version"]["Index"],
                               {**node["Spec"], "Availability": "active"})
        remove_services(client)
