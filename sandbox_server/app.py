"""``create_app(settings)``: the FastAPI application, with a lifespan that owns the manager."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from .e2b import routers as e2b_routers
from .e2b.interpreter import execute_route as e2b_execute_route
from .errors import install_error_handlers
from .fastpath import ExecuteFastPath
from .idempotency import IdempotencyStore
from .ingress import IngressHosts
from .ingress import router as ingress_router
from .jsonsafe import SafeJSONResponse
from .manager import SandboxManager
from .middleware import BodySizeLimit
from .observability import install_observability
from .routers import executions, health, runtime, sandboxes
from .settings import Settings

__all__ = ["create_app"]

logger = logging.getLogger("selfbox.server")


def _tell_on_signals(manager: SandboxManager) -> None:
    """Chain the server's SIGTERM/SIGINT handlers (uvicorn's, installed before start-up) so the
    manager knows of the shutdown before requests in flight are cancelled."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(number: int, frame: FrameType | None,
                    chained: Callable[[int, FrameType | None], Any] = previous) -> None:
            manager.shutting_down()
            chained(number, frame)

        with contextlib.suppress(ValueError):  # not the main thread (tests): nothing to chain
            signal.signal(signum, handler)


def create_app(settings: Settings | None = None, manager: SandboxManager | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = manager or SandboxManager(settings)
        app.state.manager = owned
        if not settings.api_keys:
            logger.warning("no API key configured (SELFBOX_API_KEYS): every request is refused")
        await owned.start()
        _tell_on_signals(owned)
        try:
            yield
        finally:
            await owned.close()

    # /docs and /redoc load Swagger UI and ReDoc from the server itself (the assets ship in
    # fastapi-offline), not from a CDN: the pages work on hosts without internet.
    app = FastAPIOffline(
        title="selfbox",
        version="0.1.0",
        summary="Hardened, throwaway Docker sandboxes with stateful Python, for AI agents.",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry asks the global providers on every request; selfbox
        # configures none (its metrics are Prometheus, its logs carry request ids), so off.
        telemetry={"tracing": False, "metrics": False, "logs": False,
                   "operation_spans": False},
        default_response_class=SafeJSONResponse,
        # No badge fetched from the public Swagger validator either.
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.settings = settings
    app.state.idempotency = IdempotencyStore(settings.idempotency_window_s)
    install_error_handlers(app)
    for router in (sandboxes.router, executions.router, runtime.router, health.router,
                   ingress_router):
        app.include_router(router)
    for router in e2b_routers:  # the E2B-compatible API (unprefixed paths, like E2B's)
        app.include_router(router)
    # Innermost middleware: inside the body-size limit and the request-id/metrics layer.
    app.add_middleware(ExecuteFastPath, route=executions.execute_route,
                       e2b_route=e2b_execute_route)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(IngressHosts, settings=settings)  # before routing: Host -> ingress
    install_observability(app, settings)  # request ids, access logs, /metrics
    return app
