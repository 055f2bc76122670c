"""Observability: request ids, structured (JSON) logs, Prometheus metrics.

* :class:`RequestObservability` is a pure-ASGI middleware: it takes the caller's
  ``X-Request-ID`` (or makes one), echoes it in the response, logs one access line per request
  and counts requests and errors by kind.
* :class:`Metrics` owns one :class:`prometheus_client.CollectorRegistry` per app (several apps
  may live in one process, e.g. in tests) and listens to the manager's ``observers`` hook.
* :func:`logging_config` is the ``logging.config.dictConfig`` for ``selfbox serve`` (uvicorn's
  loggers included), in ``text`` or ``json`` (one object per line).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI
    from prometheus_client import Metric

    from .manager import SandboxManager
    from .settings import Settings

__all__ = [
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "Metrics",
    "RequestObservability",
    "current_request_id",
    "install_observability",
    "logging_config",
]

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is echoed into logs and headers: accept only short, plain tokens.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_ERROR_BODY_CAP = 8192  # error bodies are small JSON; never buffer a large one

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "selfbox_request_id", default=None)

access_logger = logging.getLogger("selfbox.access")

# Executions run from milliseconds to SELFBOX_MAX_EXECUTION_TIMEOUT_S (an hour by default).
EXECUTION_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
                       600, 1800, 3600)
REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return _request_id.get()


# -- logging --------------------------------------------------------------------------------
class RequestIdFilter(logging.Filter):
    """Stamps every record with the current request id, so any log line can be correlated."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and the access
    fields (method, path, status, duration_ms) when the record carries them."""

    EXTRA_FIELDS = ("method", "path", "route", "status", "duration_ms", "client", "error_kind",
                    "sandbox_id")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or _request_id.get(),
        }
        for name in self.EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # a big int or a lone surrogate in a message: the slow, exact way
            return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get() or "-"
        return super().format(record)


def logging_config(log_format: str = "text", level: str = "info") -> dict[str, Any]:
    """A dictConfig for the whole process: selfbox's loggers and uvicorn's share one handler.

    uvicorn's own access log is off: :class:`RequestObservability` writes a richer one.
    """
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": formatter,
                       "filters": ["request_id"], "stream": "ext://sys.stderr"},
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


# -- metrics --------------------------------------------------------------------------------
class _ManagerCollector(Collector):
    """Sandbox counts read from the manager at scrape time (its ``counters`` are the truth)."""

    def __init__(self) -> None:
        self.manager: SandboxManager | None = None

    def collect(self) -> Iterator[Metric]:
        manager = self.manager
        live = GaugeMetricFamily("selfbox_sandboxes_live", "Sandboxes running or paused now.")
        live.add_metric([], manager.live_count() if manager is not None else 0)
        yield live
        counters = dict(manager.counters) if manager is not None else {}
        for name, help_text in (
            ("created", "Sandboxes created."),
            ("killed", "Sandboxes killed by their owner."),
            ("expired", "Sandboxes removed because their lifetime (timeout_s) ran out."),
            ("died", "Sandboxes whose container died on its own (OOM, killed from outside)."),
            ("adopted", "Sandboxes taken over from an earlier server at start."),
        ):
            family = CounterMetricFamily(f"selfbox_sandboxes_{name}", help_text)
            family.add_metric([], counters.get(name, 0))
            yield family
        pool = getattr(manager, "pool", None)
        for name, help_text, value in (
            ("ready", "Warm pool: sandboxes started and waiting to be claimed.",
             pool.ready_count if pool is not None else 0),
            ("starting", "Warm pool: sandboxes being started.",
             pool.starting_count if pool is not None else 0),
            ("target", "Warm pool: how many it wants ready now (grows with bursts).",
             pool.target if pool is not None else 0),
        ):
            gauge = GaugeMetricFamily(f"selfbox_warm_pool_{name}", help_text)
            gauge.add_metric([], value)
            yield gauge


class Metrics:
    """The app's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._manager = _ManagerCollector()
        self.registry.register(self._manager)
        self.executions = Counter(
            "selfbox_executions", "Executions finished, by status.", ["status"],
            registry=self.registry)
        self.execution_seconds = Histogram(
            "selfbox_execution_duration_seconds", "Wall time of executions, by status.",
            ["status"], buckets=EXECUTION_BUCKETS_S, registry=self.registry)
        self.sandboxes_ended = Counter(
            "selfbox_sandboxes_ended", "Sandboxes ended, by final state.", ["state"],
            registry=self.registry)
        self.requests = Counter(
            "selfbox_http_requests", "HTTP requests, by method, route and status.",
            ["method", "route", "status"], registry=self.registry)
        self.request_seconds = Histogram(
            "selfbox_http_request_duration_seconds", "HTTP request latency (streams included).",
            ["method", "route"], buckets=REQUEST_BUCKETS_S, registry=self.registry)
        self.errors = Counter(
            "selfbox_http_errors", "HTTP error responses, by status and error_code.",
            ["status", "kind"], registry=self.registry)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._execution_children: dict[str, tuple[Any, Any]] = {}

    # The manager's observers hook: called synchronously from the event loop.
    def observe(self, event: str, fields: dict[str, Any]) -> None:
        if event == "executed":
            execution = fields.get("execution")
            status = str(getattr(execution, "status", "unknown"))
            _count_and_time(self._execution_children, status, 64,
                            self.executions, (status,), self.execution_seconds, (status,),
                            float(getattr(execution, "duration_s", 0.0)))
        elif event == "ended":
            self.sandboxes_ended.labels(str(fields.get("state", "unknown"))).inc()

    def bind(self, manager: SandboxManager) -> None:
        self._manager.manager = manager
        if self.observe not in manager.observers:
            manager.observers.append(self.observe)

    def unbind(self) -> None:
        manager = self._manager.manager
        if manager is not None:
            with contextlib.suppress(ValueError):
                manager.observers.remove(self.observe)

    def observe_request(self, method: str, route: str, status: int, duration_s: float,
                        error_kind: str | None) -> None:
        # Routes are templates, methods and statuses a handful: few label sets.
        _count_and_time(self._request_children, (method, route, status), 4096,
                        self.requests, (method, route, str(status)),
                        self.request_seconds, (method, route), duration_s)
        if status >= 400:
            self.errors.labels(str(status), error_kind or f"http_{status}").inc()


