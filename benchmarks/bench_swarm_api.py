"""selfbox through the Swarm back end's endpoint beside the single-node server, in one run.

    sudo .venv/bin/python benchmarks/bench_swarm_api.py [--creates 10] [--clients 32]
        [--duration 20] [--keep-cluster]

Brings the dev swarm up (unless one runs: then it is reused and left up) and deploys the stack
with the server's Swarm back end (tests/swarm/stack.py: two API replicas, one per worker),
starts a single-node server on the host's engine (the same warm pool setting as each swarm
replica, ``--pool``, 0 by default), and measures
on both, with the same sandbox size (cpu 0.1, 128 MiB):

- create -> first result: ``POST /v1/sandboxes`` then ``execute 1+1``, sequential;
- throughput: N clients, each with its own sandbox, running ``1+1`` back to back for D s
  (on the swarm, the clients alternate between the two replicas' endpoints: a load balancer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchlib import KEY, pct, start_server
from tests.swarm import stack as deployed
from tests.swarm.cluster import manager, run_script, swarm_active

SIZE = {"cpu": 0.1, "memory_mb": 128, "timeout_s": 900}


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"})


def create_to_first(urls: list[str], key: str, n: int, pause_s: float = 0.0) -> list[float]:
    times = []
    for i in range(n):
        time.sleep(pause_s)  # with a warm pool: time to refill
        with _client(urls[i % len(urls)], key) as http:
            start = time.monotonic()
            created = http.post("/v1/sandboxes", json=SIZE)
            created.raise_for_status()
            sandbox_id = created.json()["id"]
            done = http.post(f"/v1/sandboxes/{sandbox_id}/execute", json={"code": "1+1"})
            done.raise_for_status()
            times.append(time.monotonic() - start)
            http.delete(f"/v1/sandboxes/{sandbox_id}")
    return times


def throughput(urls: list[str], key: str, clients: int, duration_s: float) -> dict[str, Any]:
    http = [_client(urls[i % len(urls)], key) for i in range(clients)]
    ids: list[str] = [""] * clients

    def make(i: int) -> None:
        response = http[i].post("/v1/sandboxes", json=SIZE)
        response.raise_for_status()
        ids[i] = response.json()["id"]

    threads = [threading.Thread(target=make, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    counts = [0] * clients
    errors = [0] * clients
    stop = time.monotonic() + duration_s
    start = threading.Barrier(clients)

    def loop(i: int) -> None:
        start.wait(60)
        while time.monotonic() < stop:
            try:
                r = http[i].post(f"/v1/sandboxes/{ids[i]}/execute", json={"code": "1+1"})
                if r.status_code == 200 and r.json()["status"] == "ok":
                    counts[i] += 1
                else:
                    errors[i] += 1
            except httpx.HTTPError:
                errors[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + 120)
    elapsed = time.monotonic() - began
    for i in range(clients):
        if ids[i]:
            http[i].delete(f"/v1/sandboxes/{ids[i]}")
        http[i].close()
    return {"clients": clients, "exec_per_s": round(sum(counts) / elapsed, 1),
            "errors": sum(errors)}


def summary(times: list[float]) -> dict[str, float]:
    return {"p50_s": round(statistics.median(times), 3), "p90_s": round(pct(times, 0.9), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--keep-cluster", action="store_true")
    parser.add_argument("--pool", type=int, default=0,
                        help="warm pool per server (each swarm replica and the single node)")
    parser.add_argument("--pause", type=float, default=3.0,
                        help="seconds between creates when --pool is set (the refill)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    ours = not swarm_active(manager())
    if ours:
        run_script("up", timeout_s=300, SBX_SWARM_IMAGES=deployed.SANDBOX_IMAGE)
    try:
        # Pooled sandboxes have the default size: make it the measured one.
        pool_env = {"SELFBOX_WARM_POOL_SIZE": str(args.pool),
                    "SELFBOX_WARM_POOL_MAX_SIZE": str(max(args.pool, 1)),
                    "SELFBOX_DEFAULT_CPU": "0.1",
                    "SELFBOX_DEFAULT_MEMORY_MB": "128"}
        pause = args.pause if args.pool else 0.0
        figures["warm_pool_per_server"] = args.pool
        swarm = deployed.deploy(**pool_env)
        urls = list(swarm.endpoints)
        if args.pool:
            time.sleep(10)  # the pools fill
        figures["swarm"] = {"create_to_first_result": summary(
            create_to_first(urls, swarm.key, args.creates, pause))}
        figures["swarm"]["throughput"] = throughput(urls, swarm.key, args.clients,
                                                    args.duration)
        server = start_server({**pool_env,
                               "SELFBOX_MAX_SANDBOXES_PER_KEY": str(max(args.clients, 20))})
        try:
            if args.pool:
                server.settle()
            figures["single_node"] = {"create_to_first_result": summary(
                create_to_first([server.url], KEY, args.creates, pause))}
            figures["single_node"]["throughput"] = throughput([server.url], KEY, args.clients,
                                                              args.duration)
        finally:
            server.stop()
    finally:
        if ours and not args.keep_cluster:
            run_script("down", timeout_s=300)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
