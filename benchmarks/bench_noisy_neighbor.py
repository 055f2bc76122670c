"""Noisy neighbours: one quiet tenant runs ``1+1`` in a loop while three hostile sandboxes (of
another API key) flood the server's data path; the same loop without them is the baseline.

    .venv/bin/python benchmarks/bench_noisy_neighbor.py [--seconds 20] [--hostile-cpu 0.5]

The hostile sandboxes write protocol frames straight into their container's stdout (as any
process in a sandbox can, past the runner's own caps):

* **results**: result frames of 6 MiB for the running execution, without pause;
* **newline-less**: 1 MiB writes that never end a line;
* **logs+output**: ``log`` frames and ``stream`` frames (stdout) in batches.

Reported: the quiet tenant's p50/p95 with and without the flood, ``/healthz`` p50/p99 during
the flood, and the server's RSS growth (its peak during the flood minus its RSS before).
Targets (issue 9): quiet p50 within 2x of the undisturbed p50, RSS growth <= 64 MiB, /healthz
p99 <= 100 ms. Starts its own ``selfbox serve`` (needs the Docker engine and runtime image).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

IMAGE = os.environ.get("SELFBOX_TEST_RUNTIME_IMAGE", "selfbox/runtime:latest")
QUIET_KEY, HOSTILE_KEY = "quiet-key", "hostile-key"

RAW = """
import json, os, time
_eid = display.__self__.current.id
_fd = os.open('/proc/1/fd/1', os.O_WRONLY)
def raw(data):
    view = memoryview(data)
    while view:
        view = view[os.write(_fd, view):]
def frame(**msg):
    return (json.dumps(msg, separators=(',', ':')) + '\\n').encode()
