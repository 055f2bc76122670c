"""The runner's side of the channel on its own (no Docker), in a child process: it takes over
the process's stdin and stdout, as the runner does in a container."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

RUNNER_DIR = Path(__file__).resolve().parents[2] / "sandbox_server" / "runner"

# Two threads (as the stdout and stderr pumps) send a run's messages at once: the numbers
# (``seq``) the outbox gives them must reach the wire in order, or the server, which drops a
# number it has passed as a replayed duplicate, loses output.
RACE = """
import threading
from selfbox_runner.channel import Channel
from selfbox_runner.outbox import Outbox

channel = Channel()
outbox = Outbox()
channel.tap = outbox.tap
outbox.begin("run-1", None)
start = threading.Barrier(4)

def pump(name):
    start.wait()
    for i in range(2000):
        channel.send({"type": "stream", "id": "run-1", "name": name, "text": f"{i}\\n"})

threads = [threading.Thread(target=pump, args=(f"s{n}",)) for n in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
channel.send({"type": "log", "level": "info", "text": "not a run's message"})
"""


def test_messages_reach_the_wire_in_the_order_they_were_numbered(tmp_path: Path) -> None:
    shutil.copytree(RUNNER_DIR, tmp_path / "selfbox_runner")
    done = subprocess.run([sys.executable, "-c", RACE], cwd=tmp_path, capture_output=True,
                          timeout=120, check=True)
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    numbered = [m for m in messages if m["type"] == "stream"]
    assert [m["seq"] for m in numbered] == list(range(1, 8001))
    assert all(list(m)[:2] == ["type", "id"] for m in numbered)  # the head the server reads
    assert "seq" not in messages[-1] and messages[-1]["type"] == "log"
