"""Helpers shared by the server and peer benchmarks: percentiles, the table, a throwaway
``selfbox serve``, process CPU and memory from ``/proc``, and raw Docker start-ups.

Not a library of the project: benchmark scripts import it from their own directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import docker
import httpx

IMAGE = os.environ.get("SELFBOX_TEST_RUNTIME_IMAGE", "selfbox/runtime:latest")
KEY = "bench-key"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Table:
    """Rows of (measure, p50 or value, p95 or "", n, unit, note)."""

    rows: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def dist(self, name: str, values: list[float], unit: str = "ms", note: str = "") -> None:
        self.raw[name] = {"p50": pct(values, 0.5), "p95": pct(values, 0.95), "n": len(values)}
        self.rows.append((name, f"{pct(values, 0.5):.2f}", f"{pct(values, 0.95):.2f}",
                          str(len(values)), unit, note))

    def value(self, name: str, value: float, unit: str, n: int | str = "", note: str = "",
              digits: int = 2) -> None:
        self.raw[name] = {"value": value, "n": n}
        self.rows.append((name, f"{value:.{digits}f}", "", str(n), unit, note))

    def render(self) -> str:
        head = ("measure", "p50 / value", "p95", "n", "unit", "note")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(len(head))]
        lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        for r in self.rows:
            cells = [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in
                                              zip(r[1:4], widths[1:4], strict=True)),
                     r[4].ljust(widths[4]), r[5].ljust(widths[5])]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


# -- the server under test ------------------------------------------------------------------
@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    deployment: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    def settle(self, bound_s: float = 120.0) -> None:
        """Wait until the warm pool is full and starts nothing (``selfbox_warm_pool_*`` in
        /metrics), so one measure does not pay for the refill after another; a server without
        those metrics gets a fixed pause."""
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            gauges = {}
            for line in httpx.get(self.url + "/metrics", timeout=10).text.splitlines():
                if line.startswith("selfbox_warm_pool_"):
                    name, value = line.split()
                    gauges[name] = float(value)
            if not gauges:
                time.sleep(5)
                return
            if (gauges["selfbox_warm_pool_starting"] == 0
                    and gauges["selfbox_warm_pool_ready"] >= gauges["selfbox_warm_pool_target"]):
                time.sleep(1)
                return
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        # A server keeps its warm pool's containers for the next server of its deployment;
        # this deployment has no next server.
        client = docker.from_env()
        for container in client.api.containers(
                all=True, filters={"label": f"io.selfbox.deployment={self.deployment}"}):
            client.api.remove_container(container["Id"], force=True)


def start_server(extra_env: dict[str, str] | None = None) -> Server:
    """``python -m sandbox_server.cli serve`` on a free loopback port, with this process's
    ``PYTHONPATH`` (so a checkout of another commit can be measured the same way)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SELFBOX_API_KEYS": KEY, "SELFBOX_PORT": str(port),
           "SELFBOX_RUNTIME_IMAGE": IMAGE, "SELFBOX_DEPLOYMENT": f"bench-{port}",
           "SELFBOX_LOG_LEVEL": "warning", **(extra_env or {})}
    # A neutral working directory: `-m` puts it first on sys.path (ahead of PYTHONPATH), and
    # the server reads a .env file from it.
    process = subprocess.Popen([sys.executable, "-m", "sandbox_server.cli", "serve"], env=env,
                               cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url + "/healthz", timeout=1)
            return Server(process, url, env["SELFBOX_DEPLOYMENT"])
        except httpx.HTTPError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pss_mib(pid: int) -> float:
    """Proportional set size: shared pages (a binary's text) split among their users."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def shim_pids() -> dict[str, int]:
    """Container id -> pid of its containerd-shim (one per container with runc v2)."""
    found: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and b"containerd-shim" in args[0] and b"-id" in args:
            found[args[args.index(b"-id") + 1].decode()] = int(entry)
    return found


def cgroup_memory_mib(container_id: str) -> float | None:
    """A container's memory, cgroup v1 (usage minus inactive file cache, as ``docker stats``
    does on v2); None when the cgroup cannot be read (v2, or another driver)."""
    base = f"/sys/fs/cgroup/memory/docker/{container_id}"
    try:
        with open(f"{base}/memory.usage_in_bytes") as f:
            usage = int(f.read())
        inactive = 0
        with open(f"{base}/memory.stat") as f:
            for line in f:
                key, value = line.split()
                if key == "total_inactive_file":
                    inactive = int(value)
        return (usage - inactive) / 2**20
    except OSError:
        return None


def container_memory_mib(client: docker.DockerClient, container_id: str) -> float:
    direct = cgroup_memory_mib(container_id)
    if direct is not None:
        return direct
    usage = client.api.stats(container_id, stream=False)["memory_stats"]
    stats = usage.get("stats", {})
    return float(usage["usage"] - (stats.get("inactive_file") or stats.get("cache", 0))) / 2**20


# -- raw Docker, for comparison ---------------------------------------------------------------
def bare_start_ms(client: docker.DockerClient, command: list[str], name: str) -> float:
    """create + attach + start of IMAGE through the Docker API, until the container's first
    byte of output; the container is removed afterwards (not timed)."""
    api = client.api
    start = time.perf_counter()
    created = api.create_container(IMAGE, command=command, stdin_open=True, name=name,
                                   network_disabled=True, labels={"selfbox.bench": "bare"},
                                   host_config=api.create_host_config(network_mode="none"))
    sock = api.attach_socket(created["Id"], params={"stdin": 1, "stdout": 1, "stderr": 1,
                                                    "stream": 1})
    raw = getattr(sock, "_sock", sock)
    try:
        api.start(created["Id"])
        raw.settimeout(30)
        data = raw.recv(4096)
        elapsed = (time.perf_counter() - start) * 1000
        if not data:
            raise RuntimeError(f"{command}: no output")
    finally:
        raw.close()
        api.remove_container(created["Id"], force=True)
    return elapsed