_end = time.monotonic() + {seconds}
"""

FLOODS = {
    "results": RAW + (
        "line = frame(type='result', id=_eid, data={{'text/plain': 'A' * (6 << 20)}},"
        " is_main_result=False)\n"
        "while time.monotonic() < _end:\n"
        "    raw(line)\n"
    ),
    "newline-less": RAW + (
        "chunk = b'x' * (1 << 20)\n"
        "while time.monotonic() < _end:\n"
        "    raw(chunk)\n"
        "raw(b'\\n')\n"
    ),
    "logs+output": RAW + (
        "logs = b''.join(frame(type='log', text='noise ' * 20) for _ in range(1000))\n"
        "out = b''.join(frame(type='stream', id=_eid, name='stdout', text='o' * 1000)"
        " for _ in range(1000))\n"
        "while time.monotonic() < _end:\n"
        "    raw(logs)\n"
        "    raw(out)\n"
    ),
}

# The control: the same three sandboxes only burning their CPU quota, sending nothing. What
# the quiet tenant loses here is the host's CPU, not the server's data path.
CPU_ONLY = {name: RAW + "while time.monotonic() < _end:\n    pass\n" for name in FLOODS}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_server(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SELFBOX_API_KEYS": f"{QUIET_KEY},{HOSTILE_KEY}",
           "SELFBOX_PORT": str(port), "SELFBOX_RUNTIME_IMAGE": IMAGE,
           "SELFBOX_DEPLOYMENT": f"bench-noisy-{port}", "SELFBOX_WARM_POOL_SIZE": "0",
           "SELFBOX_MAX_EXECUTION_TIMEOUT_S": "600"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "sandbox_server.cli", "serve"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/healthz", timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def quiet_loop(http: httpx.Client, sandbox: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        response = http.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": "1+1"})
        latencies.append((time.perf_counter() - start) * 1000)
        assert response.json()["results"][0]["data"]["text/plain"] == "2", response.text
    return latencies


def probe_health(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            start = time.perf_counter()
            http.get("/healthz")
            out.append((time.perf_counter() - start) * 1000)
            stop.wait(0.05)


def sample_rss(pid: int, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        out.append(rss_mib(pid))
        stop.wait(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--hostile-cpu", type=float, default=0.5,
                        help="cpu of each hostile sandbox (the host has its own limits)")
    parser.add_argument("--cpu-only", action="store_true",
                        help="control run: the hostile sandboxes burn CPU but send nothing")
    parser.add_argument("--only", choices=sorted(FLOODS), default=None,
                        help="run one kind of flood (in all three sandboxes)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    log_path = Path(tempfile.mkdtemp(prefix="bench-noisy-")) / "server.log"
    process, url = start_server(log_path)
    figures: dict[str, float] = {}
    try:
        quiet = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {QUIET_KEY}"},
                             timeout=120)
        hostile = httpx.Client(base_url=url,
                               headers={"Authorization": f"Bearer {HOSTILE_KEY}"}, timeout=600)
        sandbox = quiet.post("/v1/sandboxes", json={}).json()["id"]
        quiet_loop(quiet, sandbox, 2.0)  # warm up

        health: list[float] = []
        stop = threading.Event()
        prober = threading.Thread(target=probe_health, args=(url, stop, health))
        prober.start()
        baseline = quiet_loop(quiet, sandbox, args.seconds)
        stop.set()
        prober.join()
        figures["healthz_p99_quiet_ms"] = pct(health, 0.99)

        attackers = [hostile.post("/v1/sandboxes", json={"cpu": args.hostile_cpu,
                                                         "memory_mb": 512}).json()["id"]
                     for _ in FLOODS]
        rss_before = rss_mib(process.pid)
        cpu_before = cpu_seconds(process.pid)
        outcomes: dict[str, str] = {}

        def flood(name: str, target: str) -> None:
            kind = args.only or name
            code = (CPU_ONLY if args.cpu_only else FLOODS)[kind].format(
                seconds=args.seconds + 3)
            response = hostile.post(f"/v1/sandboxes/{target}/execute",
                                    json={"code": code, "timeout_s": args.seconds + 60})
            outcomes[name] = (f"{response.status_code} "
                              f"{response.json().get('status', response.text[:100])}")

        floods = [threading.Thread(target=flood, args=(name, target))
                  for name, target in zip(FLOODS, attackers, strict=True)]
        for thread in floods:
            thread.start()
        time.sleep(2.0)  # the floods are under way
        health, rss = [], []
        stop = threading.Event()
        watchers = [threading.Thread(target=probe_health, args=(url, stop, health)),
                    threading.Thread(target=sample_rss, args=(process.pid, stop, rss))]
        for thread in watchers:
            thread.start()
        flooded = quiet_loop(quiet, sandbox, args.seconds)
        figures["server_cpu_s_per_s_flood"] = (cpu_seconds(process.pid) - cpu_before) / (
            args.seconds + 2)
        stop.set()
        for thread in [*watchers, *floods]:
            thread.join(120)

        figures.update({
            "quiet_p50_ms": pct(baseline, 0.5), "quiet_p95_ms": pct(baseline, 0.95),
            "quiet_runs": len(baseline),
            "flooded_p50_ms": pct(flooded, 0.5), "flooded_p95_ms": pct(flooded, 0.95),
            "flooded_runs": len(flooded),
            "healthz_p50_flood_ms": pct(health, 0.5), "healthz_p99_flood_ms": pct(health, 0.99),
            "rss_before_mib": rss_before, "rss_peak_flood_mib": max(rss, default=rss_before),
            "server_log_bytes": log_path.stat().st_size,
        })
        figures["rss_growth_mib"] = figures["rss_peak_flood_mib"] - rss_before
        for target in [sandbox, *attackers]:
            (quiet if target == sandbox else hostile).delete(f"/v1/sandboxes/{target}")
    finally:
        process.terminate()
        process.wait(30)

    print(f"| {'what':<42} | {'value':>10} |")
    print(f"|{'-' * 44}|{'-' * 12}|")
    for name, value in figures.items():
        print(f"| {name:<42} | {value:>10.1f} |")
    for name, outcome in outcomes.items():
        print(f"hostile {name}: {outcome}")
    ratio = figures["flooded_p50_ms"] / max(figures["quiet_p50_ms"], 1e-9)
    print(f"\nquiet p50 ratio (flood / undisturbed): {ratio:.2f} (target <= 2)")
    print(f"server RSS growth: {figures['rss_growth_mib']:.1f} MiB (target <= 64)")
    print(f"/healthz p99 during the flood: {figures['healthz_p99_flood_ms']:.1f} ms "
          "(target <= 100)")
    if args.json:
        args.json.write_text(json.dumps({**figures, "outcomes": outcomes}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
