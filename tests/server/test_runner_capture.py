"""The runner's capture of fds 1 and 2: a drain after an execution that wrote nothing costs no
marker; with output, everything written before a drain is forwarded before the drain ends."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from sandbox_server.runner import capture as capture_module
from sandbox_server.runner.capture import StreamCapture


@pytest.fixture
def captured() -> Iterator[tuple[int, StreamCapture, list[str]]]:
    got: list[str] = []
    spare = os.open(os.devnull, os.O_WRONLY)
    capture = StreamCapture(spare, "stdout", lambda name, text: got.append(text))
    try:
        yield spare, capture, got
    finally:
        os.close(spare)


def test_a_drain_with_nothing_written_is_over_at_once(
        captured: tuple[int, StreamCapture, list[str]]) -> None:
    fd, capture, got = captured
    assert capture.mark() is capture_module._DRAINED
    os.write(fd, b"x")
    event = capture.mark()
    assert event is not None and event.wait(5)
    assert "".join(got) == "x"
    assert capture.mark() is capture_module._DRAINED  # the marker went, nothing is held


def test_everything_written_before_a_drain_is_forwarded_before_it_ends(
        captured: tuple[int, StreamCapture, list[str]]) -> None:
    fd, capture, got = captured
    rng = random.Random(15)
    for i in range(300):
        # Sizes around the pipe's buffer and the pump's reads; some rounds write nothing.
        data = "" if i % 5 == 0 else f"<{i}>" + "y" * rng.choice([0, 1, 4095, 65536, 70000])
        if data:
            os.write(fd, data.encode())
        event = capture.mark()
        assert event is not None and event.wait(5)
        assert "".join(got) == data, i
        got.clear()


def test_a_partial_character_is_flushed_by_the_drain(
        captured: tuple[int, StreamCapture, list[str]]) -> None:
    fd, capture, got = captured
    os.write(fd, b"caf" + "é".encode()[:1])
    event = capture.mark()
    assert event is not None and event.wait(5)
    assert "".join(got) == "caf\ufffd"


def test_a_loop_of_small_writes_goes_as_few_messages(
        captured: tuple[int, StreamCapture, list[str]]) -> None:
    """One message per write would be thousands a second, which the server's read budget per
    sandbox makes wait: the pump collects what follows a message for COALESCE_S, so messages
    are at least that far apart; a first write after a pause goes at once."""
    import time

    fd, capture, got = captured
    os.write(fd, b"first")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.001)
    assert got == ["first"]  # not held back
    started = time.monotonic()
    for i in range(20000):
        os.write(fd, b"%d\n" % i)
    event = capture.mark()
    assert event is not None and event.wait(5)
    elapsed = time.monotonic() - started
    assert "".join(got[1:]) == "".join(f"{i}\n" for i in range(20000))
    assert len(got) - 1 <= elapsed / capture_module.COALESCE_S + 2, (len(got), elapsed)
