"""One sandbox cannot hurt another: what the runner (or any process in the sandbox) sends is
bounded in bytes, rate and memory, and frames only the runner may send cannot be forged.

The attacks write protocol frames straight into the container's stdout (``/proc/1/fd/1``,
docker-init's), as any process in a sandbox can, bypassing the runner's own caps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, start_server, stop_server
from tests.server.test_api import run

pytestmark = pytest.mark.docker

# Prepended to attack code: the running execution's id (user code can find it, so it is no
# secret) and a writer of raw bytes into the container's stdout.
RAW = """
import json, os
_eid = display.__self__.current.id
def raw(data):
    fd = os.open('/proc/1/fd/1', os.O_WRONLY)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.close(fd)
def frame(**msg):
    return (json.dumps(msg) + '\\n').encode()
"""


def peak_rss_mib(server: LiveServer) -> float:
    """The server process's peak resident memory so far (VmHWM), in MiB."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@pytest.fixture
def lone_server(docker_ready: None, tmp_path: Path) -> Iterator[LiveServer]:
    """A server of its own (no warm pool), so that its memory and log are this test's."""
    live = start_server(tmp_path, SELFBOX_WARM_POOL_SIZE="0")
    yield live
    stop_server(live)


def _sandbox(http: httpx.Client) -> str:
    created = http.post("/v1/sandboxes", json={"memory_mb": 512})
    assert created.status_code == 201, created.text
    sandbox_id: str = created.json()["id"]
    return sandbox_id


def test_forged_done_from_another_process_does_not_end_the_execution(
        client: httpx.Client, sandbox: str) -> None:
    code = RAW + (
        "import subprocess, sys, time\n"
        "forged = frame(type='done', id=_eid, status='ok', execution_count=99)\n"
        "subprocess.run([sys.executable, '-c', "
        "f'open(\"/proc/1/fd/1\", \"wb\").write({forged!r})'], check=True)\n"
        "time.sleep(1.0)\n"
        "print('still running')\n"
    )
    out = run(client, sandbox, code, timeout_s=30)
    assert out["status"] == "ok", out
    assert out["stdout"] == "still running\n"
    assert out["execution_count"] != 99


def test_results_beyond_the_execution_budget_are_dropped(client: httpx.Client,
                                                         sandbox: str) -> None:
    # 8 forged results of 6 MiB: more than the 16 MiB budget of one execution.
    code = RAW + (
        "line = frame(type='result', id=_eid, data={'text/plain': 'A' * (6 << 20)},"
        " is_main_result=False)\n"
        "for _ in range(8):\n"
        "    raw(line)\n"
    )
    out = run(client, sandbox, code, timeout_s=60)
    kept = sum(len(r["data"]["text/plain"]) for r in out["results"])
    assert kept <= 16 << 20 and len(out["results"]) == 2
    assert out["status"] == "output_truncated"
    assert "[results truncated" in out["stdout"] and "result_limit_bytes" in out["stdout"]


def test_the_runner_keeps_its_results_within_the_budget(client: httpx.Client,
                                                       sandbox: str) -> None:
    code = ("for i in range(6):\n"
            "    display({'text/plain': str(i) * (4 << 20)}, raw=True)\n")
    out = run(client, sandbox, code, timeout_s=60)
    assert out["status"] == "output_truncated"
    assert [r["data"]["text/plain"][0] for r in out["results"]] == ["0", "1", "2", "3"]
    # A bundle too large for one message is reported, not lost without a word.
    big = run(client, sandbox, "display({'text/plain': 'B' * (12 << 20)}, raw=True)",
              timeout_s=60)
    assert big["results"] == [] and big["status"] == "output_truncated"
    assert run(client, sandbox, "1 + 1")["results"][0]["data"]["text/plain"] == "2"


def test_a_result_flood_does_not_grow_the_server(lone_server: LiveServer) -> None:
    with lone_server.client() as http:
        sandbox = _sandbox(http)
        before = peak_rss_mib(lone_server)
        # 24 lines of 12 MiB, each over the 8 MiB line limit: dropped as they arrive.
        code = RAW + (
            "line = frame(type='result', id=_eid, data={'text/plain': 'A' * (12 << 20)},"
            " is_main_result=False)\n"
            "for _ in range(24):\n"
            "    raw(line)\n"
            "print('done')\n"
        )
        out = run(http, sandbox, code, timeout_s=120)
        assert out["stdout"] == "done\n" and out["results"] == []
        growth = peak_rss_mib(lone_server) - before
        assert growth < 64, f"the server's peak memory grew by {growth:.0f} MiB"
        assert run(http, sandbox, "1 + 1")["results"][0]["data"]["text/plain"] == "2"


def test_data_without_newlines_is_not_buffered(lone_server: LiveServer) -> None:
    with lone_server.client() as http:
        sandbox = _sandbox(http)
        before = peak_rss_mib(lone_server)
        code = RAW + (
            "chunk = b'x' * (1 << 20)\n"
            "for _ in range(96):\n"
            "    raw(chunk)\n"
            "raw(b'\\n')\n"
            "print('after')\n"
        )
        out = run(http, sandbox, code, timeout_s=120)
        assert out["status"] == "ok" and out["stdout"] == "after\n"
        growth = peak_rss_mib(lone_server) - before
        assert growth < 40, f"the server's peak memory grew by {growth:.0f} MiB"
        assert "dropped a line over" in lone_server.log()


def test_log_frames_are_rate_limited(lone_server: LiveServer) -> None:
    with lone_server.client() as http:
        sandbox = _sandbox(http)
        size_before = lone_server.log_path.stat().st_size
        code = RAW + (
            "raw(b''.join(frame(type='log', text='forged ' + 'x' * 100) "
            "for _ in range(20000)))\n"
            "print('ok')\n"
        )
        out = run(http, sandbox, code, timeout_s=60)
        assert out["stdout"] == "ok\n"
        grown = lone_server.log_path.stat().st_size - size_before
        # The burst (100 lines) and a few seconds' rate, not 20000 lines (~3 MB).
        assert grown < 100_000, f"the server log grew by {grown} bytes"
        assert lone_server.log().count("forged") < 200
