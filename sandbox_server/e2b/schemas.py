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
    "NetworkUpdate",
    "NewSandbox",
    "TimeoutBody",
    "iso",
    "listed_sandbox",
    "network_info",
    "network_policy_fields",
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
    network: dict[str, Any] | None = None  # E2B's SandboxNetworkConfig (camelCase keys)


class NetworkUpdate(_Lenient):
    """``PUT /sandboxes/{id}/network``: replaces the whole egress configuration."""

    allow_out: list[str] | None = Field(None, alias="allowOut")
    deny_out: list[str] | None = Field(None, alias="denyOut")
    dns_servers: list[str] | None = Field(None, alias="dnsServers")
    rules: dict[str, Any] | None = None
    egress_proxy: dict[str, Any] | None = Field(None, alias="egressProxy")
    allow_internet_access: bool | None = None


# E2B's camelCase network keys -> the policy model's names.
_NETWORK_KEYS = {"allowOut": "allow_out", "denyOut": "deny_out", "dnsServers": "dns_servers",
                 "egressProxy": "egress_proxy", "rules": "rules"}


def network_policy_fields(network: dict[str, Any] | None) -> dict[str, Any]:
    """The egress fields of E2B's ``network`` object (ingress options are ignored: selfbox
    sandbox hosts always need the access token)."""
    return {ours: network[theirs] for theirs, ours in _NETWORK_KEYS.items()
            if network and network.get(theirs) is not None}


def network_info(sandbox: Sandbox) -> dict[str, Any] | None:
    if sandbox.egress is None:
        return None
    wire = sandbox.egress.to_wire()
    back = {ours: theirs for theirs, ours in _NETWORK_KEYS.items()}
    return {back.get(k, k): v for k, v in wire.items()}


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
        "allowInternetAccess": (sandbox.egress.internet if sandbox.egress is not None
                                else sandbox.limits.network != "none"),
        **({"network": network_info(sandbox)} if sandbox.egress is not None else {}),
    }
