"""Request ids, JSON access logs and /metrics, without Docker (a fake manager)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from executors.models import Execution
from sandbox_server.app import create_app
from sandbox_server.observability import JsonFormatter, RequestIdFilter, logging_config
from sandbox_server.settings import Settings


class FakeManager:
    """Just what the app's lifespan and the metrics touch."""

    def __init__(self) -> None:
        self.counters = {"created": 3, "killed": 1, "expired": 0, "died": 2}
        self.observers: list[Callable[[str, dict[str, Any]], None]] = []
        self.live = 2
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    def live_count(self) -> int:
        return self.live


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Capture selfbox.access as the JSON handler would write it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    access = logging.getLogger("selfbox.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    yield stream
    access.removeHandler(handler)
    access.setLevel(old_level)


def make_app(manager: FakeManager) -> Any:
    settings = Settings(api_keys=["k1"], _env_file=None)  # type: ignore[call-arg]
    return create_app(settings, manager=manager)  # type: ignore[arg-type]


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        metric, _, label_text = key.partition("{")
        if metric != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if part)
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    return None


def test_request_id_is_echoed_or_generated(logs: io.StringIO) -> None:
    manager = FakeManager()
    with TestClient(make_app(manager)) as client:
        given = client.get("/healthz", headers={"X-Request-ID": "req-abc.123"})
        made = client.get("/healthz")
        hostile = client.get("/healthz", headers={"X-Request-ID": "a b\"c" + "x" * 200})
    assert given.headers["x-request-id"] == "req-abc.123"
    assert len(made.headers["x-request-id"]) == 32
    # Ids that could forge log fields are replaced, not echoed.
    assert hostile.headers["x-request-id"] != "a b\"c" + "x" * 200
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == [
        "req-abc.123", made.headers["x-request-id"], hostile.headers["x-request-id"]]
    first = lines[0]
    assert {"time", "level", "logger", "message", "request_id", "method", "path", "status",
            "duration_ms"} <= set(first)
    assert (first["method"], first["path"], first["status"], first["logger"]) == (
        "GET", "/healthz", 200, "selfbox.access")
    assert first["time"].endswith("Z") and first["duration_ms"] >= 0
    assert manager.started and manager.closed


def test_metrics_count_sandboxes_executions_and_errors(logs: io.StringIO) -> None:
    manager = FakeManager()
    with TestClient(make_app(manager)) as client:
        assert len(manager.observers) == 1  # bound by the lifespan
        notify = manager.observers[0]
        notify("executed", {"sandbox": None, "execution": Execution(status="ok", duration_s=0.2)})
        notify("executed", {"sandbox": None,
                            "execution": Execution(status="timeout", duration_s=61.0)})
        notify("ended", {"sandbox": None, "state": "expired", "reason": "lifetime"})
        assert client.get("/v1/sandboxes").status_code == 401  # no API key
        assert client.get("/no/such/route").status_code == 404
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "selfbox_sandboxes_live") == 2
    assert sample(text, "selfbox_sandboxes_created_total") == 3
    assert sample(text, "selfbox_sandboxes_killed_total") == 1
    assert sample(text, "selfbox_sandboxes_expired_total") == 0
    assert sample(text, "selfbox_sandboxes_died_total") == 2
    assert sample(text, "selfbox_sandboxes_ended_total", state="expired") == 1
    assert sample(text, "selfbox_executions_total", status="ok") == 1
    assert sample(text, "selfbox_executions_total", status="timeout") == 1
    assert sample(text, "selfbox_execution_duration_seconds_count", status="timeout") == 1
    assert sample(text, "selfbox_execution_duration_seconds_bucket", status="ok",
                  le="0.25") == 1
    # Errors by kind: the error_code of the JSON error body.
    assert sample(text, "selfbox_http_errors_total", status="401", kind="unauthorized") == 1
    assert sample(text, "selfbox_http_errors_total", status="404", kind="not_found") == 1
    # Routes are templates (bounded cardinality), unmatched paths one bucket.
    assert sample(text, "selfbox_http_requests_total", method="GET", route="unmatched",
                  status="404") == 1
    assert sample(text, "selfbox_http_requests_total", method="GET", route="/v1/sandboxes",
                  status="401") == 1
    assert not manager.observers  # unbound at shutdown


def test_each_app_has_its_own_registry() -> None:
    one, two = FakeManager(), FakeManager()
    two.live = 7
    with TestClient(make_app(one)) as first, TestClient(make_app(two)) as second:
        first.get("/healthz")
        assert sample(first.get("/metrics").text, "selfbox_sandboxes_live") == 2
        assert sample(second.get("/metrics").text, "selfbox_sandboxes_live") == 7
        assert sample(second.get("/metrics").text, "selfbox_http_requests_total",
                      method="GET", route="/healthz", status="200") is None


def test_metrics_can_be_turned_off() -> None:
    settings = Settings(api_keys=["k1"], metrics_enabled=False,  # type: ignore[call-arg]
                        _env_file=None)
    with TestClient(create_app(settings, manager=FakeManager())) as client:  # type: ignore[arg-type]
        assert client.get("/metrics").status_code == 404


def test_logging_config_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logging.config.dictConfig(logging_config("json", "info"))
        logging.getLogger("selfbox.test").warning("hello %s", "world")
        logging.getLogger("uvicorn.access").info("dropped: the middleware logs access")
        line = capsys.readouterr().err.strip()
        entry = json.loads(line)
        assert (entry["level"], entry["logger"], entry["message"]) == (
            "warning", "selfbox.test", "hello world")
        assert entry["request_id"] is None
        logging.config.dictConfig(logging_config("text", "info"))
        logging.getLogger("selfbox.test").warning("plain")
        text = capsys.readouterr().err
        assert "WARNING selfbox.test [-] plain" in text
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
