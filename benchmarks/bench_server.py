"""Sandbox server benchmark: create latency, execution round trip, server CPU per execution,
concurrent throughput (``/v1`` and the unmodified E2B SDK), cold create next to a bare Docker
start of the same image, a burst of creates, and idle density — printed as one table.

    .venv/bin/python benchmarks/bench_server.py [--creates 20] [--runs 400] [--clients 32]
        [--duration 10] [--burst 50] [--density 100] [--json out.json]

Starts its own ``selfbox serve`` on a free loopback port with this process's ``PYTHONPATH``
(so ``PYTHONPATH=/path/to/other/checkout`` measures another commit the same way); needs the
Docker engine, the runtime image (``SELFBOX_TEST_RUNTIME_IMAGE`` to pick another tag) and, for
the E2B rows, the ``e2b`` extra. Server CPU is read from ``/proc/<pid>/stat`` of the server
process, a figure that does not depend on what else the machine runs. Memory per idle sandbox
is all-in: the container's cgroup memory, its containerd-shim (PSS) and the server's RSS growth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import docker
import httpx
from benchlib import (
    IMAGE,
    KEY,
    Server,
    Table,
    bare_start_ms,
    container_memory_mib,
    pss_mib,
    rss_mib,
    shim_pids,
    start_server,
)

AUTH = {"Authorization": f"Bearer {KEY}"}
TRIVIAL = "1 + 1"


def e2b_environment(url: str) -> None:
    """Point the E2B SDK at the server (must happen before it reads its settings)."""
    os.environ.update(E2B_API_URL=url, E2B_SANDBOX_URL=url, E2B_API_KEY=KEY)
    os.environ.pop("E2B_DOMAIN", None)
    os.environ.pop("E2B_DEBUG", None)


# -- sequential measures ------------------------------------------------------------------------
def warm_creates_v1(http: httpx.Client, n: int, pause_s: float) -> tuple[list[float], list[float]]:
    creates, firsts = [], []
    for _ in range(n):
        time.sleep(pause_s)  # the pool refills in between
        start = time.perf_counter()
        sandbox = http.post("/v1/sandboxes", json={}).json()["id"]
        creates.append((time.perf_counter() - start) * 1000)
        reply = http.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": TRIVIAL}).json()
        firsts.append((time.perf_counter() - start) * 1000)
        assert reply["results"][0]["data"]["text/plain"] == "2", reply
        http.delete(f"/v1/sandboxes/{sandbox}")
    return creates, firsts


def warm_creates_e2b(n: int, pause_s: float) -> list[float]:
    from e2b_code_interpreter import Sandbox

    firsts = []
    for _ in range(n):
        time.sleep(pause_s)
        start = time.perf_counter()
        sandbox = Sandbox.create()
        execution = sandbox.run_code(TRIVIAL)
        firsts.append((time.perf_counter() - start) * 1000)
        assert execution.text == "2", execution
        sandbox.kill()
    return firsts


def round_trips_v1(server: Server, http: httpx.Client, runs: int) -> tuple[list[float], float]:
    sandbox = http.post("/v1/sandboxes", json={}).json()["id"]
    url = f"/v1/sandboxes/{sandbox}/execute"
    for _ in range(20):
        http.post(url, json={"code": TRIVIAL})
    trips = []
    cpu0 = server.cpu_s()
    for _ in range(runs):
        start = time.perf_counter()
        reply = http.post(url, json={"code": TRIVIAL})
        trips.append((time.perf_counter() - start) * 1000)
        reply.raise_for_status()
    cpu_ms = (server.cpu_s() - cpu0) * 1000 / runs
    http.delete(f"/v1/sandboxes/{sandbox}")
    return trips, cpu_ms


def round_trips_e2b(server: Server, runs: int) -> tuple[list[float], float]:
    from e2b_code_interpreter import Sandbox

    sandbox = Sandbox.create()
    for _ in range(20):
        sandbox.run_code(TRIVIAL)
    trips = []
    cpu0 = server.cpu_s()
    for _ in range(runs):
        start = time.perf_counter()
        execution = sandbox.run_code(TRIVIAL)
        trips.append((time.perf_counter() - start) * 1000)
        assert execution.error is None
    cpu_ms = (server.cpu_s() - cpu0) * 1000 / runs
    sandbox.kill()
    return trips, cpu_ms


def cold_creates(http: httpx.Client, n: int) -> tuple[list[float], list[float]]:
    # Limits other than the defaults bypass the warm pool: every one of these is a new container.
    creates, firsts = [], []
    for _ in range(n):
        start = time.perf_counter()
        sandbox = http.post("/v1/sandboxes", json={"memory_mb": 500}).json()["id"]
        creates.append((time.perf_counter() - start) * 1000)
        http.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": TRIVIAL}).raise_for_status()
        firsts.append((time.perf_counter() - start) * 1000)
        http.delete(f"/v1/sandboxes/{sandbox}")
    return creates, firsts


# -- concurrent load, in worker processes (so the client is not one GIL) -------------------------
def _fast_transport() -> Any:
    try:
        from pyqwest import HTTPTransport, HTTPVersion
        from pyqwest.httpx import AsyncPyqwestTransport
    except ImportError:
        return None
    return AsyncPyqwestTransport(HTTPTransport(http_version=HTTPVersion.HTTP1,
                                               follow_redirects=False))


async def _v1_clients(url: str, clients: int, duration_s: float, barrier: Any) -> tuple[int, int]:
    # The E2B SDK's client stack (httpx over pyqwest's Rust transport) when it is installed,
    # so that both APIs are driven by equally cheap clients: on a busy 2-core machine the
    # pure-Python transport, not the server, is what limits 32 clients.
    transport = _fast_transport()
    https = [httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60, transport=transport,
                               limits=httpx.Limits(max_connections=1))
             for _ in range(clients)]
    ids = []
    for http in https:
        reply = await http.post("/v1/sandboxes", json={})
        reply.raise_for_status()
        ids.append(reply.json()["id"])
    await asyncio.to_thread(barrier.wait)  # all created ...
    await asyncio.to_thread(barrier.wait)  # ... and the pool refilled after their creates
    end = time.monotonic() + duration_s
    done = errors = 0

    async def client(http: httpx.AsyncClient, sandbox: str) -> None:
        nonlocal done, errors
        while time.monotonic() < end:
            try:
                reply = await http.post(f"/v1/sandboxes/{sandbox}/execute",
                                        json={"code": TRIVIAL})
                if reply.status_code == 200 and reply.json()["error"] is None:
                    done += 1
                else:
                    errors += 1
            except httpx.HTTPError:
                errors += 1

    await asyncio.gather(*(client(h, sid) for h, sid in zip(https, ids, strict=True)))
    await asyncio.gather(*(h.delete(f"/v1/sandboxes/{sid}") for h, sid in zip(https, ids,
                                                                               strict=True)))
    for http in https:
        await http.aclose()
    return done, errors


async def _e2b_clients(url: str, clients: int, duration_s: float,
                       barrier: Any) -> tuple[int, int]:
    e2b_environment(url)
    from e2b_code_interpreter import AsyncSandbox

    sandboxes = [await AsyncSandbox.create() for _ in range(clients)]
    await asyncio.to_thread(barrier.wait)  # all created ...
    await asyncio.to_thread(barrier.wait)  # ... and the pool refilled after their creates
    end = time.monotonic() + duration_s
    done = errors = 0

    async def client(sandbox: Any) -> None:
        nonlocal done, errors
        while time.monotonic() < end:
            try:
                execution = await sandbox.run_code(TRIVIAL)
                if execution.error is None and execution.text == "2":
                    done += 1
                else:
                    errors += 1
            except Exception:
                errors += 1

    await asyncio.gather(*(client(sb) for sb in sandboxes))
    await asyncio.gather(*(sb.kill() for sb in sandboxes))
    return done, errors


def _load_worker(kind: str, url: str, clients: int, duration_s: float, barrier: Any,
                 results: Any) -> None:
    run = _v1_clients if kind == "v1" else _e2b_clients
    try:
        results.put(asyncio.run(run(url, clients, duration_s, barrier)))
    except Exception as exc:
        barrier.abort()
        results.put(f"{type(exc).__name__}: {exc}")


def throughput(server: Server, kind: str, clients: int, workers: int,
               duration_s: float) -> tuple[float, int, float]:
    """Executions/s and errors of ``clients`` concurrent clients (each with its own sandbox),
    and the server's CPU ms per execution meanwhile."""
    ctx = mp.get_context("spawn")
    workers = max(1, min(workers, clients))
    barrier = ctx.Barrier(workers + 1)
    results = ctx.Queue()
    shares = [clients // workers + (1 if i < clients % workers else 0) for i in range(workers)]
    procs = [ctx.Process(target=_load_worker, args=(kind, server.url, share, duration_s, barrier,
                                                    results)) for share in shares]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=300)
    # The clients' creates grew the adaptive pool: measure executions, not its refill.
    server.settle()
    barrier.wait(timeout=300)
    cpu0, start = server.cpu_s(), time.perf_counter()
    outcomes = [results.get(timeout=duration_s + 300) for _ in procs]
    # Workers finish their last requests after the end mark; count the time they took.
    elapsed = time.perf_counter() - start
    cpu = server.cpu_s() - cpu0
    for proc in procs:
        proc.join(60)
    failures = [o for o in outcomes if isinstance(o, str)]
    if failures:
        raise SystemExit(f"{kind} load failed: {failures[0]}")
    done = sum(o[0] for o in outcomes)
    errors = sum(o[1] for o in outcomes)
    return done / max(elapsed, duration_s), errors, cpu * 1000 / max(done, 1)


