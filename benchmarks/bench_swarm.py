"""Swarm placement figures on the local dev cluster (scripts/swarm-dev.sh): what a
service-per-sandbox design costs on this engine.

    sudo .venv/bin/python benchmarks/bench_swarm.py [--creates 10] [--cycle] [--json FILE]

Measures, per sandbox node: ``service create`` → task running (sequential, p50/p90), removal →
container gone (init + 1 s stop grace), one removal without an init and with Docker's default
10 s grace, and a burst of creates across the cluster. With ``--cycle`` it also brings the
cluster up and down itself and times that (otherwise the cluster must be up already).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.swarm.cluster import (
    WORKERS,
    SandboxSpec,
    create_service,
    manager,
    node_client,
    remove_services,
    run_script,
    task_node,
    wait_container_gone,
    wait_task,
)

IMAGE = os.environ.get("SELFBOX_TEST_RUNTIME_IMAGE", "selfbox/runtime:latest")
SLEEP = ("python3", "-c", "import time; time.sleep(600)")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed_script(command: str, figures: dict[str, Any]) -> None:
    start = time.monotonic()
    output = run_script(command, timeout_s=300, SBX_SWARM_IMAGES=IMAGE)
    figures[f"{command}_s"] = round(time.monotonic() - start, 2)
    for key, pattern in (("cluster_up_s", r"cluster up in ([0-9.]+) s"),
                         ("images_loaded_s", r"images loaded in ([0-9.]+) s")):
        found = re.search(pattern, output)
        if found:
            figures[key] = float(found.group(1))


def create_to_running(client: docker.DockerClient, node: str,
                      spec: SandboxSpec) -> tuple[float, str]:
    start = time.monotonic()
    service_id = create_service(client, f"sbxsw-bench-{uuid.uuid4().hex[:8]}", spec)
    task = wait_task(client, service_id, {"running"})
    elapsed = time.monotonic() - start
    assert task_node(client, task) == node
    return elapsed, service_id


def removal(client: docker.DockerClient, node: str, service_id: str) -> float:
    start = time.monotonic()
    client.api.remove_service(service_id)
    wait_container_gone(node_client(node), service_id, timeout_s=60)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=10)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--cycle", action="store_true", help="bring the cluster up and down")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    if args.cycle:
        timed_script("up", figures)
    client = manager()
    try:
        for node in WORKERS:
            pinned = ("node.labels.io.selfbox.sandbox==true", f"node.hostname=={node}")
            spec = SandboxSpec(IMAGE, SLEEP, constraints=pinned)
            starts, removes = [], []
            for _ in range(args.creates):
                elapsed, service_id = create_to_running(client, node, spec)
                starts.append(elapsed)
                removes.append(removal(client, node, service_id))
            figures[node] = {
                "create_to_running_p50_s": round(statistics.median(starts), 3),
                "create_to_running_p90_s": round(pct(starts, 0.9), 3),
                "removal_p50_s": round(statistics.median(removes), 3),
                "removal_p90_s": round(pct(removes, 0.9), 3),
            }
            # Without an init, PID 1 ignores SIGTERM: removal waits out the stop grace.
            raw = client.api.create_service(
                {**spec.task_template(), "ContainerSpec": {
                    **spec.task_template()["ContainerSpec"], "Init": False,
                    "StopGracePeriod": 10_000_000_000}},
                name=f"sbxsw-bench-noinit-{uuid.uuid4().hex[:8]}",
                labels={"io.selfbox.test": "swarm"})
            wait_task(client, raw["ID"], {"running"})
            figures[node]["removal_no_init_10s_grace_s"] = round(
                removal(client, node, raw["ID"]), 2)
        # A burst across the sandbox nodes: all created at once, time until all run.
        spec = SandboxSpec(IMAGE, SLEEP, memory_mb=64)
        start = time.monotonic()
        ids = [create_service(client, f"sbxsw-bench-burst-{i}-{uuid.uuid4().hex[:6]}", spec)
               for i in range(args.burst)]
        placed = [task_node(client, wait_task(client, i, {"running"})) for i in ids]
        figures["burst"] = {
            "services": args.burst,
            "all_running_s": round(time.monotonic() - start, 2),
            "per_node": {n: placed.count(n) for n in sorted(set(placed))},
        }
        start = time.monotonic()
        for service_id in ids:
            client.api.remove_service(service_id)
        for service_id, node in zip(ids, placed, strict=True):
            wait_container_gone(node_client(node), service_id, timeout_s=60)
        figures["burst"]["all_removed_s"] = round(time.monotonic() - start, 2)
    finally:
        remove_services(client)
        if args.cycle:
            timed_script("down", figures)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
