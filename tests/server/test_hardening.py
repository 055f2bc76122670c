"""Hardening and resource caps, checked from inside real sandboxes."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer
from tests.server.test_api import run

pytestmark = pytest.mark.docker


def test_non_root_without_capabilities(client: httpx.Client, sandbox: str) -> None:
    code = (
        "import os\n"
        "status = open('/proc/self/status').read()\n"
        "caps = {l.split(':')[0]: l.split()[1] for l in status.splitlines() "
        "if l.startswith('Cap')}\n"
        "nnp = [l for l in status.splitlines() if l.startswith('NoNewPrivs')][0].split()[1]\n"
        "(os.getuid(), os.getgid(), caps['CapEff'], caps['CapBnd'], caps['CapPrm'], nnp)"
    )
    out = run(client, sandbox, code)
    assert out["results"][0]["data"]["text/plain"] == (
        "(1000, 1000, '0000000000000000', '0000000000000000', '0000000000000000', '1')"
    )


def test_network_is_unreachable_by_default(client: httpx.Client, sandbox: str) -> None:
    code = (
        "import socket\n"
        "ifaces = [name for _, name in socket.if_nameindex()]\n"
        "routes = open('/proc/net/route').read().splitlines()[1:]\n"
        "try:\n"  # TEST-NET-1: reserved, never anybody's host
        "    socket.create_connection(('192.0.2.1', 9), timeout=2)\n"
        "    reached = True\n"
        "except OSError as exc:\n"
        "    reached = exc.errno\n"
        "(ifaces, routes, reached)"
    )
    text = run(client, sandbox, code)["results"][0]["data"]["text/plain"]
    assert text == "(['lo'], [], 101)"  # ENETUNREACH


def test_root_is_read_only_and_writable_dirs_are_capped(client: httpx.Client) -> None:
    created = client.post("/v1/sandboxes", json={"disk_mb": 16, "memory_mb": 256})
    sandbox = created.json()["id"]
    try:
        ro = run(client, sandbox, "open('/usr/evil', 'w')")
        assert ro["error"]["name"] == "OSError" and "Read-only file system" in ro["error"]["value"]
        ok = run(client, sandbox, "open('/home/user/a.txt', 'w').write('hi')")
        assert ok["results"][0]["data"]["text/plain"] == "2"
        code = (
            "f = open('/home/user/fill.bin', 'wb')\n"
            "for _ in range(64):\n"
            "    f.write(b'0' * (1 << 20))\n"
            "f.close()"
        )
        fill = run(client, sandbox, code)
        assert fill["error"]["name"] == "OSError"
        assert "No space left on device" in fill["error"]["value"]
        tmp = run(client, sandbox, "open('/tmp/big', 'wb').write(b'0' * (32 << 20))")
        assert "No space left on device" in tmp["error"]["value"]
    finally:
        client.delete(f"/v1/sandboxes/{sandbox}")


def test_fork_bomb_is_stopped_by_the_pids_cap(client: httpx.Client) -> None:
    sandbox = client.post("/v1/sandboxes", json={"pids": 64, "memory_mb": 256}).json()["id"]
    try:
        code = (
            "import os, time\n"
            "children, error = 0, None\n"
            "try:\n"
            "    for _ in range(1000):\n"
            "        pid = os.fork()\n"
            "        if pid == 0:\n"
            "            time.sleep(30)\n"
            "            os._exit(0)\n"
            "        children += 1\n"
            "except OSError as exc:\n"
            "    error = exc.errno\n"
            "(children < 64, error)"
        )
        out = run(client, sandbox, code, timeout_s=30)
        assert out["results"][0]["data"]["text/plain"] == "(True, 11)"  # EAGAIN
        # Threads still work below the cap.
        threads = run(client, sandbox,
                      "import threading\nt = threading.Thread(target=print, args=('t',))\n"
                      "t.start(); t.join()")
        assert threads["status"] in ("ok", "error")
    finally:
        client.delete(f"/v1/sandboxes/{sandbox}")


def test_threads_work_under_the_default_pids_cap(client: httpx.Client, sandbox: str) -> None:
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(32) as pool:\n"
        "    total = sum(pool.map(lambda x: x * x, range(100)))\n"
        "total"
    )
    assert run(client, sandbox, code)["results"][0]["data"]["text/plain"] == "328350"


def test_memory_bomb_is_oom_killed_and_the_server_stays_healthy(
    server: LiveServer, client: httpx.Client
) -> None:
    sandbox = client.post("/v1/sandboxes", json={"memory_mb": 128}).json()["id"]
    try:
        bomb = "blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 24))"
        out = run(client, sandbox, bomb)
        assert out["status"] == "oom_killed"
        assert "memory_mb=128" in out["error"]["value"]
        info = client.get(f"/v1/sandboxes/{sandbox}").json()
        assert info["state"] == "dead" and "memory" in info["end_reason"]
        gone = client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": "1"})
        assert gone.status_code == 410
        assert "memory" in gone.json()["message"]
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        client.delete(f"/v1/sandboxes/{sandbox}")


def test_timeout_interrupts_and_keeps_the_sandbox(client: httpx.Client, sandbox: str) -> None:
    run(client, sandbox, "kept = 'yes'")
    out = run(client, sandbox, "import time\nwhile True:\n    time.sleep(0.1)", timeout_s=1)
    assert out["status"] == "timeout"
    assert out["error"]["name"] == "TimeoutError"
    assert 1.0 <= out["duration_s"] < 3.0
    busy = run(client, sandbox, "while True:\n    pass", timeout_s=1)
    assert busy["status"] == "timeout"
    assert run(client, sandbox, "kept")["results"][0]["data"]["text/plain"] == "'yes'"


def test_code_that_ignores_the_interrupt_gets_the_sandbox_killed(client: httpx.Client) -> None:
    sandbox = client.post("/v1/sandboxes", json={}).json()["id"]
    try:
        code = (
            "import signal, time\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "while True:\n"
            "    time.sleep(0.1)"
        )
        out = run(client, sandbox, code, timeout_s=1)
        assert out["status"] == "timeout"
        assert "killed" in out["error"]["value"]
        assert out["duration_s"] < 8
        assert client.get(f"/v1/sandboxes/{sandbox}").json()["state"] == "dead"
        assert client.post(f"/v1/sandboxes/{sandbox}/execute",
                           json={"code": "1"}).status_code == 410
    finally:
        client.delete(f"/v1/sandboxes/{sandbox}")


def test_output_is_capped_and_marked(client: httpx.Client, sandbox: str) -> None:
    out = run(client, sandbox, "for i in range(200000):\n    print('x' * 100)\n'finished'")
    assert out["status"] == "output_truncated"
    assert len(out["stdout"]) < 1_100_000
    assert "output truncated" in out["stdout"]
    # The code itself ran to the end.
    assert out["results"][0]["data"]["text/plain"] == "'finished'"


def test_cpu_and_memory_caps_are_applied(client: httpx.Client) -> None:
    sandbox = client.post("/v1/sandboxes", json={"cpu": 0.5, "memory_mb": 200}).json()["id"]
    try:
        code = (
            "import os\n"
            "def read(*paths):\n"
            "    for p in paths:\n"
            "        if os.path.exists(p):\n"
            "            return open(p).read().split()\n"
            "cpu = read('/sys/fs/cgroup/cpu.max', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us')\n"
            "period = read('/sys/fs/cgroup/cpu/cpu.cfs_period_us') or cpu[1:]\n"
            "mem = read('/sys/fs/cgroup/memory.max',\n"
            "           '/sys/fs/cgroup/memory/memory.limit_in_bytes')\n"
            "swap = read('/sys/fs/cgroup/memory.swap.max',\n"
            "            '/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes')\n"
            "(int(cpu[0]) / int(period[0]), int(mem[0]) // 2**20, swap and swap[0])"
        )
        text = run(client, sandbox, code)["results"][0]["data"]["text/plain"]
        quota, memory, swap = eval(text)  # our own tuple of numbers and strings
        assert quota == 0.5
        assert memory == 200
        # No swap beyond the memory cap: v2 says 0 swap, v1 says memory+swap == memory.
        assert swap in ("0", str(200 * 2**20), None)
    finally:
        client.delete(f"/v1/sandboxes/{sandbox}")


def test_the_docker_socket_and_host_are_out_of_reach(client: httpx.Client, sandbox: str) -> None:
    code = (
        "import os\n"
        "(os.path.exists('/var/run/docker.sock'), os.path.exists('/run/docker.sock'),\n"
        " sorted(k for k in os.environ if 'SELFBOX' in k or 'KEY' in k))"
    )
    text = run(client, sandbox, code)["results"][0]["data"]["text/plain"]
    assert text == "(False, False, [])"


def test_scripts_run_from_home_but_not_from_tmp(client: httpx.Client, sandbox: str) -> None:
    code = (
        "import os, subprocess\n"
        "ran = []\n"
        "for d in ('/home/user', '/tmp'):\n"
        "    path = d + '/x.sh'\n"
        "    open(path, 'w').write('#!/bin/sh\\necho ran')\n"
        "    os.chmod(path, 0o755)\n"
        "    try:\n"
        "        ran.append(subprocess.run([path], capture_output=True).stdout)\n"
        "    except PermissionError:\n"
        "        ran.append('noexec')\n"
        "ran"
    )
    assert run(client, sandbox, code)["results"][0]["data"]["text/plain"] == "[b'ran\\n', 'noexec']"
