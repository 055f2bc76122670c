"""Fast unit tests of the data-path pieces (no Docker): line splitting, budgets, frame parsing,
JSON that always encodes, and the driver's translation of engine refusals. The same behaviour
is exercised end to end on real sandboxes in test_isolation.py and test_no_5xx.py."""

from __future__ import annotations

import json
from typing import Any

import docker.errors
import pytest

from sandbox_server.driver import DockerDriver
from sandbox_server.exceptions import Conflict
from sandbox_server.execution import ExecutionBuilder
from sandbox_server.inbound import OVERLONG, LineSplitter, TokenBucket, parse_frame
from sandbox_server.jsonsafe import SafeJSONResponse, dumps_bytes, scrub


def test_lines_are_split_as_they_arrive_and_over_long_ones_dropped_on_the_fly() -> None:
    splitter = LineSplitter(max_line_bytes=10)
    assert list(splitter.feed(b"ab")) == []
    assert list(splitter.feed(b"c\nde")) == [b"abc"]
    assert list(splitter.feed(b"f\n\n")) == [b"def", b""]
    # An over-long line is reported once, while it arrives, and never buffered whole.
    assert list(splitter.feed(b"x" * 8)) == []
    assert list(splitter.feed(b"x" * 8)) == [OVERLONG]
    assert splitter.pending_bytes == 0
    for _ in range(1000):
        assert list(splitter.feed(b"y" * 4096)) == []
        assert splitter.pending_bytes == 0
    assert list(splitter.feed(b"tail\nok\n")) == [b"ok"]
    assert splitter.dropped_lines == 1


def test_splitting_is_linear_in_the_bytes() -> None:
    # 32 MiB without a newline in Docker-sized pieces: with a quadratic buffer this copies
    # terabytes; here every piece is looked at once and nothing is kept past the limit.
    splitter = LineSplitter(max_line_bytes=8 << 20)
    piece = b"z" * 32768
    for _ in range(1024):
        for _line in splitter.feed(piece):
            pass
        assert splitter.pending_bytes <= 8 << 20


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=0.0, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    debt = TokenBucket(rate=1000.0, burst=1000)
    assert debt.debt_s(500) == 0.0
    assert 0.9 < debt.debt_s(1500) <= 1.0


@pytest.mark.parametrize("line", [b"", b"[1]", b"nope", b'{"a": NaN}', b'{"a": Infinity}',
                                  b"{" * 100_000, b'{"x": 1' + b"0" * 5000 + b"}"])
def test_frames_that_are_not_json_objects_are_refused(line: bytes) -> None:
    assert parse_frame(line) is None


def test_lone_surrogates_in_frames_become_visible_text() -> None:
    frame = parse_frame(b'{"type":"result","data":{"text/plain":"a\\udcff\\ud83d\\ude00"}}')
    assert frame == {"type": "result", "data": {"text/plain": "a\\udcff\U0001f600"}}
    raw_utf8 = parse_frame(b'{"k\xed\xb3\xbf":"v"}')  # a UTF-8-encoded surrogate
    assert raw_utf8 is not None
    json.dumps(raw_utf8).encode("utf-8")


def test_responses_render_whatever_they_hold() -> None:
    content = {"a": "\udcff", "b": [float("nan")], "\ud800": 1}
    body = SafeJSONResponse(content).body
    assert json.loads(body)["b"] == [None]
    assert json.loads(dumps_bytes({"x": "\udcff"}))["x"] == "\udcff"  # a JSON escape
    assert scrub({"x": ["\udcff"]}) == {"x": ["\\udcff"]}


def test_only_the_runners_done_ends_an_execution() -> None:
    builder = ExecutionBuilder(1000, 100, token="secret")
    builder.feed({"type": "done", "id": "e", "status": "ok", "token": "guess"})
    builder.feed({"type": "done", "id": "e", "status": "ok"})
    assert not builder.done
    builder.feed({"type": "done", "id": "e", "status": "ok", "token": "secret"})
    assert builder.done and builder.build().status == "ok"


def test_the_result_budget_is_per_execution() -> None:
    builder = ExecutionBuilder(1000, 100, token="t")
    for _ in range(3):
        builder.feed({"type": "result", "data": {"text/plain": "x" * 40}})
    assert not builder.wants("result")
    builder.feed({"type": "done", "status": "ok", "token": "t"})
    execution = builder.build()
    assert len(execution.results) == 2 and execution.status == "output_truncated"
    assert "result_limit_bytes" in execution.stdout


class _RefusingAPI:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise self.error
        return refuse


class _FakeClient:
    def __init__(self, error: Exception) -> None:
        self.api = _RefusingAPI(error)


@pytest.mark.parametrize("error", [
    json.JSONDecodeError("Expecting value", "", 0),  # the body of a container going away
    docker.errors.APIError("conflict", explanation="container is not running"),
])
def test_stats_of_an_ending_container_are_a_conflict(error: Exception) -> None:
    driver = DockerDriver(client=_FakeClient(error))  # type: ignore[arg-type]
    with pytest.raises(Conflict):
        driver.stats("abc")


def test_a_cgroup_that_will_not_freeze_is_a_conflict() -> None:
    error = docker.errors.APIError("500", explanation="unable to freeze")
    driver = DockerDriver(client=_FakeClient(error))  # type: ignore[arg-type]
    with pytest.raises(Conflict):
        driver.pause("abc")


@pytest.mark.parametrize(("exc", "code"), [
    (OSError(30, "Read-only file system"), "permission_denied"),  # EROFS: a plain OSError
    (OSError(13, "Permission denied"), "permission_denied"),
    (OSError(28, "No space left on device"), "no_space"),
    (OSError(36, "File name too long"), "invalid_argument"),
    (OSError(24, "Too many open files"), "limit_reached"),
    (RuntimeError("anything else"), "internal"),
])
def test_runner_errors_by_errno(exc: BaseException, code: str) -> None:
    from sandbox_server.runner.protocol import error_code_of

    assert error_code_of(exc) == code
