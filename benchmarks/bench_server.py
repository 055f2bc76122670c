"""Sandbox server benchmark: create latency, execution round trip, idle memory — next to a
plain ``docker run`` / ``docker exec`` of the same image, measured in the same run.

    .venv/bin/python benchmarks/bench_server.py [--creates 20] [--runs 200]

Starts its own ``selfbox serve`` on a free loopback port (needs the Docker engine and the
runtime image). Prints a table; ``--json`` writes the raw figures too.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import docker
import httpx

IMAGE = os.environ.get("SELFBOX_TEST_RUNTIME_IMAGE", "selfbox/runtime:latest")
KEY = "bench-key"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, values: list[float], unit: str = "ms") -> str:
    return (f"| {name:<50} | {pct(values, 0.5):>9.2f} | {pct(values, 0.95):>9.2f} | "
            f"{len(values):>4} | {unit} |")


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SELFBOX_API_KEYS": KEY, "SELFBOX_PORT": str(port),
           "SELFBOX_RUNTIME_IMAGE": IMAGE, "SELFBOX_DEPLOYMENT": f"bench-{port}",
           "SELFBOX_MAX_SANDBOXES_PER_KEY": "100", "SELFBOX_LOG_LEVEL": "warning",
           "SELFBOX_WARM_POOL_SIZE": os.environ.get("SELFBOX_WARM_POOL_SIZE", "2")}
    process = subprocess.Popen([sys.executable, "-m", "sandbox_server.cli", "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/healthz", timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def memory_mib(client: docker.DockerClient, container: str) -> float:
    stats = client.api.stats(container, stream=False)
    usage = stats["memory_stats"]
    cache = usage.get("stats", {}).get("cache", 0) or usage.get("stats", {}).get("inactive_file", 0)
    return float(usage["usage"] - cache) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=20)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    dclient = docker.from_env()
    results: dict[str, list[float]] = {}

    process, url = start_server()
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"},
                          timeout=60) as http:
            http.delete(f"/v1/sandboxes/{http.post('/v1/sandboxes', json={}).json()['id']}")
            ids: list[str] = []
            # Cold: limits other than the defaults bypass the warm pool.
            # Warm: default limits, one request every 0.5 s (the pool refills in between).
            for kind, body, pause in (("cold", {"memory_mb": 500}, 0.0), ("warm", {}, 0.5)):
                creates, first_results = [], []
                for _ in range(args.creates):
                    time.sleep(pause)
                    start = time.perf_counter()
                    sandbox = http.post("/v1/sandboxes", json=body).json()["id"]
                    creates.append((time.perf_counter() - start) * 1000)
                    http.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": "1 + 1"})
                    first_results.append((time.perf_counter() - start) * 1000)
                    ids.append(sandbox)
                results[f"selfbox: create sandbox, {kind} (HTTP, until ready)"] = creates
                results[f"selfbox: create + first result, {kind}"] = first_results
            trips = []
            for _ in range(args.runs):
                start = time.perf_counter()
                http.post(f"/v1/sandboxes/{ids[0]}/execute", json={"code": "1 + 1"})
                trips.append((time.perf_counter() - start) * 1000)
            results["selfbox: trivial execution round trip (HTTP)"] = trips
            time.sleep(2)
            results["selfbox: idle sandbox memory"] = [
                memory_mib(dclient, f"selfbox-{sid}") for sid in ids[:10]]
            for sid in ids:
                http.delete(f"/v1/sandboxes/{sid}")
    finally:
        process.terminate()
        process.wait(30)

    plain_runs = []
    for _ in range(max(args.creates // 2, 5)):
        start = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "python3", "-c",
                        "print(1 + 1)"], check=True, capture_output=True)
        plain_runs.append((time.perf_counter() - start) * 1000)
    results["plain: docker run --rm python3 -c 'print(1+1)'"] = plain_runs

    idle = dclient.containers.run(IMAGE, ["python3", "-c", "import time; time.sleep(600)"],
                                  detach=True, network_mode="none")
    try:
        execs = []
        for _ in range(max(args.runs // 10, 10)):
            start = time.perf_counter()
            idle.exec_run(["python3", "-c", "print(1 + 1)"])
            execs.append((time.perf_counter() - start) * 1000)
        results["plain: docker exec python3 -c (per call)"] = execs
        time.sleep(2)
        results["plain: idle python3 container memory"] = [memory_mib(dclient, idle.id)]
    finally:
        idle.remove(force=True)

    print(f"\nimage {IMAGE}; host: {os.cpu_count()} cores\n")
    print(f"| {'measure':<50} | {'p50':>9} | {'p95':>9} | {'n':>4} | unit |")
    print(f"|{'-' * 52}|{'-' * 11}|{'-' * 11}|{'-' * 6}|------|")
    for name, values in results.items():
        print(row(name, values, "MiB" if "memory" in name else "ms"))
    if args.json:
        args.json.write_text(json.dumps({k: statistics.fmean(v) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
