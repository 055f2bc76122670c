"""selfbox next to the Docker-based alternatives a user would pick instead, in one run, on the
same image: create -> first result of ``1+1``, trivial round trip, and 16/32 concurrent clients
each with its own sandbox.

    .venv/bin/python benchmarks/bench_peers.py [--creates 10] [--runs 100] [--duration 10]

Peers (each skipped, with a note, when it is not installed):

* ``docker exec`` per call: a container of the runtime image kept running, one
  ``python3 -c`` per execution through the Docker API (what a hand-rolled sandbox does);
* llm-sandbox (``pip install llm-sandbox``; works offline here: it is pointed at the local
  runtime image with ``skip_environment_setup=True``, so it neither pulls nor pip-installs).

selfbox runs as ``bench_server.py`` runs it (its own ``selfbox serve``, this ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import httpx
from bench_server import AUTH, TRIVIAL, throughput
from benchlib import IMAGE, Table, start_server

CLIENT_COUNTS = (16, 32)


class Peer:
    """One way to get a sandbox and run ``print(1+1)`` in it."""

    name = "peer"

    def create(self) -> Any:
        raise NotImplementedError

    def run(self, handle: Any) -> str:
        raise NotImplementedError

    def close(self, handle: Any) -> None:
        raise NotImplementedError


class DockerExec(Peer):
    name = "docker exec per call"

    def __init__(self) -> None:
        self.client = docker.from_env()
        self.count = 0

    def create(self) -> Any:
        self.count += 1
        return self.client.containers.run(
            IMAGE, ["sleep", "3600"], detach=True, network_mode="none",
            name=f"selfbox-bench-exec-{os.getpid()}-{self.count}",
            labels={"selfbox.bench": "docker-exec"})

    def run(self, handle: Any) -> str:
        result = handle.exec_run(["python3", "-c", "print(1 + 1)"])
        return result.output.decode().strip()

    def close(self, handle: Any) -> None:
        handle.remove(force=True)


class LlmSandbox(Peer):
    name = "llm-sandbox (docker backend)"

    def __init__(self) -> None:
        from llm_sandbox import SandboxSession

        self.session_type = SandboxSession

    def create(self) -> Any:
        session = self.session_type(lang="python", image=IMAGE, keep_template=True,
                                    verbose=False, skip_environment_setup=True)
        session.open()
        return session

    def run(self, handle: Any) -> str:
        return str(handle.run("print(1 + 1)").stdout).strip()

    def close(self, handle: Any) -> None:
        handle.close()


def measure_peer(peer: Peer, args: argparse.Namespace, table: Table) -> None:
    firsts = []
    for _ in range(args.creates):
        start = time.perf_counter()
        handle = peer.create()
        output = peer.run(handle)
        firsts.append((time.perf_counter() - start) * 1000)
        assert output == "2", output
        peer.close(handle)
    table.dist(f"{peer.name}: create -> first result", firsts)
    handle = peer.create()
    try:
        trips = []
        for _ in range(args.runs):
            start = time.perf_counter()
            peer.run(handle)
            trips.append((time.perf_counter() - start) * 1000)
        table.dist(f"{peer.name}: trivial round trip", trips)
    finally:
        peer.close(handle)
    handles = [peer.create() for _ in range(max(CLIENT_COUNTS))]
    try:
        for clients in CLIENT_COUNTS:
            rate, errors = _threads(peer.run, handles[:clients], args.duration)
            table.value(f"{peer.name}: {clients} clients, own sandbox each", rate, "exec/s",
                        clients, f"{errors} errors", digits=1)
    finally:
        for handle in handles:
            peer.close(handle)


def _threads(run: Callable[[Any], str], handles: list[Any],
             duration_s: float) -> tuple[float, int]:
    counts = [0] * len(handles)
    errors = [0] * len(handles)
    end = time.monotonic() + duration_s

    def client(i: int) -> None:
        while time.monotonic() < end:
            try:
                if run(handles[i]) == "2":
                    counts[i] += 1
                else:
                    errors[i] += 1
            except Exception:
                errors[i] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return sum(counts) / elapsed, sum(errors)


def measure_selfbox(args: argparse.Namespace, table: Table) -> None:
    server = start_server({"SELFBOX_MAX_SANDBOXES": "200",
                           "SELFBOX_MAX_SANDBOXES_PER_KEY": "200"})
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as http:
            http.delete(f"/v1/sandboxes/{http.post('/v1/sandboxes', json={}).json()['id']}")
            firsts = []
            for _ in range(args.creates):
                time.sleep(0.5)  # the warm pool refills in between, as a user's would
                start = time.perf_counter()
                sandbox = http.post("/v1/sandboxes", json={}).json()["id"]
                http.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": TRIVIAL})
                firsts.append((time.perf_counter() - start) * 1000)
                http.delete(f"/v1/sandboxes/{sandbox}")
            table.dist("selfbox /v1: create -> first result", firsts)
            sandbox = http.post("/v1/sandboxes", json={}).json()["id"]
            trips = []
            for _ in range(args.runs):
                start = time.perf_counter()
                http.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": TRIVIAL})
                trips.append((time.perf_counter() - start) * 1000)
            http.delete(f"/v1/sandboxes/{sandbox}")
            table.dist("selfbox /v1: trivial round trip", trips)
        for clients in CLIENT_COUNTS:
            for kind, label in (("v1", "selfbox /v1"), ("e2b", "selfbox E2B SDK")):
                rate, errors, _ = throughput(server, kind, clients, args.workers, args.duration)
                table.value(f"{label}: {clients} clients, own sandbox each", rate, "exec/s",
                            clients, f"{errors} errors", digits=1)
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=4, help="client processes (selfbox)")
    parser.add_argument("--only", default="", help="comma-separated: selfbox,exec,llm")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    only = set(filter(None, args.only.split(","))) or {"selfbox", "exec", "llm"}
    table = Table()
    notes = []
    if "selfbox" in only:
        measure_selfbox(args, table)
    if "exec" in only:
        measure_peer(DockerExec(), args, table)
    if "llm" in only:
        try:
            peer: Peer = LlmSandbox()
        except ImportError:
            notes.append("llm-sandbox is not installed (pip install llm-sandbox): skipped")
        else:
            measure_peer(peer, args, table)
    print(f"\nimage {IMAGE}; host {os.cpu_count()} cores; python {sys.version.split()[0]}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(table.render())
    for note in notes:
        print(note)
    if args.json:
        args.json.write_text(json.dumps(table.raw, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