# -- burst and density ---------------------------------------------------------------------------
async def _create_and_run(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, float]:
    start = time.perf_counter()
    reply = await http.post("/v1/sandboxes", json=body)
    reply.raise_for_status()
    sandbox = reply.json()["id"]
    result = await http.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": TRIVIAL})
    result.raise_for_status()
    return sandbox, (time.perf_counter() - start) * 1000


async def _delete_all(http: httpx.AsyncClient, ids: list[str], parallel: int = 16) -> None:
    gate = asyncio.Semaphore(parallel)

    async def delete(sid: str) -> None:
        async with gate:
            await http.delete(f"/v1/sandboxes/{sid}")

    await asyncio.gather(*(delete(sid) for sid in ids))


async def burst(url: str, n: int) -> list[float]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=120, limits=limits,
                                 transport=_fast_transport()) as http:
        done = await asyncio.gather(*(_create_and_run(http, {}) for _ in range(n)))
        await _delete_all(http, [sid for sid, _ in done])
    return [ms for _, ms in done]


async def density(server: Server, dclient: docker.DockerClient, n: int,
                  table: Table) -> None:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=300,
                                 limits=limits) as http:
        await asyncio.sleep(3)
        rss0 = server.rss_mib()
        gate = asyncio.Semaphore(16)
        ids: list[str] = []

        async def make() -> None:
            async with gate:
                reply = await http.post("/v1/sandboxes", json={})
                reply.raise_for_status()
                ids.append(reply.json()["id"])

        start = time.perf_counter()
        try:
            await asyncio.gather(*(make() for _ in range(n)))
            made_s = time.perf_counter() - start
            await asyncio.sleep(5)  # idle: let start-up garbage settle
            containers = {c["Name"].lstrip("/"): c["Id"] for c in (
                dclient.api.inspect_container(f"selfbox-{sid}") for sid in ids)}
            shims = shim_pids()
            memory = [container_memory_mib(dclient, cid) for cid in containers.values()]
            shim = [pss_mib(shims[cid]) for cid in containers.values() if cid in shims]
            shim_rss = [rss_mib(shims[cid]) for cid in containers.values() if cid in shims]
            server_growth = max(server.rss_mib() - rss0, 0.0)
            latencies = []
            for sid in ids:
                t0 = time.perf_counter()
                reply = await http.post(f"/v1/sandboxes/{sid}/execute", json={"code": TRIVIAL})
                latencies.append((time.perf_counter() - t0) * 1000)
                reply.raise_for_status()
        finally:
            await _delete_all(http, ids)
    per = (sum(memory) + sum(shim) + server_growth) / n
    table.value(f"density: {n} idle sandboxes created", made_s, "s", n,
                "16 creates at a time")
    table.value("density: memory per idle sandbox, all-in", per, "MiB", n,
                "container + shim PSS + server growth")
    table.value("density:   container cgroup memory (mean)", statistics.fmean(memory), "MiB", n,
                "runner + init, less inactive file cache")
    if shim:
        table.value("density:   containerd-shim PSS (mean)", statistics.fmean(shim), "MiB",
                    len(shim), f"RSS {statistics.fmean(shim_rss):.1f} MiB")
    table.value("density:   server RSS growth per sandbox", server_growth / n, "MiB", n)
    table.dist(f"density: execution latency across {n} idle", latencies, "ms",
               f"max {max(latencies):.1f} ms")