def _count_and_time(cache: dict[Any, tuple[Any, Any]], key: Any, most: int,
                    counter: Counter, counter_labels: tuple[str, ...],
                    histogram: Histogram, histogram_labels: tuple[str, ...],
                    seconds: float) -> None:
    """Count one event and record how long it took. ``labels()`` builds and locks on every
    call; the label sets here are few, so their children are kept (at most ``most`` keys)."""
    children = cache.get(key)
    if children is None:
        children = (counter.labels(*counter_labels), histogram.labels(*histogram_labels))
        if len(cache) < most:
            cache[key] = children
    children[0].inc()
    children[1].observe(seconds)


# -- middleware -----------------------------------------------------------------------------
def _route_of(scope: Scope) -> str:
    """The matched route's template (bounded label values), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _error_kind(body: bytes) -> str | None:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        kind = json.loads(body).get("error_code")
        if isinstance(kind, str) and len(kind) <= 64:
            return kind
    return None


class RequestObservability:
    """Request id, one access log line and request/error metrics for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None,
                 logger: logging.Logger | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = logger or access_logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID_REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or os.urandom(16).hex()
        token = _request_id.set(request_id)
        started = time.perf_counter()
        status = 500
        error_body = bytearray()
        capture = False

        async def observed_send(message: Message) -> None:
            nonlocal status, capture
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
                capture = status >= 400
            elif message["type"] == "http.response.body" and capture:
                error_body.extend(message.get("body", b"")[: _ERROR_BODY_CAP - len(error_body)])
            await send(message)

        kind: str | None = None
        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            status, kind = 500, "internal_error"
            raise
        finally:
            duration_s = time.perf_counter() - started
            if kind is None and status >= 400:
                kind = _error_kind(bytes(error_body))
            route = _route_of(scope)
            if self.metrics is not None:
                self.metrics.observe_request(scope.get("method", "?"), route, status,
                                             duration_s, kind)
            level = logging.WARNING if status >= 500 else logging.INFO
            if self.logger.isEnabledFor(level):
                client = scope.get("client")
                self.logger.log(
                    level, "%s %s %d %.1fms", scope.get("method"), scope.get("path"), status,
                    duration_s * 1000,
                    extra={"request_id": request_id, "method": scope.get("method"),
                           "path": scope.get("path"), "route": route, "status": status,
                           "duration_ms": round(duration_s * 1000, 3), "error_kind": kind,
                           "client": client[0] if client else None},
                )
            _request_id.reset(token)


# -- wiring ---------------------------------------------------------------------------------
def install_observability(app: FastAPI, settings: Settings) -> Metrics:
    """Add the middleware and ``/metrics`` to ``app``, and bind the metrics to the manager
    the app's lifespan creates (wrapping that lifespan, so app.py stays as it is)."""
    from .routers import metrics as metrics_router

    metrics = Metrics()
    app.state.metrics = metrics
    if getattr(settings, "metrics_enabled", True):
        app.include_router(metrics_router.router)
    # Added last, so it wraps every other middleware and sees their responses (413s too).
    app.add_middleware(RequestObservability, metrics=metrics)

    inner: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]] = (
        app.router.lifespan_context)

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            manager = getattr(app_.state, "manager", None)
            if manager is not None:
                metrics.bind(manager)
            try:
                yield state
            finally:
                metrics.unbind()

    app.router.lifespan_context = lifespan
    return metrics
