"""E2B's control plane (``/sandboxes``, ``/v2/sandboxes``) over selfbox's one manager.

A sandbox made here is a selfbox sandbox like any other: same limits, owner (the API key),
lifetime and hardening, visible under ``/v1`` too, and the other way round. Status codes are
the ones the SDK's generated client accepts (a 200 where it expects 201 breaks create).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import urllib.parse
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from ..exceptions import Conflict, InvalidRequest, NotFound, SandboxGone
from ..idempotency import fingerprint
from ..jsonsafe import SafeJSONResponse
from ..manager import SandboxManager, SandboxSpec
from ..network import resolve_egress
from ..routers.deps import IdempotencyKey, Idempotent, Manager, Owner
from ..runner.protocol import Op
from ..sandbox import Sandbox
from .auth import ISSUED_KEY, issue_token
from .runner_ops import call_op
from .schemas import (
    DEFAULT_TEMPLATES,
    ConnectBody,
    NetworkUpdate,
    NewSandbox,
    TimeoutBody,
    iso,
    listed_sandbox,
    network_policy_fields,
    sandbox_created,
)

__all__ = ["router"]

router = APIRouter(tags=["e2b control plane"])

MAX_PAGE = 1000


def _live(manager: SandboxManager, owner: str, sandbox_id: str) -> Sandbox:
    """A live sandbox of the caller; a dead one is simply not found, as on E2B."""
    try:
        return manager.get(owner, sandbox_id)
    except SandboxGone as exc:
        raise NotFound(f"sandbox {sandbox_id!r} not found", sandbox_id=sandbox_id) from exc


@router.post("/v2/sandboxes", status_code=201, summary="Create a sandbox (E2B)")
@router.post("/sandboxes", status_code=201, summary="Create a sandbox (E2B, older SDKs)")
async def create(body: NewSandbox, request: Request, owner: Owner, manager: Manager,
                 idempotent: Idempotent,
                 idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    alias = body.template_id
    network, egress = "none", None
    if body.network is not None and network_policy_fields(body.network):
        # An egress policy: the sandbox reaches what it allows, through the gateway.
        network = "egress"
        egress = {**network_policy_fields(body.network),
                  "allow_internet_access": body.allow_internet_access}
    elif body.allow_internet_access and manager.settings.egress_mode != "none":
        # Internet through the gateway (hard deny list applied), changeable at run time.
        network, egress = "egress", {}
    elif body.allow_internet_access and manager.settings.allow_network:
        # Older SDKs send allow_internet_access=true by default; where the server forbids
        # network, the sandbox is created without one rather than refused.
        network = "bridge"

    async def make() -> dict[str, Any]:
        sandbox = await manager.create(owner, SandboxSpec(
            template=None if alias in DEFAULT_TEMPLATES else alias,
            timeout_s=float(body.timeout) if body.timeout else None,
            network=network, env=dict(body.env_vars or {}),
            metadata=dict(body.metadata or {}), egress=egress,
        ), extra={"e2b_template": alias, ISSUED_KEY: True})  # in its first record
        return sandbox_created(sandbox, issue_token(request, sandbox),
                               manager.settings.e2b_sandbox_domain)

    answer: dict[str, Any] = await idempotent.run(
        owner, idempotency_key, fingerprint("e2b", body.model_dump(mode="json")), make)
    return answer


@router.post("/v2/sandboxes/{sandbox_id}/connect", summary="Connect to (and resume) a sandbox")
@router.post("/sandboxes/{sandbox_id}/connect", summary="Connect (older SDKs)")
async def connect(sandbox_id: str, request: Request, owner: Owner, manager: Manager,
                  body: ConnectBody | None = None) -> SafeJSONResponse:
    sandbox = _live(manager, owner, sandbox_id)
    resumed = sandbox.state == "paused"
    await manager.resume(sandbox)
    if body is not None and body.timeout and body.timeout > sandbox.timeout_s:
        manager.set_timeout(owner, sandbox_id, float(body.timeout))  # extends, never shortens
    # 201 when it had to be resumed, 200 when it was running: both are accepted.
    return SafeJSONResponse(sandbox_created(sandbox, issue_token(request, sandbox),
                                            manager.settings.e2b_sandbox_domain),
                            201 if resumed else 200)


@router.delete("/sandboxes/{sandbox_id}", status_code=204, summary="Kill a sandbox (E2B)")
async def kill(sandbox_id: str, owner: Owner, manager: Manager) -> Response:
    _live(manager, owner, sandbox_id)
    await manager.kill(owner, sandbox_id)
    return Response(status_code=204)


@router.post("/sandboxes/{sandbox_id}/timeout", status_code=204,
             summary="Set the remaining lifetime (E2B)")
async def set_timeout(sandbox_id: str, body: TimeoutBody, owner: Owner,
                      manager: Manager) -> Response:
    _live(manager, owner, sandbox_id)
    manager.set_timeout(owner, sandbox_id, float(body.timeout))
    return Response(status_code=204)


@router.get("/sandboxes/{sandbox_id}", summary="Sandbox details (E2B)")
async def get_info(sandbox_id: str, request: Request, owner: Owner,
                   manager: Manager) -> dict[str, Any]:
    sandbox = _live(manager, owner, sandbox_id)
    detail = listed_sandbox(sandbox)
    detail["envdAccessToken"] = issue_token(request, sandbox)
    return detail


@router.put("/sandboxes/{sandbox_id}/network", status_code=204,
            summary="Replace the egress policy (E2B's update_network)")
async def update_network(sandbox_id: str, body: NetworkUpdate, owner: Owner,
                         manager: Manager) -> Response:
    _live(manager, owner, sandbox_id)
    raw = body.model_dump(exclude_none=True)
    policy = resolve_egress(manager.settings, "egress", raw, where="network")
    assert policy is not None
    await manager.set_egress(owner, sandbox_id, policy)
    return Response(status_code=204)


@router.post("/sandboxes/{sandbox_id}/pause", status_code=204, summary="Pause (docker pause)")
async def pause(sandbox_id: str, owner: Owner, manager: Manager) -> Response:
    await manager.pause(_live(manager, owner, sandbox_id))  # 409 if already paused
    return Response(status_code=204)


def _metadata_filter(raw: str | None) -> dict[str, str]:
    # The SDK url-quotes each key and value, then url-encodes the k=v&... string as a query
    # parameter: one decoding is the query's, parse_qsl the second, unquote the third.
    if not raw:
        return {}
    pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True)
    return {urllib.parse.unquote(k): urllib.parse.unquote(v) for k, v in pairs}


def _cursor(sandbox: Sandbox) -> str:
    raw = json.dumps([sandbox.created_at, sandbox.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(token: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, sandbox_id = json.loads(raw)
        return float(created), str(sandbox_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidRequest(f"invalid nextToken {token!r}") from exc


@router.get("/v2/sandboxes", summary="List sandboxes (E2B)")
@router.get("/sandboxes", summary="List sandboxes (E2B, older SDKs)")
async def list_sandboxes(
    owner: Owner, manager: Manager,
    metadata: str | None = Query(None, description="url-encoded key=value&..."),
    state: str | None = Query(None, description="running,paused"),
    template: str | None = Query(None, alias="template"),
    order: str | None = Query(None, pattern="^(asc|desc)$"),
    next_token: str | None = Query(None, alias="nextToken"),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
) -> SafeJSONResponse:
    states = {s.strip() for s in (state or "running,paused").split(",") if s.strip()}
    unknown = states - {"running", "paused"}
    if unknown:
        raise InvalidRequest(f"unknown state(s) {sorted(unknown)}; use running, paused")
    found = [
        sb for sb in manager.list(owner, _metadata_filter(metadata))
        if ("paused" if sb.state == "paused" else "running") in states
        and (template is None or template in (sb.template, sb.extra.get("e2b_template")))
    ]
    found.sort(key=lambda sb: (sb.created_at, sb.id), reverse=order == "desc")
    if next_token:
        mark = _after(next_token)
        found = [sb for sb in found
                 if ((sb.created_at, sb.id) < mark if order == "desc"
                     else (sb.created_at, sb.id) > mark)]
    page = found[:limit]
    headers = {"x-next-token": _cursor(page[-1])} if len(found) > limit else {}
    return SafeJSONResponse([listed_sandbox(sb) for sb in page], headers=headers)


@router.get("/sandboxes/{sandbox_id}/metrics", summary="Current resource usage (docker stats)")
async def metrics(sandbox_id: str, owner: Owner, manager: Manager) -> list[dict[str, Any]]:
    sandbox = _live(manager, owner, sandbox_id)
    try:
        stats = await manager.stats(sandbox)
    except Conflict:
        if not sandbox.alive:  # it ended while we asked: as any ended sandbox, not found
            raise NotFound(f"sandbox {sandbox_id!r} not found", sandbox_id=sandbox_id) from None
        raise
    cpu, precpu = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_delta = ((cpu.get("cpu_usage") or {}).get("total_usage", 0)
                 - (precpu.get("cpu_usage") or {}).get("total_usage", 0))
    system_delta = cpu.get("system_cpu_usage", 0) - precpu.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or 1
    used_cores = cpu_delta / system_delta * online if system_delta > 0 else 0.0
    # As a percentage of the sandbox's own CPU limit, as E2B reports it.
    cpu_pct = min(max(used_cores / sandbox.limits.cpu * 100.0, 0.0), 100.0)
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    cache = int(detail.get("inactive_file", detail.get("cache", 0)) or 0)
    mem_used = max(int(memory.get("usage", 0) or 0) - cache, 0)
    mem_total = int(memory.get("limit", 0) or sandbox.limits.memory_mb << 20)
    disk_used, disk_total = 0, sandbox.limits.disk_mb << 20
    if sandbox.state == "running":
        try:
            usage = await call_op(manager, sandbox, Op.FS_USAGE, timeout_s=5.0)
            disk_used, disk_total = int(usage["used"]), int(usage["total"])
        except Exception:  # a busy or dying sandbox still reports CPU and memory
            pass
    now = time.time()
    return [{
        "timestamp": iso(now), "timestampUnix": int(now),
        "cpuCount": listed_sandbox(sandbox)["cpuCount"], "cpuUsedPct": round(cpu_pct, 2),
        "memUsed": mem_used, "memTotal": mem_total, "memCache": cache,
        "diskUsed": disk_used, "diskTotal": disk_total,
    }]
