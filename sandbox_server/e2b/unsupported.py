"""E2B features selfbox does not offer, answered as such.

Without these routes the SDK's calls would meet a bare 404, which it reports as "sandbox
not found" (for fork and snapshots) - a misleading answer about a sandbox
that is alive. A 501 that names the feature becomes ``SandboxException("501: ...")``.
The caller's key is still checked first, like on every other route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter

from ..exceptions import NotSupported
from ..routers.deps import Owner

__all__ = ["router"]

router = APIRouter(tags=["e2b control plane"])

DOCS = "see docs/e2b-compat.md"

# (methods, path, the feature as a user knows it)
_FEATURES: tuple[tuple[list[str], str, str], ...] = (
    (["POST"], "/sandboxes/{sandbox_id}/fork", "Sandbox.fork"),
    (["POST"], "/sandboxes/{sandbox_id}/snapshots", "Sandbox.create_snapshot"),
    (["GET"], "/snapshots", "Sandbox.list_snapshots"),
    (["GET"], "/sandboxes/{sandbox_id}/logs", "sandbox logs"),
    (["GET"], "/v2/sandboxes/{sandbox_id}/logs", "sandbox logs"),
    (["GET", "POST"], "/templates", "building templates (selfbox templates are images)"),
    (["GET", "POST", "PATCH", "DELETE"], "/templates/{rest:path}",
     "building templates (selfbox templates are images)"),
    (["GET", "POST"], "/v2/templates", "building templates (selfbox templates are images)"),
    (["GET", "POST", "PATCH", "DELETE"], "/v2/templates/{rest:path}",
     "building templates (selfbox templates are images)"),
    (["GET", "POST"], "/v3/templates", "building templates (selfbox templates are images)"),
    (["GET", "POST"], "/volumes", "volumes"),
    (["GET", "POST", "PATCH", "DELETE"], "/volumes/{rest:path}", "volumes"),
    (["GET", "POST"], "/secrets", "secrets"),
    (["GET", "POST", "PATCH", "DELETE"], "/secrets/{rest:path}", "secrets"),
)


def _refuse(feature: str) -> Callable[[str], Awaitable[None]]:
    async def refuse(owner: Owner) -> None:
        raise NotSupported(f"{feature} is not supported by selfbox ({DOCS})", feature=feature)

    return refuse


for _methods, _path, _feature in _FEATURES:
    router.add_api_route(_path, _refuse(_feature), methods=_methods, status_code=501,
                         summary=f"Not supported: {_feature}", include_in_schema=False)
