"""The Swarm back end's pure parts (no engine; the real thing runs in tests/swarm): the service
spec keeps the hardening, Swarm's task and node states become the reasons a client reads, and
"no suitable node" becomes a 429 naming the resources."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox_server.containers import relay_command
from sandbox_server.driver import ContainerSpec, label
from sandbox_server.exceptions import SandboxStartError, TooManySandboxes
from sandbox_server.limits import check_counts
from sandbox_server.pool import POOL_OWNER
from sandbox_server.settings import Settings
from sandbox_server.swarm import SANDBOX_CONSTRAINT, SwarmDriver, service_body
from sandbox_server.swarm.sync import ranks

MiB = 1024 * 1024


def _spec() -> ContainerSpec:
    return ContainerSpec(image="selfbox/runtime:x", labels={"io.selfbox.owner": "k"}, cpu=0.5,
                         memory_mb=256, pids=128, disk_mb=64, env={"A": "1"},
                         command=relay_command(60, wait_for_server=True))


def test_the_service_keeps_the_hardening_and_reserves_what_it_limits() -> None:
    body = service_body(_spec(), "selfbox-abc")
    container = body["TaskTemplate"]["ContainerSpec"]
    assert container["User"] == "1000:1000" and container["ReadOnly"] is True
    assert container["CapabilityDrop"] == ["ALL"] and container["Init"] is True
    assert container["OpenStdin"] is True and "--wait-for-server" in container["Command"]
    assert container["Ulimits"] == [{"Name": "nofile", "Soft": 4096, "Hard": 4096}]
    assert {m["Type"] for m in container["Mounts"]} == {"tmpfs"}
    resources = body["TaskTemplate"]["Resources"]
    assert resources["Limits"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 256 * MiB,
                                   "Pids": 128}
    assert resources["Reservations"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 256 * MiB}
    assert body["TaskTemplate"]["RestartPolicy"]["Condition"] == "none"
    assert body["TaskTemplate"]["Placement"]["Constraints"] == [SANDBOX_CONSTRAINT]
    assert body["Labels"] == {"io.selfbox.owner": "k"}
    assert "Networks" not in body["TaskTemplate"]  # the proxy refuses them; nodes: bridge none


def _task(state: str, desired: str = "running", err: str = "") -> dict[str, Any]:
    return {"NodeID": "n1", "DesiredState": desired,
            "Status": {"State": state, "Err": err, "ContainerStatus": {"ExitCode": 0}},
            "Spec": {"Resources": {"Reservations": {"MemoryBytes": 512 * MiB,
                                                    "NanoCPUs": 1_000_000_000}}}}


def _nodes(state: str = "ready", availability: str = "active") -> dict[str, Any]:
    return {"n1": {"ID": "n1", "Description": {"Hostname": "w1"}, "Status": {"State": state},
                   "Spec": {"Availability": availability}}}


def test_task_and_node_states_become_reasons_naming_the_node() -> None:
    running = SwarmDriver._state(_task("running"), _nodes())
    assert running["Running"] and running["Reason"] is None
    down = SwarmDriver._state(_task("running"), _nodes(state="down"))
    assert not down["Running"] and down["Reason"] == "its node w1 is down"
    drained = SwarmDriver._state(_task("shutdown", desired="shutdown"),
                                 _nodes(availability="drain"))
    assert drained["Reason"] == "its node w1 was drained"
    failed = SwarmDriver._state(_task("failed", err="task: non-zero exit (137)"), _nodes())
    assert failed["Reason"] == "its task on node w1 is failed (task: non-zero exit (137))"
    starting = SwarmDriver._state(_task("preparing"), _nodes())
    assert starting["Starting"] and not starting["Running"]


def test_no_suitable_node_is_a_429_naming_memory_and_cpu() -> None:
    driver = SwarmDriver(Settings(api_keys=["k" * 32], backend="swarm"))
    task = _task("pending", err="no suitable node (insufficient resources on 3 nodes)")
    with pytest.raises(TooManySandboxes) as caught:
        driver._raise_if_ended("selfbox-x", task, task["Status"])
    message = str(caught.value)
    assert "memory_mb=512" in message and "cpu=1" in message
    assert "no suitable node (insufficient resources on 3 nodes)" in message
    assert caught.value.http_headers() == {"Retry-After": "10"}
    rejected = _task("rejected", err="No such image: x")
    with pytest.raises(SandboxStartError, match="No such image"):
        driver._raise_if_ended("selfbox-x", rejected, rejected["Status"])


def _service(name: str, created: float, owner: str, state: str = "running") -> dict:
    return {"Id": name, "Created": created, "State": state,
            "Labels": {label("owner"): owner}}


def test_a_racing_create_over_a_cap_is_the_later_one_in_swarms_order() -> None:
    entries = [_service("selfbox-c", 3.0, "k1"), _service("selfbox-a", 1.0, "k1"),
               _service("selfbox-b", 1.0, "k2"), _service("selfbox-x", 0.5, "k1", "exited"),
               _service("selfbox-p", 0.1, POOL_OWNER)]
    # Ordered by creation time, then name: a (k1), b (k2), c (k1); ended and pooled not counted.
    assert ranks(entries, "selfbox-a", "k1") == (0, 0)
    assert ranks(entries, "selfbox-b", "k2") == (0, 1)
    assert ranks(entries, "selfbox-c", "k1") == (1, 2)
    assert ranks(entries, "selfbox-gone", "k1") == (0, 0)
    # Every replica computes the same ranks from the same list, whatever order it came in.
    assert ranks(list(reversed(entries)), "selfbox-c", "k1") == (1, 2)
    settings = Settings(max_sandboxes_per_key=1, max_sandboxes=10)
    check_counts(settings, *ranks(entries, "selfbox-a", "k1"))  # the first stays
    with pytest.raises(TooManySandboxes):
        check_counts(settings, *ranks(entries, "selfbox-c", "k1"))  # the later backs out
