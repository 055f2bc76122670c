"""E2B's control-plane JSON: request bodies (pydantic) and response shapes (plain dicts).

Field names are E2B's wire names (``templateID``, ``envVars``, ...). Request models ignore
unknown fields: newer SDKs add options (``autoPause``, ``network``, ``mcp``...) that selfbox
does not implement, and refusing them would break ``Sandbox.create()`` outright.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..sandbox import Sandbox

__all__ = [
    "CLIENT_ID",
    "DEFAULT_TEMPLATES",
    "ENVD_VERSION",
    "ConnectBody",
    "NewSandbox",
    "TimeoutBody",
    "iso",
    "listed_sandbox",
    "sandbox_created",
]

# >= 0.4.0: the SDK sends no forced "user" credentials; >= 0.5.7: it may upload with
# application/octet-stream (which /files accepts). Newer features (file metadata, watch
# entries) are not implemented, so claim no more than this.
ENVD_VERSION = "0.5.7"
CLIENT_ID = "selfbox"
# E2B's default template names; both mean "the server's default runtime image".
DEFAULT_TEMPLATES = frozenset({"code-interpreter-v1", "base"})


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class NewSandbox(_Lenient):
    template_id: str = Field("code-interpreter-v1", alias="templateID", max_length=256)
    timeout: int | None = Field(None, gt=0, description="Lifetime, seconds.")
    metadata: dict[str, str] | None = None
    env_vars: dict[str, str] | None = Field(None, alias="envVars")
    allow_internet_access: bool | None = None


class ConnectBody(_Lenient):
    timeout: int | None = Field(None, gt=0)


class TimeoutBody(_Lenient):
    timeout: int = Field(gt=0, description="New lifetime from now, seconds.")


def iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def template_name(sandbox: Sandbox) -> str:
    alias = sandbox.extra.get("e2b_template")
    return alias if isinstance(alias, str) else sandbox.template


def sandbox_created(sandbox: Sandbox, token: str, domain: str | None = None) -> dict[str, Any]:
    """The ``Sandbox`` object of create and connect (``domain``: of ``get_host()``)."""
    created = {
        "templateID": template_name(sandbox),
        "sandboxID": sandbox.id,
        "clientID": CLIENT_ID,
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": token,
        # The SDK sends this one (not X-Access-Token) on /contexts, so return it too.
        "trafficAccessToken": token,
    }
    if domain:
        created["domain"] = domain
    return created


def listed_sandbox(sandbox: Sandbox) -> dict[str, Any]:
    """``ListedSandbox`` / ``SandboxDetail`` (the same required fields)."""
    return {
        "templateID": template_name(sandbox),
        "sandboxID": sandbox.id,
        "clientID": CLIENT_ID,
        "startedAt": iso(sandbox.created_at),
        "endAt": iso(sandbox.expires_at),
        "envdVersion": ENVD_VERSION,
        "cpuCount": max(1, math.ceil(sandbox.limits.cpu)),
        "memoryMB": sandbox.limits.memory_mb,
        "diskSizeMB": sandbox.limits.disk_mb,
        "state": "paused" if sandbox.state == "paused" else "running",
        "metadata": dict(sandbox.metadata),
        "allowInternetAccess": sandbox.limits.network != "none",
    }
