"""commands.* through the real SDK: processes run in the sandbox, as its user, streamed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2b import CommandExitException, TimeoutException

pytestmark = [pytest.mark.e2b, pytest.mark.docker]


def test_foreground_command(sbx: Any) -> None:
    result = sbx.commands.run("echo out; echo err >&2; id -u")
    assert result.exit_code == 0
    assert result.stdout == "out\n1000\n"  # the sandbox user, not root, not the host's
    assert result.stderr == "err\n"


def test_runs_inside_the_container(sbx: Any) -> None:
    sbx.commands.run("echo made-by-command > /tmp/cmd.txt")
    assert sbx.files.read("/tmp/cmd.txt") == "made-by-command\n"
    # No network (the default), read-only root, the sandbox's own hostname.
    assert sbx.commands.run("touch /usr/x 2>&1 || echo refused").stdout.strip().endswith(
        "refused")
    hostname = sbx.commands.run("cat /etc/hostname").stdout.strip()
    import socket
    assert hostname and hostname != socket.gethostname()


def test_nonzero_exit_raises_command_exit_exception(sbx: Any) -> None:
    with pytest.raises(CommandExitException) as caught:
        sbx.commands.run("echo partial; echo oops >&2; exit 3")
    assert caught.value.exit_code == 3
    assert caught.value.stdout == "partial\n"
    assert caught.value.stderr == "oops\n"


def test_streaming_callbacks_envs_and_cwd(sbx: Any) -> None:
    lines: list[str] = []
    result = sbx.commands.run("echo $WHO; pwd; sleep 0.5; echo late", envs={"WHO": "me"},
                              cwd="/tmp", on_stdout=lines.append)
    assert result.stdout == "me\n/tmp\nlate\n"
    assert "".join(lines) == result.stdout


def test_background_command_list_and_kill(sbx: Any) -> None:
    handle = sbx.commands.run("sleep 60", background=True)
    assert handle.pid > 0
    assert handle.pid in [p.pid for p in sbx.commands.list()]
    process = next(p for p in sbx.commands.list() if p.pid == handle.pid)
    assert process.cmd == "/bin/bash" and process.args[-1] == "sleep 60"
    assert sbx.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException):
        handle.wait()
    assert handle.pid not in [p.pid for p in sbx.commands.list()]
    assert sbx.commands.kill(handle.pid) is False  # not found any more


def test_background_output_and_reconnect(sbx: Any) -> None:
    handle = sbx.commands.run("for i in 1 2 3; do echo tick $i; sleep 0.4; done",
                              background=True)
    handle.disconnect()  # the process keeps running without a listener
    again = sbx.commands.connect(handle.pid)
    result = again.wait()
    assert result.exit_code == 0
    assert "tick 3\n" in result.stdout


def test_stdin(sbx: Any) -> None:
    handle = sbx.commands.run("read line; echo got:$line", background=True, stdin=True)
    sbx.commands.send_stdin(handle.pid, "hello\n")
    assert handle.wait().stdout == "got:hello\n"


def test_command_timeout(sbx: Any) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        sbx.commands.run("sleep 30", timeout=2)
    assert time.monotonic() - started < 15


def test_login_shell_keeps_the_sandbox_python(sbx: Any) -> None:
    # commands.run is `bash -l -c`; /etc/profile must not hide the venv with numpy & co.
    result = sbx.commands.run("python -c 'import numpy, pandas; print(\"ok\")'")
    assert result.stdout == "ok\n"


def test_there_is_no_root(sbx: Any) -> None:
    from e2b import SandboxException

    assert sbx.commands.run("whoami", user="user").stdout == "user\n"
    with pytest.raises(SandboxException, match="never as root"):
        sbx.commands.run("whoami", user="root")
    with pytest.raises(SandboxException, match="never as root"):
        sbx.files.read("/etc/hostname", user="root")


def test_a_left_behind_daemon_does_not_hang_the_command(sbx: Any) -> None:
    started = time.monotonic()
    result = sbx.commands.run("sleep 30 & echo started")
    assert result.stdout == "started\n"
    assert time.monotonic() - started < 10


def test_pty_session(sbx: Any) -> None:
    from e2b import PtySize

    output = bytearray()
    terminal = sbx.pty.create(PtySize(rows=24, cols=80), timeout=30)
    sbx.pty.send_stdin(terminal.pid, b"stty size; tty; echo $TERM; exit 5\n")
    with pytest.raises(CommandExitException) as caught:
        terminal.wait(on_pty=output.extend)
    text = output.decode(errors="replace")
    assert caught.value.exit_code == 5
    assert "24 80" in text and "/dev/pts/" in text and "xterm-256color" in text

    resized = bytearray()
    terminal = sbx.pty.create(PtySize(rows=24, cols=80), timeout=30)
    sbx.pty.resize(terminal.pid, PtySize(rows=40, cols=100))  # done before bash reads
    sbx.pty.send_stdin(terminal.pid, b"stty size; exit\n")
    assert terminal.wait(on_pty=resized.extend).exit_code == 0
    assert "40 100" in resized.decode(errors="replace")


def test_stream_input_and_close_stdin(sbx: Any) -> None:
    handle = sbx.commands.run("cat", background=True, stdin=True)
    sbx.commands.stream_input(handle.pid, ["first ", b"second\n", "third\n"])
    sbx.commands.close_stdin(handle.pid)  # EOF: cat ends
    assert handle.wait().stdout == "first second\nthird\n"
