"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..exceptions import ServerError
from ..jsonsafe import SafeJSONResponse
from .deps import Manager

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The server process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The Docker engine answers and the runtime image exists")
async def readyz(manager: Manager) -> SafeJSONResponse:
    checks: dict[str, Any] = {}
    try:
        checks["engine"] = await manager.call(manager.driver.ping)
        image = manager.settings.runtime_image
        checks["runtime_image"] = await manager.call(manager.driver.image_exists, image)
    except ServerError as exc:
        checks.setdefault("engine", False)
        checks["error"] = str(exc)
    ready = bool(checks.get("engine")) and bool(checks.get("runtime_image"))
    return SafeJSONResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                        200 if ready else 503)
