"""``/v1/sandboxes``: create, list, inspect, kill, extend."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from ..exceptions import InvalidRequest
from ..idempotency import fingerprint
from ..limits import SandboxSpec
from ..network import resolve_egress
from ..schemas import CreateSandbox, EgressUpdate, SandboxOut, SetTimeout
from .deps import IdempotencyKey, Idempotent, Manager, Owner

router = APIRouter(prefix="/v1/sandboxes", tags=["sandboxes"])


@router.post("", status_code=201, response_model=SandboxOut, summary="Create a sandbox")
async def create_sandbox(body: CreateSandbox, owner: Owner, manager: Manager,
                         idempotent: Idempotent,
                         idempotency_key: IdempotencyKey = None) -> SandboxOut:
    spec = body.model_dump()

    async def create() -> SandboxOut:
        return SandboxOut.of(await manager.create(owner, SandboxSpec(**spec)))

    answer: SandboxOut = await idempotent.run(owner, idempotency_key, fingerprint("v1", spec),
                                              create)
    return answer


def parse_metadata_filter(items: list[str]) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"metadata filter {item!r} must look like key=value")
        wanted[key] = value
    return wanted


@router.get("", response_model=list[SandboxOut], summary="List the caller's live sandboxes")
async def list_sandboxes(
    owner: Owner, manager: Manager,
    metadata: list[str] = Query(default=[], description="key=value; repeat to AND filters"),
) -> list[SandboxOut]:
    return [SandboxOut.of(sb) for sb in manager.list(owner, parse_metadata_filter(metadata))]


@router.get("/{sandbox_id}", response_model=SandboxOut, summary="Inspect a sandbox")
async def get_sandbox(sandbox_id: str, owner: Owner, manager: Manager) -> SandboxOut:
    return SandboxOut.of(manager.get(owner, sandbox_id, alive=False))


@router.delete("/{sandbox_id}", status_code=204, summary="Kill a sandbox")
async def kill_sandbox(sandbox_id: str, owner: Owner, manager: Manager) -> Response:
    await manager.kill(owner, sandbox_id)
    return Response(status_code=204)


@router.post("/{sandbox_id}/timeout", response_model=SandboxOut,
             summary="Set the remaining lifetime")
async def set_timeout(sandbox_id: str, body: SetTimeout, owner: Owner,
                      manager: Manager) -> SandboxOut:
    return SandboxOut.of(manager.set_timeout(owner, sandbox_id, body.timeout_s))


@router.put("/{sandbox_id}/egress", response_model=SandboxOut,
            summary="Replace the egress policy (effect on new connections at once)")
async def set_egress(sandbox_id: str, body: EgressUpdate, owner: Owner,
                     manager: Manager) -> SandboxOut:
    # Like E2B's update: the whole policy is replaced; fields left out are cleared.
    policy = resolve_egress(manager.settings, "egress", body.model_dump(exclude_none=True))
    assert policy is not None
    return SandboxOut.of(await manager.set_egress(owner, sandbox_id, policy))