# -- main ---------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=20, help="sequential creates per kind")
    parser.add_argument("--runs", type=int, default=400, help="sequential trivial executions")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=4, help="client processes")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--burst", type=int, default=50, help="creates at once (0: skip)")
    parser.add_argument("--burst-gap", type=float, default=30.0,
                        help="seconds between the two bursts")
    parser.add_argument("--density", type=int, default=100, help="idle sandboxes (0: skip)")
    parser.add_argument("--skip", default="", help="comma-separated: e2b,load,cold,bare")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    dclient = docker.from_env()
    table = Table()
    cap = max(args.density, args.clients, args.burst) * 2 + 20
    server = start_server({"SELFBOX_MAX_SANDBOXES": str(cap),
                           "SELFBOX_MAX_SANDBOXES_PER_KEY": str(cap)})
    e2b_environment(server.url)
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as http:
            http.delete(f"/v1/sandboxes/{http.post('/v1/sandboxes', json={}).json()['id']}")
            server.settle()
            creates, firsts = warm_creates_v1(http, args.creates, 0.5)
            table.dist("warm create (HTTP, until ready) /v1", creates)
            table.dist("warm create -> first result of 1+1, /v1", firsts)
            if "e2b" not in skip:
                server.settle()
                table.dist("warm create -> first result of 1+1, E2B SDK",
                           warm_creates_e2b(args.creates, 0.5))
            server.settle()
            trips, cpu_ms = round_trips_v1(server, http, args.runs)
            table.dist("trivial execution round trip, /v1", trips)
            table.value("server CPU per trivial execution, /v1", cpu_ms, "ms", args.runs,
                        "CPU s of the server / executions")
            if "e2b" not in skip:
                trips, cpu_ms = round_trips_e2b(server, args.runs)
                table.dist("trivial execution round trip, E2B SDK", trips)
                table.value("server CPU per trivial execution, E2B SDK", cpu_ms, "ms",
                            args.runs)
            if "load" not in skip:
                for kind in ("v1", "e2b") if "e2b" not in skip else ("v1",):
                    server.settle()
                    rate, errors, cpu_ms = throughput(server, kind, args.clients,
                                                      args.workers, args.duration)
                    label = "/v1" if kind == "v1" else "E2B SDK"
                    table.value(f"{args.clients} clients, own sandbox each, {label}", rate,
                                "exec/s", args.clients,
                                f"{errors} errors; server CPU {cpu_ms:.2f} ms/exec",
                                digits=1)
            if "cold" not in skip:
                n = max(args.creates // 2, 5)
                server.settle()
                creates, firsts = cold_creates(http, n)
                table.dist("cold create (no pool, until ready) /v1", creates)
                table.dist("cold create -> first result of 1+1, /v1", firsts)
        if "bare" not in skip:
            n = max(args.creates // 2, 5)
            runs = [bare_start_ms(dclient, ["python3", "-c", "print(2)"],
                                  f"selfbox-bench-bare-{os.getpid()}-{i}") for i in range(n)]
            table.dist("bare docker create+attach+start, python3 -c print(2)", runs,
                       note="until first output byte")
            runs = [bare_start_ms(dclient, ["python3", "-m", "selfbox_runner"],
                                  f"selfbox-bench-runner-{os.getpid()}-{i}") for i in range(n)]
            table.dist("bare docker create+attach+start, runner ready", runs,
                       note="no hardening, no server")
    finally:
        server.stop()
    if args.burst:
        # A fresh server with the default pool settings: the first burst meets the pool at rest.
        server = start_server({"SELFBOX_MAX_SANDBOXES": str(cap),
                               "SELFBOX_MAX_SANDBOXES_PER_KEY": str(cap)})
        try:
            server.settle()
            first = asyncio.run(burst(server.url, args.burst))
            table.dist(f"burst of {args.burst} creates -> first result (1st, pool at rest)",
                       first, note=f"max {max(first):.0f} ms")
            time.sleep(args.burst_gap)
            server.settle()
            second = asyncio.run(burst(server.url, args.burst))
            table.dist(f"burst of {args.burst} creates -> first result (2nd, "
                       f"{args.burst_gap:g} s later, pool settled)", second,
                       note=f"max {max(second):.0f} ms")
        finally:
            server.stop()
    if args.density:
        # A server of its own with the pool off: idle sandboxes only, no refill beside them.
        server = start_server({"SELFBOX_MAX_SANDBOXES": str(cap),
                               "SELFBOX_MAX_SANDBOXES_PER_KEY": str(cap),
                               "SELFBOX_WARM_POOL_SIZE": "0"})
        try:
            asyncio.run(density(server, dclient, args.density, table))
        finally:
            server.stop()

    commit = os.environ.get("PYTHONPATH", "") or "(installed package)"
    print(f"\nimage {IMAGE}; host {os.cpu_count()} cores; server code from {commit}; "
          f"python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(table.render())
    if args.json:
        args.json.write_text(json.dumps(table.raw, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

