"""Restart benchmark: how long a new server takes to adopt N live sandboxes after ``kill -9``,
and what the watchdog relay costs per message.

    .venv/bin/python benchmarks/bench_restart.py [--sizes 10 100] [--pings 2000]

For each N: start ``selfbox serve``, create N sandboxes (each runs one cell), ``kill -9`` the
server, start a new one on the same deployment and measure
  * server start to ready (``/healthz`` answers: adoption is part of start-up),
  * the adoption itself (the server's own log line),
  * server start to every sandbox having answered an execution (all N in parallel).
Then the relay hop: ``ping`` round trips over an attached channel to the runner with and
without the relay in front of it (same image, same attach), median of ``--pings``.

Needs the Docker engine and the runtime image (``SELFBOX_TEST_RUNTIME_IMAGE``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import docker
import httpx

IMAGE = os.environ.get("SELFBOX_TEST_RUNTIME_IMAGE", "selfbox/runtime:latest")
KEY = "bench-key"
SECRET = "bench-restart-secret-" + "0" * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(port: int, deployment: str, log: str) -> tuple[subprocess.Popen[bytes], float]:
    env = {**os.environ, "SELFBOX_API_KEYS": KEY, "SELFBOX_PORT": str(port),
           "SELFBOX_RUNTIME_IMAGE": IMAGE, "SELFBOX_DEPLOYMENT": deployment,
           "SELFBOX_MAX_SANDBOXES_PER_KEY": "200", "SELFBOX_MAX_SANDBOXES": "200",
           "SELFBOX_STATE_SECRET": SECRET, "SELFBOX_WARM_POOL_SIZE": "0",
           "SELFBOX_SHUTDOWN_KEEPS_SANDBOXES": "false", "SELFBOX_DEFAULT_MEMORY_MB": "128"}
    started = time.monotonic()
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "sandbox_server.cli", "serve"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    for _ in range(1200):
        if process.poll() is not None:
            raise RuntimeError(f"server exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server did not come up; see {log}")


def run_one(http: httpx.Client, sandbox_id: str, code: str) -> None:
    response = http.post(f"/v1/sandboxes/{sandbox_id}/execute", json={"code": code})
    response.raise_for_status()
    assert response.json()["status"] == "ok", response.text


def restart(n: int) -> dict[str, float]:
    port = free_port()
    deployment = f"bench-restart-{port}"
    log = tempfile.mktemp(prefix="bench-restart-", suffix=".log")
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {KEY}"}
    first, _ = start_server(port, deployment, log)
    pool = concurrent.futures.ThreadPoolExecutor(16)
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            def create(_: int) -> str:
                sandbox_id: str = http.post("/v1/sandboxes", json={}).json()["id"]
                run_one(http, sandbox_id, "x = 1")
                return sandbox_id
            ids = list(pool.map(create, range(n)))
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        second, ready_s = start_server(port, deployment, log)
        started = time.monotonic() - ready_s
        try:
            with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
                list(pool.map(lambda sid: run_one(http, sid, "x + 1"), ids))
            answered_s = time.monotonic() - started
            with open(log, "rb") as text:
                match = re.findall(rb"adopted (\d+) sandboxes .* in ([0-9.]+) s", text.read())
            adopted, adopt_s = (int(match[-1][0]), float(match[-1][1])) if match else (-1, -1.0)
        finally:
            second.terminate()
            second.wait(120)
    finally:
        pool.shutdown()
        if first.poll() is None:
            first.kill()
    return {"n": n, "adopted": adopted, "ready_s": ready_s, "adopt_s": adopt_s,
            "all_answered_s": answered_s, "answered_after_ready_s": answered_s - ready_s}


_HEADER = struct.Struct(">BxxxI")


def ping_round_trips(relay: bool, pings: int) -> float:
    """Median µs of a ``ping`` round trip over an attached channel."""
    client = docker.from_env()
    runner = ["python3", "-m", "selfbox_runner"]
    command = (["python3", "-m", "selfbox_runner.relay", "--orphan-grace-s", "600", "--",
                *runner] if relay else runner)
    created = client.api.create_container(IMAGE, command=command, stdin_open=True, detach=True,
                                          labels={"io.selfbox.bench": "restart"},
                                          host_config=client.api.create_host_config(
                                              network_mode="none"))
    container_id = created["Id"]
    try:
        sock = client.api.attach_socket(container_id, params={"stdin": 1, "stdout": 1,
                                                              "stream": 1})._sock
        client.api.start(container_id)
        buffer = b""

        def reply() -> dict[str, object]:
            nonlocal buffer
            while b"\n" not in buffer:
                header = sock.recv(_HEADER.size, socket.MSG_WAITALL)
                _, size = _HEADER.unpack(header)
                buffer += sock.recv(size, socket.MSG_WAITALL)
            line, buffer = buffer.split(b"\n", 1)
            message: dict[str, object] = json.loads(line)
            return message

        while reply().get("type") != "ready":
            pass
        times = []
        for i in range(pings):
            started = time.perf_counter()
            sock.sendall(json.dumps({"op": "ping", "req": str(i)}).encode() + b"\n")
            while reply().get("type") != "reply":
                pass
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1e6
    finally:
        client.api.remove_container(container_id, force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--pings", type=int, default=2000)
    args = parser.parse_args()
    print("| N | adopted | start to ready | adoption | start to all answered | "
          "ready to all answered |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        r = restart(n)
        print(f"| {n} | {r['adopted']} | {r['ready_s']:.2f} s | {r['adopt_s']:.2f} s | "
              f"{r['all_answered_s']:.2f} s | {r['answered_after_ready_s']:.2f} s |", flush=True)
    direct = ping_round_trips(False, args.pings)
    relayed = ping_round_trips(True, args.pings)
    print(f"\nping round trip, median of {args.pings}: direct {direct:.0f} µs, through the "
          f"relay {relayed:.0f} µs (hop: {relayed - direct:+.0f} µs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
