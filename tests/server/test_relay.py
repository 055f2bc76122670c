"""The watchdog relay on its own (no Docker): it passes lines on, eats heartbeats, and stops
its child when the server falls silent. Outside a container it kills only its own child."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sandbox_server.runner.relay import HEARTBEAT_LINE, ORPHAN_EXIT_CODE, _filter

RUNNER_DIR = Path(__file__).resolve().parents[2] / "sandbox_server" / "runner"


def relay(grace_s: float, *command: str, home: Path,
          module: str | None = None) -> subprocess.Popen[bytes]:
    """Run as the image runs it: the runner directory importable as ``selfbox_runner``; the
    child is ``command``, or ``module`` in a fork of the relay."""
    package = home / "selfbox_runner"
    if not package.exists():
        shutil.copytree(RUNNER_DIR, package)
    child = ["--module", module] if module is not None else ["--", *command]
    return subprocess.Popen([sys.executable, "-m", "selfbox_runner.relay", "--orphan-grace-s",
                             str(grace_s), *child], cwd=home,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_filter_drops_heartbeats_only() -> None:
    chunk = b'{"op":"ping"}\n' + HEARTBEAT_LINE + b'\n{"op":"execute"}\n'
    assert _filter(chunk) == b'{"op":"ping"}\n{"op":"execute"}\n'
    assert _filter(b'{"op":"ping"}\n') == b'{"op":"ping"}\n'


def test_lines_pass_and_heartbeats_do_not(tmp_path: Path) -> None:
    process = relay(30, "cat", home=tmp_path)
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(b'{"op":"one"}\n' + HEARTBEAT_LINE + b'\n{"op":"two"}\n')
        process.stdin.flush()
        assert process.stdout.readline() == b'{"op":"one"}\n'
        assert process.stdout.readline() == b'{"op":"two"}\n'
    finally:
        process.kill()
        process.wait(10)


def test_a_silent_server_stops_the_child(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    process = relay(1, "sh", "-c", f"echo $$ > {marker}; exec sleep 300", home=tmp_path)
    try:
        assert process.wait(20) == ORPHAN_EXIT_CODE
        child = int(marker.read_text())
        for _ in range(100):  # bounded: the kill is immediate, reaping may lag
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the child survived the orphan kill")
    finally:
        if process.poll() is None:
            process.kill()


def test_heartbeats_keep_it_alive_and_the_child_exit_code_passes_through(
        tmp_path: Path) -> None:
    process = relay(1, "sh", "-c", "read line; exit 7", home=tmp_path)
    assert process.stdin is not None
    for _ in range(6):  # 3 s of heartbeats against a 1 s grace
        process.stdin.write(HEARTBEAT_LINE + b"\n")
        process.stdin.flush()
        time.sleep(0.5)
        assert process.poll() is None
    process.stdin.write(b"go\n")
    process.stdin.flush()
    assert process.wait(10) == 7


def test_wait_for_server_starts_the_child_on_the_first_line(tmp_path: Path) -> None:
    """Swarm starts a sandbox before the server attaches: the runner must not say hello into
    the void. With --wait-for-server, nothing runs until a line arrives; the line's content
    (here a heartbeat, eaten) and what follows reach the child."""
    marker = tmp_path / "started"
    package = tmp_path / "selfbox_runner"
    shutil.copytree(RUNNER_DIR, package)
    process = subprocess.Popen(
        [sys.executable, "-m", "selfbox_runner.relay", "--orphan-grace-s", "30",
         "--wait-for-server", "--", "sh", "-c", f"touch {marker}; exec cat"],
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    try:
        time.sleep(0.5)
        assert not marker.exists()  # no child yet: no line from the server
        process.stdin.write(HEARTBEAT_LINE + b'\n{"op":"one"}\n')
        process.stdin.flush()
        assert process.stdout.readline() == b'{"op":"one"}\n'
        assert marker.exists()
    finally:
        process.kill()
        process.wait(10)


def test_wait_for_server_gives_up_after_the_grace_period(tmp_path: Path) -> None:
    package = tmp_path / "selfbox_runner"
    shutil.copytree(RUNNER_DIR, package)
    process = subprocess.Popen(
        [sys.executable, "-m", "selfbox_runner.relay", "--orphan-grace-s", "1",
         "--wait-for-server", "--", "sh", "-c", f"touch {tmp_path / 'started'}"],
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.wait(20) == ORPHAN_EXIT_CODE
        assert not (tmp_path / "started").exists()
    finally:
        process.kill()
        process.wait(10)


def test_a_module_runs_in_a_fork_of_the_relay_with_the_pipe_as_its_stdin(
        tmp_path: Path) -> None:
    """``--module``: the runner starts without a second interpreter, as ``python -m`` would
    run it (``__main__``, its own argv[0]); lines reach it, heartbeats do not; its exit code
    is the relay's."""
    (tmp_path / "echoer.py").write_text(
        "import os, sys\n"
        "assert __name__ == '__main__' and sys.argv[0].endswith('echoer.py'), sys.argv\n"
        "print('parent', os.getppid(), flush=True)\n"
        "for line in sys.stdin:\n"
        "    print('got', line.strip(), flush=True)\n"
        "    if 'bye' in line:\n"
        "        sys.exit(7)\n")
    process = relay(30, home=tmp_path, module="echoer")
    assert process.stdin is not None and process.stdout is not None
    try:
        assert process.stdout.readline() == f"parent {process.pid}\n".encode()
        process.stdin.write(HEARTBEAT_LINE + b'\n{"op":"one"}\n')
        process.stdin.flush()
        assert process.stdout.readline() == b'got {"op":"one"}\n'
        process.stdin.write(b'{"op":"bye"}\n')
        process.stdin.flush()
        assert process.stdout.readline() == b'got {"op":"bye"}\n'
        assert process.wait(20) == 7
    finally:
        process.kill()
        process.wait(10)


def test_bad_arguments_are_refused_with_the_usage(tmp_path: Path) -> None:
    package = tmp_path / "selfbox_runner"
    shutil.copytree(RUNNER_DIR, package)
    for args in ([], ["--module", "x", "--", "cat"], ["--orphan-grace-s"], ["--bogus"]):
        done = subprocess.run([sys.executable, "-m", "selfbox_runner.relay", *args],
                              cwd=tmp_path, capture_output=True, timeout=30)
        assert done.returncode == 2, args
        assert b"usage: python3 -m selfbox_runner.relay" in done.stderr
